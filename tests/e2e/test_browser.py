"""The room page in a real Chromium (Playwright) against daphne with DEBUG off."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, WebSocketRoute, expect

from tests.support.browser import DESKTOP, SCREENSHOTS, SMALL_PHONE, add_item, item, open_room
from tests.support.client import create_room, state_frame
from tests.support.processes import DaphneServer

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

XSS = '<img src=x onerror="window.__xss=1">'
PHONE = SMALL_PHONE


def record_reel(page: Page) -> None:
    """Remember every name the pick reel shows on this page, in order."""
    page.evaluate(
        """() => {
          const reel = document.getElementById('reel-text');
          window.__reel = [];
          new MutationObserver(() => window.__reel.push(reel.textContent))
            .observe(reel, {childList: true, characterData: true, subtree: true});
        }"""
    )


def test_from_create_to_decision(daphne_factory: Callable[..., DaphneServer], contexts) -> None:
    """The whole story on two phones: create, share the link, add, vote, pick: same result."""
    server = daphne_factory()
    started = time.monotonic()
    host = contexts(name="Mina", viewport=PHONE).new_page()
    host.goto(server.http_url + "/")
    host.get_by_role("button", name="Create a room").click()
    expect(host.locator("#connection")).to_have_attribute("data-status", "online")
    link = host.locator("#share-link").input_value()
    assert link == host.url
    guest = open_room(contexts(name="Joon", viewport=PHONE), link)
    add_item(guest, "Kimchi stew")
    add_item(host, "Pizza")
    item(host, "Kimchi stew").locator("button.vote").click()
    expect(item(guest, "Kimchi stew").locator("button.vote .tally")).to_have_text("1")
    guest.get_by_role("button", name="Pick for us").click()
    for page in (host, guest):
        expect(page.locator("#decision-item")).to_have_text("Kimchi stew")
    elapsed = time.monotonic() - started
    print(f"create -> 'we're eating Kimchi stew' on both pages: {elapsed:.1f} s")
    assert elapsed < 60


def test_two_people_see_each_others_changes(
    daphne_factory: Callable[..., DaphneServer], contexts
) -> None:
    """Add, vote, veto and remove in one page show in the other, with names and counts."""
    server = daphne_factory()
    room = create_room(server.http_url)
    mina_context = contexts(name="Mina")
    mina_context.grant_permissions(["clipboard-read", "clipboard-write"])
    mina = open_room(mina_context, room["url"])
    joon = open_room(contexts(name="Joon"), room["url"])
    for page in (mina, joon):
        expect(page.locator("#people-count")).to_have_text("2/10")
        expect(page.locator("#participants")).to_contain_text("Mina")
        expect(page.locator("#participants")).to_contain_text("Joon")

    # Sharing: the copy button puts the room's link on the clipboard; the QR code loaded.
    mina.get_by_role("button", name="Copy link").click()
    expect(mina.locator("#copy-status")).to_have_text("Link copied.")
    assert mina.evaluate("navigator.clipboard.readText()") == room["url"]
    assert mina.locator("#qr").evaluate("img => img.naturalWidth") > 100

    add_item(mina, "Kimchi stew")
    expect(item(joon, "Kimchi stew")).to_contain_text("added by Mina")
    expect(mina.locator("#item-input")).to_have_value("")

    # Joon votes with the keyboard only.
    vote = item(joon, "Kimchi stew").locator("button.vote")
    vote.focus()
    joon.keyboard.press("Enter")
    expect(item(mina, "Kimchi stew").locator("button.vote .tally")).to_have_text("1")
    expect(item(mina, "Kimchi stew").locator(".voters")).to_have_text("👍 Joon")
    expect(item(joon, "Kimchi stew").locator("button.vote")).to_have_attribute(
        "aria-pressed", "true"
    )

    item(mina, "Kimchi stew").locator("button.veto").click()
    expect(item(joon, "Kimchi stew")).to_have_class(re.compile(r"\bvetoed\b"))
    expect(item(joon, "Kimchi stew").locator(".vetoes")).to_contain_text("vetoed by Mina")

    # A duplicate gets a short message next to the input; the list is unchanged.
    add_item(joon, "  KIMCHI stew ")
    expect(joon.locator("#item-error")).to_have_text("That one is already on the list.")
    expect(mina.locator("#items > li")).to_have_count(1)

    item(joon, "Kimchi stew").locator("button.remove").click()
    expect(mina.locator("#items > li")).to_have_count(0)
    expect(mina.locator("#items-empty")).to_be_visible()

    # Picking from an empty list says why, next to the pick button.
    mina.get_by_role("button", name="Pick for us").click()
    expect(mina.locator("#pick-error")).to_have_text(
        "Nothing to pick from: add an idea, lift a veto, or find something everyone can eat."
    )


def test_pick_lands_on_the_same_item_everywhere(
    daphne_factory: Callable[..., DaphneServer], contexts
) -> None:
    """Every page spins and lands on the server's pick; reduced motion skips the spin."""
    server = daphne_factory()
    room = create_room(server.http_url)
    mina_context = contexts(name="Mina")
    mina_context.grant_permissions(["clipboard-read", "clipboard-write"])
    mina = open_room(mina_context, room["url"])
    joon = open_room(contexts(name="Joon"), room["url"])
    calm = open_room(contexts(name="Calm", reduced_motion="reduce"), room["url"])
    for page in (mina, joon, calm):
        record_reel(page)
    for name in ("Bibimbap", "Pho", "Tacos"):
        add_item(mina, name)
        expect(item(joon, name)).to_have_count(1)
    item(joon, "Tacos").locator("button.veto").click()
    expect(item(mina, "Tacos")).to_have_class(re.compile(r"\bvetoed\b"))

    joon.get_by_label("Vote-weighted").check()
    joon.get_by_role("button", name="Pick for us").click()
    for page in (mina, joon):
        expect(page.locator("#reel")).to_be_visible()
        expect(page.locator("#decision")).to_be_visible()
    winner = mina.locator("#decision-item").text_content()
    assert winner in {"Bibimbap", "Pho"}, winner  # never the vetoed one
    expect(joon.locator("#decision-item")).to_have_text(winner)
    expect(joon.locator("#reel-text")).to_have_text(winner)
    expect(mina.locator("#decision-by")).to_have_text("picked by Joon")
    expect(item(mina, winner)).to_have_class(re.compile(r"\bwinner\b"))
    expect(calm.locator("#decision-item")).to_have_text(winner)
    # The same spin on every page (same names in the same order), none with reduced motion.
    spun = mina.evaluate("window.__reel")
    assert len(spun) > 5 and spun[-1] == winner, spun
    assert joon.evaluate("window.__reel") == spun
    assert calm.evaluate("window.__reel") == [winner]

    # "Share the news": the share sheet where there is one, else the clipboard.
    mina.get_by_role("button", name="Share the news").click()
    if not mina.evaluate("'share' in navigator"):
        expect(mina.locator("#decision-status")).to_contain_text("Copied")
        shared = mina.evaluate("navigator.clipboard.readText()")
        assert shared == f"We're eating {winner}! {room['url']}"

    # Someone joining later sees the decision without a spin.
    late = open_room(contexts(name="Late"), room["url"])
    expect(late.locator("#decision-item")).to_have_text(winner)


def test_reload_keeps_the_same_participant(
    daphne_factory: Callable[..., DaphneServer], contexts
) -> None:
    """A reload is the same person: the count stays at 2 and the nickname is remembered."""
    server = daphne_factory()
    room = create_room(server.http_url)
    mina = open_room(contexts(name="Mina"), room["url"])
    joon_context = contexts()  # no stored name: gets a friendly random one
    joon = open_room(joon_context, room["url"])
    suggested = joon.locator("#name-input").input_value()
    assert suggested.strip() and len(suggested) <= 24
    expect(mina.locator("#participants")).to_contain_text(suggested)

    # Renaming is sent as `rename` and remembered for the next visit.
    joon.fill("#name-input", "Joon")
    joon.press("#name-input", "Enter")
    expect(mina.locator("#participants")).to_contain_text("Joon")

    for _ in range(2):
        joon.reload()
        expect(joon.locator("#connection")).to_have_attribute("data-status", "online")
        expect(joon.locator("#name-input")).to_have_value("Joon")
        expect(joon.locator("#people-count")).to_have_text("2/10")
    time.sleep(0.5)  # a leftover connection would show up as a third person now
    expect(mina.locator("#people-count")).to_have_text("2/10")
    expect(mina.locator("#participants > li")).to_have_count(2)

    # A second tab of the same browser is the same person too.
    joon_context.new_page().goto(room["url"])
    time.sleep(0.5)
    expect(mina.locator("#people-count")).to_have_text("2/10")


def test_page_reconnects_after_a_server_restart(
    daphne_factory: Callable[..., DaphneServer], contexts
) -> None:
    """daphne stops and comes back on the same port: the page resyncs and shows later changes."""
    server = daphne_factory()
    room = create_room(server.http_url)
    mina = open_room(contexts(name="Mina"), room["url"])
    add_item(mina, "Ramen")
    expect(item(mina, "Ramen")).to_have_count(1)

    server.stop()
    expect(mina.locator("#connection")).to_have_attribute("data-status", "offline")
    expect(mina.locator("#connection-text")).to_contain_text("Reconnecting")
    server.start()
    expect(mina.locator("#connection")).to_have_attribute("data-status", "online", timeout=15_000)

    joon = open_room(contexts(name="Joon"), room["url"])
    add_item(joon, "Udon")
    expect(item(mina, "Udon")).to_contain_text("added by Joon")
    expect(mina.locator("#people-count")).to_have_text("2/10")
    # Writes from the reconnected page work as well.
    add_item(mina, "Soba")
    expect(item(joon, "Soba")).to_have_count(1)


def test_item_with_markup_is_shown_as_text(
    daphne_factory: Callable[..., DaphneServer], contexts
) -> None:
    """An item that looks like HTML is only text: no element, no script ran, on either page."""
    server = daphne_factory()
    room = create_room(server.http_url)
    mina = open_room(contexts(name="Mina"), room["url"])
    joon = open_room(contexts(name='"><b>Joon</b>'), room["url"])
    add_item(mina, XSS)
    for page in (mina, joon):
        expect(page.locator("#items .item-name")).to_have_text(XSS)
        expect(page.locator("#items img")).to_have_count(0)
        expect(page.locator("#participants")).to_contain_text('"><b>Joon</b>')
        expect(page.locator("#participants b")).to_have_count(0)
    item(joon, "<img").locator("button.vote").click()
    expect(item(mina, "<img").locator(".voters")).to_have_text('👍 "><b>Joon</b>')
    joon.wait_for_timeout(300)
    for page in (mina, joon):
        assert page.evaluate("window.__xss") is None


def test_korean_and_english_follow_the_browser_language(
    daphne_factory: Callable[..., DaphneServer], contexts
) -> None:
    """A ko-KR browser gets Korean (templates and JS strings), en-US English; the switch works."""
    server = daphne_factory()
    korean = contexts(locale="ko-KR", name="민수").new_page()
    korean.goto(server.http_url + "/")
    expect(korean.locator("html")).to_have_attribute("lang", "ko")
    expect(korean.locator("h1")).to_have_text("점심 뭐 먹을까요?")
    korean.get_by_role("button", name="방 만들기").click()
    expect(korean).to_have_url(re.compile(r"/rooms/[\w-]+/$"))
    expect(korean.locator("#connection-text")).to_have_text("연결됨")
    expect(korean.get_by_role("button", name="메뉴 뽑기")).to_be_visible()
    add_item(korean, "김치찌개")
    expect(item(korean, "김치찌개")).to_contain_text("민수 님이 추가")
    add_item(korean, "김치찌개")
    expect(korean.locator("#item-error")).to_have_text("이미 목록에 있어요.")

    english = contexts(locale="en-US").new_page()
    english.goto(korean.url)
    expect(english.locator("html")).to_have_attribute("lang", "en")
    expect(english.locator("#connection-text")).to_have_text("Connected")
    expect(english.get_by_role("button", name="Pick for us")).to_be_visible()
    expect(item(english, "김치찌개")).to_contain_text("added by 민수")

    # The switch in the header: English -> 한국어, and it sticks for the next page.
    english.get_by_role("button", name="한국어").click()
    expect(english.locator("html")).to_have_attribute("lang", "ko")
    expect(english.locator("#connection-text")).to_have_text("연결됨")
    english.goto(server.http_url + "/")
    expect(english.locator("h1")).to_have_text("점심 뭐 먹을까요?")


def test_room_full_screen(daphne_factory: Callable[..., DaphneServer], contexts) -> None:
    """With a cap of one, the second person sees the room-full screen, not a broken page."""
    server = daphne_factory(ROOM_MAX_PARTICIPANTS=1)
    room = create_room(server.http_url)
    first = open_room(contexts(name="First"), room["url"])
    expect(first.locator("#people-count")).to_have_text("1/1")
    second = contexts(name="Second").new_page()
    second.goto(room["url"])
    expect(second.locator("#screen-full")).to_be_visible()
    expect(second.locator("#screen-full h1")).to_have_text("This room is full.")
    expect(second.locator("#room")).to_be_hidden()
    second.wait_for_timeout(1_500)  # no reconnect loop knocking on the full room
    expect(second.locator("#screen-full")).to_be_visible()
    expect(first.locator("#people-count")).to_have_text("1/1")


def test_not_found_screen(daphne_factory: Callable[..., DaphneServer], contexts) -> None:
    """An unknown room link answers 404 with a page that offers a new room."""
    server = daphne_factory()
    page = contexts().new_page()
    response = page.goto(server.http_url + "/rooms/no-such-room/")
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("This room does not exist.")
    page.get_by_role("button", name="Start a new room").click()
    expect(page.locator("#connection")).to_have_attribute("data-status", "online")


def test_expiry_warning_extend_and_expired_screen(
    daphne_factory: Callable[..., DaphneServer], contexts
) -> None:
    """Last-minute warning, "I'm still here" extends, then the expired screen and a new room."""
    server = daphne_factory(ROOM_TTL_SECONDS=4)
    room = create_room(server.http_url)
    page = open_room(contexts(name="Mina"), room["url"])
    expect(page.locator("#warning")).to_be_visible()
    expect(page.locator("#countdown")).to_have_attribute("data-level", "warn")
    page.wait_for_timeout(2_000)
    page.get_by_role("button", name="I'm still here").click()
    # The extension moved expiry past the original deadline: still open 3 s later.
    page.wait_for_timeout(3_000)
    expect(page.locator("#room")).to_be_visible()
    expect(page.locator("#screen-expired")).to_be_visible(timeout=8_000)
    expect(page.locator("#screen-expired h1")).to_have_text("This room is closed.")
    assert page.evaluate("document.activeElement.id") == "screen-expired-title"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "room-expired-desktop.png")
    page.get_by_role("button", name="Start a new room").click()
    expect(page).not_to_have_url(room["url"])
    expect(page.locator("#connection")).to_have_attribute("data-status", "online")
    # The old link now answers 410 with the same screen.
    response = page.goto(room["url"])
    assert response is not None and response.status == 410
    expect(page.locator("h1")).to_have_text("This room is closed.")


def test_screenshots_phone_and_desktop(
    daphne_factory: Callable[..., DaphneServer], contexts
) -> None:
    """Home and room at 360x740 and 1280x800: no sideways scrolling, no CSP violations."""
    server = daphne_factory()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    violations: list[str] = []
    friend = open_room(contexts(name="Joon"), create_room(server.http_url)["url"])
    room_url = friend.url
    for label, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        for locale in ("en-US", "ko-KR"):
            context = contexts(locale=locale, viewport=viewport, name="Mina")
            page = context.new_page()
            page.on("console", lambda m: violations.append(m.text) if "Content" in m.text else None)
            page.goto(room_url)
            expect(page.locator("#connection")).to_have_attribute("data-status", "online")
            page.goto(server.http_url + "/")  # the home page now lists this room
            expect(page.locator(".recent-list li")).to_have_count(1)
            lang = locale[:2]
            page.screenshot(path=SCREENSHOTS / f"home-{label}-{lang}.png", full_page=True)
            assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
            context.close()
    # A lively room: ideas, votes, a veto, then a decision.
    mina = open_room(contexts(name="Mina", viewport=DESKTOP), room_url)
    for name in ("Kimchi stew", "Pho", "Tonkatsu", "Bibimbap"):
        add_item(mina, name)
        expect(item(friend, name)).to_have_count(1)
    for page, name in ((mina, "Kimchi stew"), (friend, "Kimchi stew"), (friend, "Pho")):
        item(page, name).locator("button.vote").click()
    item(friend, "Tonkatsu").locator("button.veto").click()
    expect(item(mina, "Tonkatsu")).to_have_class(re.compile(r"\bvetoed\b"))
    for label, viewport, locale in (
        ("phone", PHONE, "en-US"),
        ("desktop", DESKTOP, "en-US"),
        ("phone-ko", PHONE, "ko-KR"),
    ):
        page = contexts(name="Sora", viewport=viewport, locale=locale).new_page()
        page.on("console", lambda m: violations.append(m.text) if "Content" in m.text else None)
        page.goto(room_url)
        expect(page.locator("#items > li")).to_have_count(4)
        expect(page.locator("#people-count")).to_have_text("3/10")
        page.screenshot(path=SCREENSHOTS / f"room-{label}.png", full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        page.close()
    mina.get_by_role("button", name="Pick for us").click()
    expect(mina.locator("#decision-item")).to_have_text("Kimchi stew")
    expect(mina.locator("#reel")).to_be_hidden()  # the reel steps aside for the banner
    mina.screenshot(path=SCREENSHOTS / "room-decided-desktop.png", full_page=True)
    phone = contexts(name="Sora", viewport=PHONE).new_page()
    phone.goto(room_url)
    expect(phone.locator("#decision-item")).to_have_text("Kimchi stew")
    phone.screenshot(path=SCREENSHOTS / "room-decided-phone.png", full_page=True)
    dark = contexts(name="Sora", viewport=PHONE, color_scheme="dark").new_page()
    dark.goto(room_url)
    expect(dark.locator("#decision-item")).to_have_text("Kimchi stew")
    dark.screenshot(path=SCREENSHOTS / "room-decided-phone-dark.png", full_page=True)
    assert not violations, violations


def test_client_keeps_the_newest_state_and_obeys_close_codes(
    daphne_factory: Callable[..., DaphneServer], contexts
) -> None:
    """Against a scripted server: an older state is ignored, errors become text, 1011
    reconnects with the nickname, 4404 shows the not-found screen."""
    server = daphne_factory()
    room = create_room(server.http_url)
    page = contexts(name="Mina").new_page()
    sockets: list[WebSocketRoute] = []

    def accept(ws: WebSocketRoute) -> None:
        sockets.append(ws)  # not connected to daphne: this test plays the server

    page.route_web_socket(re.compile(r"/ws/rooms/"), accept)
    page.goto(room["url"])
    expect(page.locator("#connection")).to_have_attribute("data-status", "online")
    assert len(sockets) == 1 and sockets[0].url.endswith("?name=Mina")
    ws = sockets[0]
    ws.send(json.dumps({"type": "welcome", "you": {"id": 1, "name": "Mina"}}))
    ws.send(state_frame(5, "Newer"))
    ws.send(state_frame(3, "Older"))  # late copy of an older state
    expect(page.locator("#items .item-name")).to_have_text(["Newer"])
    page.wait_for_timeout(200)
    expect(page.locator("#items .item-name")).to_have_text(["Newer"])
    ws.send(state_frame(6, "Newer", "Newest"))
    expect(page.locator("#items .item-name")).to_have_text(["Newer", "Newest"])

    ws.send(json.dumps({"type": "error", "code": "too_many_items", "message": "x"}))
    expect(page.locator("#item-error")).to_have_text("The list is full. Remove an idea first.")

    ws.close(code=1011, reason="server error")
    expect(page.locator("#connection")).to_have_attribute("data-status", "offline")
    expect(page.locator("#connection")).to_have_attribute("data-status", "online")
    assert len(sockets) == 2 and sockets[1].url.endswith("?name=Mina")
    sockets[1].send(json.dumps({"type": "error", "code": "room_not_found", "message": "x"}))
    sockets[1].close(code=4404, reason="room_not_found")
    expect(page.locator("#screen-gone")).to_be_visible()
    expect(page.locator("#room")).to_be_hidden()
    page.wait_for_timeout(1_500)
    assert len(sockets) == 2  # a room that does not exist is not retried
