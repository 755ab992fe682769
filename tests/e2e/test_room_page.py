"""Issue 12 on the page, in Chromium: who is who, errors where they happen, the pick in view,
recoverable removal, status that speaks once, announcements, dark mode, targets and labels."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, WebSocketRoute, expect

from tests.support.browser import PHONE, add_item, item, open_room
from tests.support.client import create_room
from tests.support.processes import DaphneServer
from tests.support.seed import Person

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def in_viewport(page: Page, selector: str) -> bool:
    return page.evaluate(
        """(sel) => { const r = document.querySelector(sel).getBoundingClientRect();
                     return r.top >= 0 && r.bottom <= window.innerHeight && r.height > 0; }""",
        selector,
    )


def active_id(page: Page) -> str:
    return page.evaluate("document.activeElement ? document.activeElement.id : ''")


def test_two_people_with_the_same_name_are_told_apart(
    daphne_factory: Callable[..., DaphneServer], contexts
) -> None:
    """Two "Kim"s: each page marks only its own vote, and the second shows as "Kim (2)"."""
    server = daphne_factory()
    room = create_room(server.http_url)
    first = open_room(contexts(name="Kim"), room["url"])
    second = open_room(contexts(name="Kim"), room["url"])
    add_item(first, "Pho")
    item(first, "Pho").locator("button.vote").click()
    expect(item(second, "Pho").locator("button.vote .tally")).to_have_text("1")
    # The vote is the first Kim's: not pressed on the second Kim's page.
    expect(item(first, "Pho").locator("button.vote")).to_have_attribute("aria-pressed", "true")
    expect(item(second, "Pho").locator("button.vote")).to_have_attribute("aria-pressed", "false")
    for page in (first, second):
        expect(page.locator("#participants > li")).to_have_count(2)
        expect(page.locator("#participants")).to_contain_text("Kim (2)")
    item(second, "Pho").locator("button.vote").click()
    expect(item(first, "Pho").locator(".voters")).to_have_text("👍 Kim, Kim (2)")


def test_rejoin_token_keeps_me_without_cookies(
    daphne_factory: Callable[..., DaphneServer], contexts
) -> None:
    """Cookies cleared: the token kept per room in localStorage brings back the same person."""
    server = daphne_factory()
    room = create_room(server.http_url)
    context = contexts(name="Mina")
    page = open_room(context, room["url"])
    add_item(page, "Ramen")
    item(page, "Ramen").locator("button.vote").click()
    expect(item(page, "Ramen").locator("button.vote")).to_have_attribute("aria-pressed", "true")
    key = f"lunchsite.token.{room['id']}"
    token = page.evaluate(f"localStorage.getItem('{key}')")
    assert token and len(token) >= 22
    sent: list[str] = []
    page.on("websocket", lambda ws: sent.append(ws.url))
    context.clear_cookies()
    page.reload()
    expect(page.locator("#connection")).to_have_attribute("data-status", "online")
    assert sent and f"token={token}" in sent[-1]
    # Still me: my vote is still mine, and I am one person, not two.
    expect(item(page, "Ramen").locator("button.vote")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#people-count")).to_have_text("1/10")
    # The token is not in the page's state.
    assert token not in page.content()


def test_errors_show_next_to_the_control_and_typed_text_stays(
    daphne_factory: Callable[..., DaphneServer], contexts
) -> None:
    """A refused vote says so in its own row; a refused add keeps what was typed."""
    server = daphne_factory(ROOM_MAX_ITEMS=1, ROOM_ACTIONS_PER_10S=6)
    room = create_room(server.http_url)
    page = open_room(contexts(name="Mina"), room["url"])
    add_item(page, "Pho")
    expect(item(page, "Pho")).to_have_count(1)
    expect(page.locator("#item-input")).to_have_value("")
    add_item(page, "Ramen with extra egg")
    expect(page.locator("#item-error")).to_have_text("The list is full. Remove an idea first.")
    expect(page.locator("#item-input")).to_have_value("Ramen with extra egg")
    vote = item(page, "Pho").locator("button.vote")
    for _ in range(5):  # past the limit of 6 actions in 10 s
        vote.click()
    row_error = item(page, "Pho").locator(".item-error")
    expect(row_error).to_have_text("Easy there! Wait a few seconds and try again.")
    expect(page.locator("#item-error")).to_have_text("")
    assert vote.get_attribute("aria-describedby") == row_error.get_attribute("id")


def test_pick_on_a_long_list_is_seen_without_scrolling(
    daphne_factory: Callable[..., DaphneServer], contexts
) -> None:
    """Both the picker and the others see the winner in the viewport, focus on it."""
    server = daphne_factory()
    room = create_room(server.http_url)
    seeder = Person(room["ws_url"], "Seed")
    for n in range(14):
        seeder.do({"action": "add", "item": f"Place number {n}"})
    seeder.close()
    picker = open_room(contexts(name="Mina", viewport=PHONE), room["url"])
    other = open_room(contexts(name="Joon", viewport=PHONE), room["url"])
    for page in (picker, other):
        expect(page.locator("#items > li")).to_have_count(14)
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        assert not in_viewport(page, "#decision-label")
    picker.get_by_role("button", name="Pick for us").click()
    for page in (picker, other):
        expect(page.locator("#decision")).to_be_visible()
        expect(page.locator("#decision")).to_be_focused()
        assert in_viewport(page, "#decision-item"), page.evaluate("window.scrollY")
    winner = picker.locator("#decision-item").text_content()
    expect(other.locator("#decision-item")).to_have_text(winner)


def test_remove_can_be_undone_and_focus_stays(
    daphne_factory: Callable[..., DaphneServer], contexts
) -> None:
    """Remove hides the idea with an undo for a few seconds; undo brings it back for everyone;
    focus goes to the undo button, then back to the list, never to <body>."""
    server = daphne_factory()
    room = create_room(server.http_url)
    mina = open_room(contexts(name="Mina"), room["url"])
    joon = open_room(contexts(name="Joon"), room["url"])
    add_item(mina, "Pho")
    add_item(mina, "Tacos")
    expect(joon.locator("#items > li")).to_have_count(2)
    item(joon, "Pho").locator("button.vote").click()
    # ✕ sits on its own line, away from ✋.
    veto_box = item(mina, "Pho").locator("button.veto").bounding_box()
    remove_box = item(mina, "Pho").locator("button.remove").bounding_box()
    assert remove_box["y"] >= veto_box["y"] + veto_box["height"], (veto_box, remove_box)

    item(mina, "Pho").locator("button.remove").click()
    expect(item(mina, "Pho")).to_have_count(0)
    expect(mina.locator("#undo-text")).to_have_text("Pho removed.")
    assert active_id(mina) == "undo"
    mina.keyboard.press("Enter")  # undo, by keyboard
    expect(item(mina, "Pho")).to_have_count(1)
    expect(item(mina, "Pho").locator("button.remove")).to_be_focused()
    mina.wait_for_timeout(5_500)
    expect(item(joon, "Pho")).to_have_count(1)  # nothing was ever removed
    expect(item(joon, "Pho").locator("button.vote .tally")).to_have_text("1")

    item(mina, "Tacos").locator("button.remove").click()
    assert active_id(mina) == "undo"
    expect(item(joon, "Tacos")).to_have_count(0, timeout=8_000)
    expect(mina.locator("#undo-bar")).to_be_hidden()
    assert active_id(mina) == "item-input"


def test_status_speaks_once_while_offline_and_stale_errors_clear(
    daphne_factory: Callable[..., DaphneServer], contexts
) -> None:
    """Against a scripted server that keeps refusing: the status text changes once, not per
    retry; "Not connected" goes when the page is back online."""
    server = daphne_factory()
    room = create_room(server.http_url)
    page = contexts(name="Mina").new_page()
    sockets: list[WebSocketRoute] = []
    up = {"value": True}

    def accept(ws: WebSocketRoute) -> None:
        sockets.append(ws)
        if not up["value"]:
            ws.close(code=1011)
            return
        ws.send(json.dumps({"type": "welcome", "you": {"id": 1, "name": "Mina", "token": "t"}}))

    page.route_web_socket(re.compile(r"/ws/rooms/"), accept)
    page.goto(room["url"])
    expect(page.locator("#connection")).to_have_attribute("data-status", "online")
    page.evaluate(
        """() => { window.__spoken = [];
          const box = document.getElementById('connection-text');
          new MutationObserver(() => window.__spoken.push(box.textContent))
            .observe(box, {childList: true, characterData: true, subtree: true}); }"""
    )
    up["value"] = False
    sockets[-1].close(code=1011)
    expect(page.locator("#connection")).to_have_attribute("data-status", "offline")
    page.get_by_role("button", name="Pick for us").click()
    expect(page.locator("#pick-error")).to_have_text("Not connected. Try again in a moment.")
    page.wait_for_timeout(4_000)
    tries = len(sockets)
    assert tries >= 3, tries  # it kept trying...
    spoken = page.evaluate("window.__spoken")
    assert spoken == ["Offline. Reconnecting…"], spoken  # ...and said so once
    assert page.locator("#connection-text").get_attribute("role") == "status"
    up["value"] = True
    page.evaluate("window.dispatchEvent(new Event('online'))")
    expect(page.locator("#connection")).to_have_attribute("data-status", "online")
    expect(page.locator("#pick-error")).to_have_text("")


def test_others_changes_are_announced_and_the_decision_once(
    daphne_factory: Callable[..., DaphneServer], contexts
) -> None:
    """Joins, renames, votes and vetoes of others reach the live region; the pick, once."""
    server = daphne_factory()
    room = create_room(server.http_url)
    mina = open_room(contexts(name="Mina"), room["url"])
    mina.evaluate(
        """() => { window.__said = [];
          const box = document.getElementById('announcer');
          new MutationObserver(() => window.__said.push(box.textContent))
            .observe(box, {childList: true, characterData: true, subtree: true}); }"""
    )
    assert mina.locator("#announcer").get_attribute("aria-live") == "polite"
    joon = Person(room["ws_url"], "Joon")
    joon.do({"action": "add", "item": "Pho"})
    joon.do({"action": "vote", "item": "Pho"})
    joon.do({"action": "veto", "item": "Pho"})
    joon.do({"action": "rename", "name": "Joonie"})
    joon.do({"action": "add", "item": "Tacos"})
    joon.do({"action": "pick"}, until=lambda s: s["room"]["decision"])
    expect(mina.locator("#decision-item")).to_have_text("Tacos")
    mina.wait_for_timeout(1_000)
    said = " ".join(mina.evaluate("window.__said"))
    for sentence in (
        "Joon joined.",
        "Pho was added.",
        "Joon voted for Pho.",
        "Joon vetoed Pho.",
        "Joon is now Joonie.",
        "We're eating Tacos!",
    ):
        assert sentence in said, (sentence, said)
    assert said.count("We're eating") == 1, said
    assert mina.locator("#decision").get_attribute("aria-live") is None
    joon.close()


def test_phone_layout_labels_targets_countdown_and_still_here(
    daphne_factory: Callable[..., DaphneServer], contexts
) -> None:
    """On a phone: ✋ and ✕ say what they do, every control is at least 44 px tall, the
    countdown is explained, and "I'm still here" stays in view on a long list."""
    server = daphne_factory(ROOM_TTL_SECONDS=50)
    room = create_room(server.http_url)
    seeder = Person(room["ws_url"], "Seed")
    for n in range(10):
        seeder.do({"action": "add", "item": f"Idea {n}"})
    seeder.close()
    page = open_room(contexts(name="Mina", viewport=PHONE), room["url"])
    expect(page.locator("#items > li")).to_have_count(10)
    row = item(page, "Idea 0")
    expect(row.locator("button.veto .label")).to_have_text("Veto")
    expect(row.locator("button.veto .label")).to_be_visible()
    expect(row.locator("button.remove .label")).to_have_text("Remove")
    expect(row.locator("button.remove")).to_have_accessible_name("Remove Idea 0")
    expect(page.locator("#countdown-hint")).to_contain_text("without activity")
    small = page.evaluate(
        """() => Array.from(document.querySelectorAll(
              'button, .mode label, .lang-switch button, input:not([type=radio]), summary'))
            .filter(e => e.offsetParent !== null)
            .map(e => [e.id || e.className || e.textContent.trim(), e.getBoundingClientRect()])
            .filter(([, r]) => r.height < 44 || r.width < 44)
            .map(([name, r]) => name + ' ' + Math.round(r.width) + 'x' + Math.round(r.height))"""
    )
    assert not small, small
    expect(page.locator("#warning")).to_be_visible()
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_timeout(200)
    assert in_viewport(page, "#extend")


def test_dark_mode_follows_the_system(
    daphne_factory: Callable[..., DaphneServer], contexts
) -> None:
    """prefers-color-scheme: dark gives a dark page with light text."""
    server = daphne_factory()
    room = create_room(server.http_url)
    dark = open_room(contexts(color_scheme="dark"), room["url"])
    light = open_room(contexts(color_scheme="light"), room["url"])

    def brightness(page: Page, selector: str, prop: str) -> float:
        color = page.evaluate(f"getComputedStyle(document.querySelector('{selector}')).{prop}")
        r, g, b = (int(v) for v in re.findall(r"\d+", color)[:3])
        return (r + g + b) / 3

    assert brightness(dark, "html", "backgroundColor") < 60
    assert brightness(dark, "body", "color") > 200
    assert brightness(light, "html", "backgroundColor") > 200


def test_too_many_tabs_is_said_once_in_the_status_line(
    daphne_factory: Callable[..., DaphneServer], contexts
) -> None:
    """Refused with too_many_connections (4429): the status line says why, once, while the page
    keeps trying; the first try that gets in clears it."""
    server = daphne_factory()
    room = create_room(server.http_url)
    page = contexts(name="Mina").new_page()
    sockets: list[WebSocketRoute] = []
    full = {"value": True}

    def accept(ws: WebSocketRoute) -> None:
        sockets.append(ws)
        if full["value"]:
            ws.send(json.dumps({"type": "error", "code": "too_many_connections", "message": "x"}))
            ws.close(code=4429)
            return
        ws.send(json.dumps({"type": "welcome", "you": {"id": 1, "name": "Mina", "token": "t"}}))

    page.route_web_socket(re.compile(r"/ws/rooms/"), accept)
    page.goto(room["url"])
    text = page.locator("#connection-text")
    expect(text).to_have_text("Too many open tabs for this room. Close one and try again.")
    page.evaluate(
        """() => { window.__spoken = [];
          const box = document.getElementById('connection-text');
          new MutationObserver(() => window.__spoken.push(box.textContent))
            .observe(box, {childList: true, characterData: true, subtree: true}); }"""
    )
    page.wait_for_timeout(3_500)
    assert len(sockets) >= 3, len(sockets)
    assert page.evaluate("window.__spoken") == []
    expect(page.locator("#item-error")).to_have_text("")
    full["value"] = False
    page.evaluate("window.dispatchEvent(new Event('online'))")
    expect(text).to_have_text("Connected")
