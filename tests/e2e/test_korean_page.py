"""The room and group pages in Korean, as a person on a phone sees them: what others do is
said with the particle each word takes (never "(으)로" or "을(를)"), counts are Korean
counts, and the Korean screenshots the README shows are taken here."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from rooms.korean import MARKERS
from tests.support.browser import PHONE, SCREENSHOTS, axe_violations, describe, item, open_room
from tests.support.client import create_room, http_json
from tests.support.processes import DaphneServer
from tests.support.seed import Person

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

# Every sentence the live region speaks, kept for the test (the region only holds the last).
RECORD_ANNOUNCEMENTS = """
window.__said = [];
document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("announcer");
  if (!box) return;
  const keep = () => window.__said.push(box.textContent.trim());
  new MutationObserver(keep).observe(box, {childList: true, characterData: true, subtree: true});
});
"""


def shown_fallbacks(page: Page) -> list[str]:
    """The two-way particle forms in the page's text and in what it announced."""
    text = page.evaluate("document.body.innerText + ' ' + window.__said.join(' ')")
    return [marker for marker in MARKERS if marker in text]


def said(page: Page) -> str:
    return " ".join(page.evaluate("window.__said"))


def test_others_doings_are_said_with_the_right_particles(
    daphne_factory: Callable[..., DaphneServer], contexts
) -> None:
    """Adds, a veto, a rename, a removal, the pick and the closed room, told in Korean to a
    phone: 비빔밥이 추가됐어요, 비빔밥을 거부했어요, 지철로 바꿨어요, 냉면으로 정했어요."""
    server = daphne_factory()
    room = create_room(server.http_url)
    context = contexts(locale="ko-KR", name="민수", viewport=PHONE, bypass_csp=True)
    context.add_init_script(RECORD_ANNOUNCEMENTS)
    minsu = open_room(context, room["url"])
    joon = Person(room["ws_url"], "Joon", token=room["host_token"])
    try:
        for name in ("비빔밥", "냉면", "Pho", "삼겹살"):
            joon.do({"action": "add", "item": name})
            expect(item(minsu, name)).to_have_count(1)
        joon.do({"action": "vote", "item": "냉면"})
        expect(item(minsu, "냉면").locator("button.vote .tally")).to_have_text("1")
        joon.do({"action": "veto", "item": "비빔밥"})
        joon.do({"action": "veto", "item": "삼겹살"})
        joon.do({"action": "rename", "name": "지철"})
        joon.do({"action": "remove", "item": "Pho"})
        expect(minsu.locator("#items > li")).to_have_count(3)
        for sentence in (
            "비빔밥이 추가됐어요.",
            "냉면이 추가됐어요.",
            "Pho가 추가됐어요.",
            "삼겹살이 추가됐어요.",
            "Joon 님이 냉면에 투표했어요.",
            "Joon 님이 비빔밥을 거부했어요.",
            "Joon 님이 삼겹살을 거부했어요.",
            "Joon 님이 이름을 지철로 바꿨어요.",
            "Pho가 삭제됐어요.",
        ):
            minsu.wait_for_function("s => window.__said.join(' ').includes(s)", arg=sentence)
        # The vote button counts the Korean way: the word, then the number; 2표 when spoken.
        vote = item(minsu, "냉면").locator("button.vote")
        expect(vote).to_have_accessible_name("투표 (냉면, 지금 1표)")

        minsu.get_by_role("button", name="저도 갈게요").click()
        expect(minsu.locator("#going-count")).to_have_text("1명 가요: 민수")
        joon.do({"action": "pick"}, until=lambda s: s["room"]["decision"])
        expect(minsu.locator("#decision-item")).to_have_text("냉면")
        expect(minsu.locator("#decision-by")).to_have_text("지철 님이 뽑음")
        expect(minsu.locator("#decision-going")).to_have_text("1명 가요: 민수")
        expect(minsu.locator("#reel")).to_be_hidden()
        assert "오늘 점심은 냉면!" in said(minsu)
        assert not shown_fallbacks(minsu)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        minsu.screenshot(path=SCREENSHOTS / "room-decided-phone-ko.png", full_page=True)

        joon.do({"action": "close"}, until=lambda s: True)
    finally:
        joon.close()
    expect(minsu.locator("#screen-expired h1")).to_have_text("방이 닫혔어요.")
    expect(minsu.locator("#screen-expired-decision")).to_have_text("냉면으로 정했어요.")
    assert not shown_fallbacks(minsu)


def test_group_page_in_korean_on_a_phone(
    daphne_factory: Callable[..., DaphneServer], contexts
) -> None:
    """A group's page with a decision today: 오늘 · ○○ 님이 뽑음, 우리 단골 with 1번, the
    open room's decision with its particle, no fallback, no axe violation (light and dark)."""
    server = daphne_factory()
    body = json.dumps({"name": "김치찌개 팀"}).encode()
    status, group = http_json("POST", f"{server.http_url}/api/groups/", body)
    assert status == 201, group
    status, opened = http_json("POST", f"{group['api_url']}room/")
    assert status == 201, opened
    person = Person(opened["ws_url"], "민지")
    try:
        person.do({"action": "add", "item": "칼국수"})
        person.do({"action": "pick"}, until=lambda s: s["room"]["decision"])
    finally:
        person.close()
    for scheme in ("light", "dark"):
        context = contexts(locale="ko-KR", viewport=PHONE, color_scheme=scheme, bypass_csp=True)
        context.add_init_script(RECORD_ANNOUNCEMENTS)
        page = context.new_page()
        page.goto(group["url"])
        expect(page.locator("#history li")).to_have_count(1)
        expect(page.locator("#history .history-meta")).to_have_text("오늘 · 민지 님이 뽑음")
        expect(page.locator("#favorites")).to_have_text("칼국수 1번")
        today = "오늘의 방이 열려 있어요. 칼국수로 정했어요."
        expect(page.locator(".group-today")).to_have_text(today)
        assert not shown_fallbacks(page)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        violations = axe_violations(page)
        assert violations == [], describe(violations)
        if scheme == "light":
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=SCREENSHOTS / "group-phone-ko.png", full_page=True)
        context.close()
