"""Korean particles: the server's helper (rooms/korean.py) and the page's (js/korean.js)
choose the same form for every word in tests/korean_particles.json, and fill sentences."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from rooms import korean

PROJECT = Path(__file__).resolve().parent.parent
CASES = json.loads((PROJECT / "tests" / "korean_particles.json").read_text(encoding="utf-8"))
MARKERS = ["을(를)", "이(가)", "은(는)", "과(와)", "(으)로"]
SCRIPT = PROJECT / "static" / "rooms" / "js" / "korean.js"


def run_module(code: str) -> str:
    """Run `code` in Node.js with the page's korean.js imported as `korean`; its stdout."""
    node = shutil.which("node")
    assert node, "Node.js is missing (make test installs npm, which brings it)"
    program = f"import * as korean from {SCRIPT.as_uri()!r};\n{code}"
    done = subprocess.run(
        [node, "--input-type=module", "-e", program],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


@pytest.mark.parametrize("case", CASES["cases"], ids=lambda case: case[0] or "empty")
def test_the_server_picks_each_particle_by_the_word_before_it(case: list[str]) -> None:
    """Hangul by its final consonant, digits as read in Korean, Latin words as loanwords."""
    word, *forms = case
    assert [korean.particle(word, marker) for marker in MARKERS] == forms


def test_the_page_picks_the_same_particles_as_the_server() -> None:
    """js/korean.js answers every case of the shared table as the table says."""
    words = [case[0] for case in CASES["cases"]]
    code = (
        f"const words = {json.dumps(words)}; const markers = {json.dumps(MARKERS)};\n"
        "console.log(JSON.stringify(words.map((w) => markers.map((m) => korean.particle(w, m)))));"
    )
    answers = json.loads(run_module(code))
    mismatches = {
        case[0]: (answer, case[1:])
        for case, answer in zip(CASES["cases"], answers, strict=True)
        if answer != case[1:]
    }
    assert not mismatches


def test_the_server_fills_a_sentence_and_resolves_only_the_formats_markers() -> None:
    """A marker after a placeholder becomes one form; a person's text is shown as typed."""
    decided = "%(item)s(으)로 정했어요."
    assert korean.interpolate(decided, {"item": "냉면"}) == "냉면으로 정했어요."
    assert korean.interpolate(decided, {"item": "삼겹살"}) == "삼겹살로 정했어요."
    vetoed = "%(who)s 님이 %(item)s을(를) 거부했어요."
    said = korean.interpolate(vetoed, {"who": "민수", "item": "Pho"})
    assert said == "민수 님이 Pho를 거부했어요."
    # Markers typed by a person are text, not instructions; a marker not after a value stays.
    assert korean.interpolate("%(item)s!", {"item": "밥(으)로"}) == "밥(으)로!"
    assert korean.interpolate("100%% %(item)s", {"item": "떡"}) == "100% 떡"
    assert korean.interpolate("We're eating %(item)s.", {"item": "Pho"}) == "We're eating Pho."


def test_the_page_fills_a_sentence_the_same_way() -> None:
    """The page's interpolate fills %s in order and resolves each marker for its value."""
    code = (
        "console.log(JSON.stringify(["
        "korean.interpolate('%s 님이 %s을(를) 거부했어요.', ['민수', '비빔밥']),"
        "korean.interpolate('%s 님이 이름을 %s(으)로 바꿨어요.', ['Mina', '지철']),"
        "korean.interpolate('%s이(가) 추가됐어요.', ['김치찌개']),"
        "korean.interpolate('%s!', ['밥(으)로']),"
        "korean.interpolate('%s of us: %s', [3, 'Mina, Joon']),"
        "]));"
    )
    assert json.loads(run_module(code)) == [
        "민수 님이 비빔밥을 거부했어요.",
        "Mina 님이 이름을 지철로 바꿨어요.",
        "김치찌개가 추가됐어요.",
        "밥(으)로!",
        "3 of us: Mina, Joon",
    ]
