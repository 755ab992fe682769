"""Blind votes and can't eat on the page (issue 29), in Chromium: two people, Korean and
English, axe clean on a phone and a desktop, light and dark."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.support.browser import (
    DESKTOP,
    PHONE,
    SCREENSHOTS,
    add_item,
    axe_violations,
    describe,
    item,
    open_room,
)
from tests.support.client import create_room
from tests.support.processes import DaphneServer

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

WORDS = {
    "en-US": {
        "hide": "Hide the votes until the pick",
        "hidden": "Votes hidden until the pick",
        "cant_eat": "guest can't eat it",
        "avoid": "What can't you eat?",
        "pick": "Pick for us",
    },
    "ko-KR": {
        "hide": "뽑을 때까지 투표 숨기기",
        "hidden": "메뉴를 뽑을 때까지 누가 어디에 투표했는지 안 보여요",
        "cant_eat": "guest 님은 못 먹어요",
        "avoid": "못 먹는 음식이 있나요?",
        "pick": "메뉴 뽑기",
    },
}


def host_context(contexts, room: dict, **options) -> BrowserContext:
    """The room's creator: its host token is its rejoin token, as the page keeps it."""
    context = contexts(name="host", bypass_csp=True, **options)
    key = f"lunchsite.token.{room['id']}"
    context.add_init_script(f"localStorage.setItem({key!r}, {room['host_token']!r})")
    return context


def axe_clean(page: Page) -> None:
    violations = axe_violations(page)
    assert violations == [], describe(violations)


@pytest.mark.parametrize("locale", ["en-US", "ko-KR"])
def test_a_blind_room_with_tags_and_avoids_on_two_pages(
    daphne_factory: Callable[..., DaphneServer], contexts, locale: str
) -> None:
    words = WORDS[locale]
    server = daphne_factory()
    room = create_room(server.http_url)
    host = open_room(host_context(contexts, room, locale=locale, viewport=PHONE), room["url"])
    guest_context = contexts(name="guest", locale=locale, viewport=PHONE, bypass_csp=True)
    guest = open_room(guest_context, room["url"])

    # The host hides the votes: both pages say so.
    host.locator("#host-menu-summary").click()
    host.get_by_role("button", name=words["hide"]).click()
    for page in (host, guest):
        expect(page.locator("#blind-note")).to_be_visible()
        expect(page.locator("#blind-note")).to_contain_text(words["hidden"])

    # The guest adds an idea with its tags, and says what it can't eat (Enter in the field).
    add_item(guest, "짬뽕 #해산물 #매운")
    expect(guest.locator("#item-input")).to_have_value("")
    add_item(guest, "짜장면")
    for page in (host, guest):
        expect(item(page, "짬뽕").locator(".item-tags li")).to_have_text(["#해산물", "#매운"])
        expect(item(page, "짜장면").locator(".item-tags")).to_be_hidden()
    expect(guest.get_by_label(words["avoid"])).to_be_visible()
    guest.fill("#avoid-input", "해산물, 매운")
    guest.press("#avoid-input", "Enter")
    for page in (host, guest):
        expect(item(page, "짬뽕").locator(".avoiders")).to_have_text("🚫 " + words["cant_eat"])
    assert guest.evaluate("document.activeElement.id") == "avoid-input"  # focus stays put
    expect(guest.locator("#avoid-input")).to_have_value("해산물, 매운")

    # Votes: each page marks its own vote, and nobody sees a count.
    item(host, "짬뽕").locator("button.vote").click()
    item(guest, "짜장면").locator("button.vote").click()
    expect(item(host, "짬뽕").locator("button.vote")).to_have_attribute("aria-pressed", "true")
    expect(item(guest, "짜장면").locator("button.vote")).to_have_attribute("aria-pressed", "true")
    expect(item(guest, "짬뽕").locator("button.vote")).to_have_attribute("aria-pressed", "false")
    for page in (host, guest):
        for name in ("짬뽕", "짜장면"):
            expect(item(page, name).locator("button.vote .tally")).to_have_text("")
            expect(item(page, name).locator(".voters")).to_have_count(0)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    guest.screenshot(path=SCREENSHOTS / f"blind-room-phone-{locale}.png", full_page=True)
    for page in (host, guest):
        axe_clean(page)
    guest.set_viewport_size(DESKTOP)
    axe_clean(guest)

    # The pick skips what the guest can't eat, and shows every vote.
    host.get_by_role("button", name=words["pick"]).click()
    for page in (host, guest):
        expect(page.locator("#decision-item")).to_have_text("짜장면")
        expect(page.locator("#blind-note")).to_be_hidden()
        expect(item(page, "짬뽕").locator("button.vote .tally")).to_have_text("1")
        expect(item(page, "짜장면").locator(".voters")).to_contain_text("guest")


def test_dark_mode_and_a_refused_tag_keep_the_typed_text(
    daphne_factory: Callable[..., DaphneServer], contexts
) -> None:
    """Dark mode is AA too; six things you can't eat are refused beside the field, which
    keeps what was typed."""
    server = daphne_factory()
    room = create_room(server.http_url)
    page = open_room(host_context(contexts, room, color_scheme="dark"), room["url"])
    page.locator("#host-menu-summary").click()
    page.locator("#blind-toggle").click()
    expect(page.locator("#blind-note")).to_be_visible()
    add_item(page, "Pho #beef #soup")
    expect(item(page, "Pho").locator(".item-tags li")).to_have_count(2)
    add_item(page, "pho #beef")  # on the list already: its tags are replaced
    expect(item(page, "Pho").locator(".item-tags li")).to_have_text(["#beef"])
    expect(page.locator("#item-input")).to_have_value("")
    expect(page.locator("#items > li")).to_have_count(1)
    page.fill("#avoid-input", "a, b, c, d, e, f")
    page.press("#avoid-input", "Enter")
    expect(page.locator("#avoid-error")).to_contain_text("A tag is 1 to 12 characters")
    expect(page.locator("#avoid-input")).to_have_value("a, b, c, d, e, f")
    page.fill("#avoid-input", "beef")
    page.press("#avoid-input", "Enter")
    expect(item(page, "Pho").locator(".avoiders")).to_be_visible()
    expect(page.locator("#avoid-error")).to_have_text("")
    axe_clean(page)
    page.locator("#blind-toggle").click()  # show the votes again
    expect(page.locator("#blind-note")).to_be_hidden()
    expect(page.locator("#blind-toggle")).to_contain_text("Hide the votes")
