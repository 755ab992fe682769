"""Korean as a colleague would write it: both catalogues complete (nothing fuzzy), particles
chosen by the word before them on the server (rooms/korean.py) and in the page
(js/korean.js) alike, and never a "(으)로"-style fallback on a page."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from groups import services as group_services
from rooms import korean, services
from rooms.models import Item, Room

PROJECT = Path(__file__).resolve().parent.parent
KO = {"HTTP_ACCEPT_LANGUAGE": "ko-KR,ko;q=0.9"}
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


# --- The catalogues ------------------------------------------------------------------


@pytest.mark.parametrize("domain", ["django", "djangojs"])
def test_korean_catalogues_have_nothing_fuzzy_or_untranslated(domain: str) -> None:
    """msgfmt counts every Korean entry translated: none fuzzy (gettext would show the
    English), none empty, and every placeholder of the English kept."""
    msgfmt = shutil.which("msgfmt")
    assert msgfmt, "Debian's gettext is missing (make test installs it)"
    po = PROJECT / "locale" / "ko" / "LC_MESSAGES" / f"{domain}.po"
    done = subprocess.run(
        [msgfmt, "--check-format", "--check-domain", "--statistics", "-o", os.devnull, str(po)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"\d+ translated messages?\.\n", done.stderr), done.stderr


@pytest.mark.parametrize("domain", ["django", "djangojs"])
def test_every_particle_marker_follows_a_value(domain: str) -> None:
    """A marker ("을(를)", "(으)로"...) only right after a placeholder, where the helpers
    resolve it; anywhere else it would be shown as written."""
    po = PROJECT / "locale" / "ko" / "LC_MESSAGES" / f"{domain}.po"
    placeholder = r"%(?:\(\w+\))?s"
    markers = "|".join(re.escape(marker) for marker in korean.MARKERS)
    stranded = []
    for line in po.read_text(encoding="utf-8").splitlines():
        if not line.startswith(("msgstr", '"')):
            continue
        for match in re.finditer(markers, line):
            if not re.search(placeholder + r"$", line[: match.start()]):
                stranded.append(line)
    assert not stranded


# --- Pages -------------------------------------------------------------------------


def fallbacks(html: str) -> list[str]:
    """The two-way particle forms left in a page's text."""
    return [marker for marker in korean.MARKERS if marker in html]


# Words that end in a vowel, ㄹ, another consonant, a Latin word and a number.
ITEMS = ["김치찌개", "삼겹살", "냉면", "Pho", "7번가"]


@pytest.mark.django_db
@pytest.mark.usefixtures("channel_layer_memory")
@pytest.mark.parametrize("item", ITEMS)
def test_server_pages_show_no_particle_fallback(item: str) -> None:
    """Home (a decided recent room), an ended room's page and a group page say the decision
    with the particle its word takes: "냉면으로 정했어요", never "냉면(으)로"."""
    client = Client()
    group = group_services.group_create(name="점심팀", language="ko")
    room, _ = group_services.group_room_open(group=group)
    Item.objects.create(room=room, name=item, key=item.casefold())
    Room.objects.filter(pk=room.pk).update(
        decision_item=item, decision_by="민지", decided_at=timezone.now()
    )
    said = item + korean.particle(item, "(으)로")
    assert client.get(f"/rooms/{room.pk}/", **KO).status_code == 200  # remembered: home lists it
    home = client.get("/", **KO).content.decode()
    assert f"{said} 결정" in home
    page = client.get(f"/g/{group.slug}/", **KO).content.decode()
    assert f"{said} 정했어요." in page
    Room.objects.filter(pk=room.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    gone = client.get(f"/rooms/{room.pk}/", **KO).content.decode()
    assert f"{said} 정했어요." in gone
    for html in (home, page, gone):
        assert not fallbacks(html)


@pytest.mark.django_db
def test_the_room_page_and_its_catalogue_leave_particles_to_the_script() -> None:
    """The room page itself has no fallback; the markers it needs are in the JS catalogue,
    for js/korean.js to resolve."""
    client = Client()
    room = services.room_create()
    assert not fallbacks(client.get(f"/rooms/{room.pk}/", **KO).content.decode())
    catalogue = client.get("/jsi18n/", **KO).content.decode()
    assert json.dumps("%s을(를)")[1:-1] in catalogue or "%s을(를)" in catalogue
