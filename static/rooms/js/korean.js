// Korean particles chosen by the word they follow: 을/를, 이/가, 은/는, 와/과, (으)로.
// The same rule as rooms/korean.py (its docstring and docs/i18n.md say how a word ends);
// tests/korean_particles.json holds the cases both must agree on.

const VOWEL = "vowel"; // 를, 가, 는, 와, 로
const RIEUL = "rieul"; // final ㄹ: 을, 이, 은, 과, but 로
const CONSONANT = "consonant"; // 을, 이, 은, 과, 으로

// Marker -> [after a consonant, after a vowel (or ㄹ, for (으)로 only)].
export const MARKERS = {
  "을(를)": ["을", "를"],
  "이(가)": ["이", "가"],
  "은(는)": ["은", "는"],
  "과(와)": ["과", "와"],
  "(으)로": ["으로", "로"],
};

const HANGUL_FIRST = 0xac00;
const HANGUL_LAST = 0xd7a3;
const RIEUL_INDEX = 8;
const JAMO_CONSONANT_FIRST = 0x3131;
const JAMO_CONSONANT_LAST = 0x314e;
const JAMO_RIEUL = 0x3139;
// 0 영, 1 일, 2 이, 3 삼, 4 사, 5 오, 6 육, 7 칠, 8 팔, 9 구.
const DIGIT_FINALS = [CONSONANT, RIEUL, VOWEL, CONSONANT, VOWEL, VOWEL, CONSONANT, RIEUL, RIEUL, VOWEL];
// 만, 억, 조, 경: a number ending in four or more zeros ends in one of them.
const MYRIAD_FINALS = [CONSONANT, CONSONANT, VOWEL, CONSONANT];
const CAPITAL_FINALS = { L: RIEUL, R: RIEUL, M: CONSONANT, N: CONSONANT };
// One vowel letter after a consonant: cu-p, Ma-c (not sou-p, stea-k).
const SHORT_VOWEL_END = /[^aeiouy][aeiou]$/u;

const TRAILING_GROUP = /\s*\([^()]*\)$/u;
const NUMBER = /([0-9][0-9,]*)(\.[0-9]+)?$/u;
const LATIN_WORD = /[A-Za-z]+$/u;
const LETTER_OR_DIGIT = /[\p{L}\p{N}]/u;

/** What `word` ends in when read aloud: "vowel", "rieul" or "consonant". */
export function finalOf(word) {
  word = readableEnd(String(word));
  if (!word) return VOWEL;
  const last = word.codePointAt(word.length - 1);
  if (last >= HANGUL_FIRST && last <= HANGUL_LAST) {
    const index = (last - HANGUL_FIRST) % 28;
    if (index === 0) return VOWEL;
    return index === RIEUL_INDEX ? RIEUL : CONSONANT;
  }
  if (last >= JAMO_CONSONANT_FIRST && last <= JAMO_CONSONANT_LAST) return last === JAMO_RIEUL ? RIEUL : CONSONANT;
  const number = NUMBER.exec(word);
  if (number) return numberFinal(number[1], number[2]);
  const latin = LATIN_WORD.exec(word);
  if (latin) return latinFinal(latin[0]);
  return VOWEL;
}

/** The form of `marker` ("을(를)", "(으)로"...) that follows `word`. */
export function particle(word, marker) {
  const [afterConsonant, afterVowel] = MARKERS[marker];
  const final = finalOf(word);
  return final === VOWEL || (final === RIEUL && marker === "(으)로") ? afterVowel : afterConsonant;
}

const escape = (text) => text.replace(/[()]/g, "\\$&");
const PLACEHOLDER = new RegExp("%s(" + Object.keys(MARKERS).map(escape).join("|") + ")?", "g");

/** `format` with each %s filled in order, a marker right after one resolved for its value. */
export function interpolate(format, args) {
  let next = 0;
  return format.replace(PLACEHOLDER, (whole, marker) => {
    const value = String(args[next++]);
    return marker ? value + particle(value, marker) : value;
  });
}

// Without what is not read before a particle: punctuation, symbols, emoji, spaces, and a
// closing "(...)" after something (짜장면(곱빼기) reads as 짜장면).
function readableEnd(word) {
  for (;;) {
    let trimmed = word.trimEnd();
    while (trimmed && !endsReadable(trimmed) && !trimmed.endsWith(")")) trimmed = dropLast(trimmed).trimEnd();
    const group = TRAILING_GROUP.exec(trimmed);
    if (group && group.index > 0) trimmed = trimmed.slice(0, group.index);
    else if (trimmed.endsWith(")")) trimmed = trimmed.slice(0, -1);
    if (trimmed === word) return word;
    word = trimmed;
  }
}

function endsReadable(text) {
  return LETTER_OR_DIGIT.test(Array.from(text).pop());
}

function dropLast(text) {
  return Array.from(text).slice(0, -1).join("");
}

function numberFinal(whole, fraction) {
  if (fraction) return DIGIT_FINALS[Number(fraction[fraction.length - 1])];
  const digits = whole.replace(/,/g, "").replace(/^0+/, "");
  if (!digits) return CONSONANT; // 영
  const zeros = digits.length - digits.replace(/0+$/, "").length;
  if (zeros === 0) return DIGIT_FINALS[Number(digits[digits.length - 1])];
  if (zeros <= 3) return CONSONANT; // 십, 백, 천
  return MYRIAD_FINALS[Math.min(Math.floor(zeros / 4) - 1, MYRIAD_FINALS.length - 1)];
}

function latinFinal(letters) {
  if (letters === letters.toUpperCase()) return CAPITAL_FINALS[letters[letters.length - 1]] || VOWEL;
  const lower = letters.toLowerCase();
  if (/(l|le)$/.test(lower)) return RIEUL;
  if (/(m|n|ng|me|ne)$/.test(lower)) return CONSONANT;
  const stop = lower.endsWith("ck") ? lower.slice(0, -2) : lower.slice(0, -1);
  if (/[bcpkt]$/u.test(lower) && SHORT_VOWEL_END.test(stop)) return CONSONANT;
  return VOWEL;
}
