"""Korean particles chosen by the word they follow: 을/를, 이/가, 은/는, 와/과, (으)로.

A Korean catalogue string writes the particle after a placeholder in its two-way form
("%(item)s(으)로 정했어요."); `interpolate` fills the placeholders and puts the one form that
fits each value in place of the marker ("김치찌개로", "냉면으로", "Pho로"). Only the format's
own text is read for markers, never the values, so a person's text is shown as typed.

How a word ends (docs/i18n.md has the rules with examples): a Hangul syllable by its final
consonant (Unicode arithmetic); digits as read in Korean (10 십, 1000 천, 7 칠); a Latin
word as Korean writes the English loanword (-l/-le ㄹ; -m, -n, -ng, -me, -ne; one
short vowel and b/c/ck/p/t/k: 클럽, 맥, 컵, 핫), all capitals as letter names (KFC
케이에프씨); anything else (emoji, other scripts) as ending in a vowel.
static/rooms/js/korean.js is the same rule for the page, and tests/korean_particles.json
holds the cases both must agree on.
"""

import re
from collections.abc import Mapping
from enum import Enum


class Final(Enum):
    """What a word ends in, as far as particles care."""

    VOWEL = "vowel"  # no final consonant: 를, 가, 는, 와, 로
    RIEUL = "rieul"  # final ㄹ: like a consonant, but 로 rather than 으로
    CONSONANT = "consonant"  # any other final consonant: 을, 이, 은, 과, 으로


# Marker -> (after a consonant, after a vowel or ㄹ for (으)로 only).
MARKERS: dict[str, tuple[str, str]] = {
    "을(를)": ("을", "를"),
    "이(가)": ("이", "가"),
    "은(는)": ("은", "는"),
    "과(와)": ("과", "와"),
    "(으)로": ("으로", "로"),
}

_HANGUL_FIRST, _HANGUL_LAST = 0xAC00, 0xD7A3
_RIEUL_INDEX = 8  # (syllable - 0xAC00) % 28: 0 is no final, 8 is ㄹ
# Compatibility jamo typed alone (ㅋㅋ): consonants are read by their names, all ending in
# a consonant (기역, 니은, 리을...); vowels (ㅏ 아) end in a vowel.
_JAMO_CONSONANTS = range(0x3131, 0x314F)
_JAMO_RIEUL = 0x3139

# Digits read in Sino-Korean: 0 영, 1 일, 2 이, 3 삼, 4 사, 5 오, 6 육, 7 칠, 8 팔, 9 구.
_DIGIT_FINALS = "CRVCVVCRRV"
# A number ending in zeros ends in its last unit: 십, 백, 천, then 만, 억, 조, 경 per 4 zeros.
_ZEROS_FINALS = {1: "C", 2: "C", 3: "C"}
_MYRIAD_FINALS = "CCVC"  # 만, 억, 조, 경
_CODES = {"V": Final.VOWEL, "R": Final.RIEUL, "C": Final.CONSONANT}

# Letter names of capitals read one by one: L 엘 and R 알 end in ㄹ, M 엠 and N 엔 in a consonant.
_CAPITAL_FINALS = {"L": Final.RIEUL, "R": Final.RIEUL, "M": Final.CONSONANT, "N": Final.CONSONANT}
# One vowel letter after a consonant: cu-p, Ma-c (not sou-p, stea-k).
_SHORT_VOWEL_END = re.compile(r"[^aeiouy][aeiou]$")

_TRAILING_GROUP = re.compile(r"\s*\([^()]*\)$")
_NUMBER = re.compile(r"([0-9][0-9,]*)(\.[0-9]+)?$")
_LATIN_WORD = re.compile(r"[A-Za-z]+$")


def final_of(word: str) -> Final:
    """What `word` ends in when read aloud, for choosing its particle."""
    word = _readable_end(word)
    if not word:
        return Final.VOWEL
    last = ord(word[-1])
    if _HANGUL_FIRST <= last <= _HANGUL_LAST:
        index = (last - _HANGUL_FIRST) % 28
        if index == 0:
            return Final.VOWEL
        return Final.RIEUL if index == _RIEUL_INDEX else Final.CONSONANT
    if last in _JAMO_CONSONANTS:
        return Final.RIEUL if last == _JAMO_RIEUL else Final.CONSONANT
    number = _NUMBER.search(word)
    if number:
        return _number_final(number.group(1), number.group(2))
    latin = _LATIN_WORD.search(word)
    if latin:
        return _latin_final(latin.group(0))
    return Final.VOWEL


def particle(word: str, marker: str) -> str:
    """The form of `marker` ("을(를)", "(으)로"...) that follows `word`."""
    after_consonant, after_vowel = MARKERS[marker]
    final = final_of(word)
    if final is Final.VOWEL or (final is Final.RIEUL and marker == "(으)로"):
        return after_vowel
    return after_consonant


_PLACEHOLDER = re.compile(
    r"%%|%\((\w+)\)s(" + "|".join(re.escape(marker) for marker in MARKERS) + ")?"
)


def interpolate(text_format: str, values: Mapping[str, object]) -> str:
    """`text_format % values`, each marker right after a placeholder resolved for its value."""

    def fill(match: re.Match[str]) -> str:
        if match.group(0) == "%%":
            return "%"
        value = str(values[match.group(1)])
        marker = match.group(2)
        return value + particle(value, marker) if marker else value

    return _PLACEHOLDER.sub(fill, text_format)


def _readable_end(word: str) -> str:
    """`word` without what is not read before a particle: punctuation, symbols, emoji,
    spaces, and a closing "(...)" after something (짜장면(곱빼기) reads as 짜장면)."""
    while True:
        trimmed = word.rstrip()
        while trimmed and not trimmed[-1].isalnum() and trimmed[-1] != ")":
            trimmed = trimmed[:-1].rstrip()
        group = _TRAILING_GROUP.search(trimmed)
        if group and group.start() > 0:
            trimmed = trimmed[: group.start()]
        elif trimmed.endswith(")"):
            trimmed = trimmed[:-1]
        if trimmed == word:
            return word
        word = trimmed


def _number_final(whole: str, fraction: str | None) -> Final:
    if fraction:  # 1.5 일 점 오: the last digit, read alone
        return _CODES[_DIGIT_FINALS[int(fraction[-1])]]
    digits = whole.replace(",", "").lstrip("0")
    if not digits:
        return Final.CONSONANT  # 영
    zeros = len(digits) - len(digits.rstrip("0"))
    if zeros == 0:
        return _CODES[_DIGIT_FINALS[int(digits[-1])]]
    if zeros in _ZEROS_FINALS:
        return _CODES[_ZEROS_FINALS[zeros]]
    myriad = zeros // 4 - 1
    return _CODES[_MYRIAD_FINALS[min(myriad, len(_MYRIAD_FINALS) - 1)]]


def _latin_final(letters: str) -> Final:
    if letters.isupper():  # KFC, BBQ, Plan B: letter names
        return _CAPITAL_FINALS.get(letters[-1], Final.VOWEL)
    lower = letters.lower()
    if lower.endswith(("l", "le")):
        return Final.RIEUL  # bell 벨, samgyeopsal 삼겹살, waffle 와플
    if lower.endswith(("m", "n", "ng", "me", "ne")):
        return Final.CONSONANT  # ham 햄, ramen 라멘, king 킹, lime 라임, wine 와인
    stop = lower[:-2] if lower.endswith("ck") else lower[:-1]
    if lower[-1] in "bcpkt" and _SHORT_VOWEL_END.search(stop):
        return Final.CONSONANT  # cup 컵, hot 핫, Mac 맥, club 클럽, bibimbap 비빔밥
    return Final.VOWEL  # pho 포, stew 스튜, salad 샐러드, steak 스테이크, soup 수프
