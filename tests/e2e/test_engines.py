"""The room page in WebKitGTK (the engine of every iPhone browser, KakaoTalk's included) and in
Firefox ESR, against daphne with DEBUG off: joining, two browsers of the same engine in sync,
the pick landing on the same winner, reconnecting after a restart, Korean, and the link shared
from `make run`'s plain-http address. Each test runs once per engine
(tests/support/engines.py); a script error or a refusal by the Content-Security-Policy fails
it."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.support.browser import SCREENSHOTS
from tests.support.client import create_room, http_json, room_state
from tests.support.engines import PHONE, EnginePage, Xvfb
from tests.support.processes import DaphneServer
from tests.support.proxy import LAN_HOST, ForwardProxy
from tests.support.seed import Person, earlier_lunches

pytestmark = [pytest.mark.e2e, pytest.mark.engines]

Pages = Callable[..., EnginePage]


def row(name: str) -> str:
    """The list row of an idea (names in these tests have no quotes)."""
    return f'#items > li[data-name="{name}"]'


def welcomed(page: EnginePage) -> None:
    """Wait until the page is connected and has the room's state (which shows the headcount
    bar and moves everything below it: a click aimed before that lands elsewhere)."""
    page.wait_status("online")
    page.wait("return !!document.querySelector('#participants .me')", what="welcomed")


def join(page: EnginePage, url: str, name: str) -> None:
    """Open a room's link, wait until connected, and save one's name in the name field."""
    page.goto(url)
    page.watch_errors()
    welcomed(page)
    # WebDriver's clear takes the focus away from the field: typed before the welcome, the
    # name would be added to the one the page suggested.
    page.type("#name-input", name, enter=True)
    page.wait(
        "const me = document.querySelector('#participants .me');"
        "return me && me.firstChild.textContent === arguments[0]",
        name,
        what=f"{name} in the list of people",
    )


def add_idea(page: EnginePage, name: str) -> None:
    page.type("#item-input", name, enter=True)
    page.wait("return !!document.querySelector(arguments[0])", row(name), what=f"{name} listed")


def no_errors(*pages: EnginePage) -> None:
    for page in pages:
        assert page.errors() == [], page.engine


def test_join_and_live_sync_between_two_browsers(
    daphne_factory: Callable[..., DaphneServer], engine_pages: Pages, engine_display: Xvfb
) -> None:
    """Create a room from the home page, copy its link, and two browsers of the same engine
    see each other's adds, votes, vetoes and removals; a duplicate is refused in words."""
    server = daphne_factory()
    mina = engine_pages()
    mina.goto(server.http_url + "/")
    mina.click("#create-room")
    mina.wait("return /\\/rooms\\/[\\w-]+\\/$/.test(location.pathname)", what="in a new room")
    link = mina.wait("const f = document.getElementById('share-link'); return f && f.value")
    assert link == mina.evaluate("return location.href")
    join(mina, link, "Mina")
    joon = engine_pages()
    join(joon, link, "Joon")
    for page in (mina, joon):
        page.wait_text("#people-count", "2/10")
        page.wait_contains("#participants", "Mina")
        page.wait_contains("#participants", "Joon")

    # The copy button puts the link on the clipboard (the async clipboard: 127.0.0.1 is a
    # secure context).
    mina.click("#copy-link")
    mina.wait_text("#copy-status", "Link copied.")
    assert engine_display.clipboard() == link

    add_idea(mina, "Kimchi stew")
    joon.wait_contains(row("Kimchi stew") + " .item-meta", "added by Mina")
    assert mina.evaluate("return document.getElementById('item-input').value") == ""

    joon.click(row("Kimchi stew") + " button.vote")
    mina.wait_text(row("Kimchi stew") + " button.vote .tally", "1")
    mina.wait_text(row("Kimchi stew") + " .voters", "👍 Joon")
    joon.wait(
        "return document.querySelector(arguments[0]).getAttribute('aria-pressed') === 'true'",
        row("Kimchi stew") + " button.vote",
        what="vote pressed",
    )

    mina.click(row("Kimchi stew") + " button.veto")
    joon.wait(
        "return document.querySelector(arguments[0]).classList.contains('vetoed')",
        row("Kimchi stew"),
        what="Kimchi stew vetoed",
    )
    joon.wait_contains(row("Kimchi stew") + " .vetoes", "vetoed by Mina")

    joon.type("#item-input", "  KIMCHI stew ", enter=True)
    joon.wait_text("#item-error", "That one is already on the list.")
    assert mina.evaluate("return document.querySelectorAll('#items > li').length") == 1

    # Removal waits for its undo time, then leaves both lists.
    joon.click(row("Kimchi stew") + " button.remove")
    joon.wait_text("#undo-text", "Kimchi stew removed.")
    mina.wait(
        "return document.querySelectorAll('#items > li').length === 0",
        timeout=15,
        what="the removal on the other page",
    )
    mina.wait("return !document.getElementById('items-empty').hidden", what="empty list")
    no_errors(mina, joon)


def record_reel(page: EnginePage) -> None:
    """Remember every name the pick reel shows on this page, in order."""
    page.evaluate(
        """const reel = document.getElementById('reel-text');
        window.__reel = [];
        new MutationObserver(() => window.__reel.push(reel.textContent))
          .observe(reel, {childList: true, characterData: true, subtree: true});"""
    )


def test_pick_lands_on_the_same_winner_everywhere(
    daphne_factory: Callable[..., DaphneServer], engine_pages: Pages, engine_display: Xvfb
) -> None:
    """Both browsers spin the same names and land on the server's choice, never a veto."""
    server = daphne_factory()
    room = create_room(server.http_url)
    mina = engine_pages()
    join(mina, room["url"], "Mina")
    joon = engine_pages()
    join(joon, room["url"], "Joon")
    for name in ("Bibimbap", "Pho", "Tacos"):
        add_idea(mina, name)
        joon.wait("return !!document.querySelector(arguments[0])", row(name), what=name)
    joon.click(row("Tacos") + " button.veto")
    mina.wait(
        "return document.querySelector(arguments[0]).classList.contains('vetoed')",
        row("Tacos"),
        what="Tacos vetoed",
    )
    for page in (mina, joon):
        record_reel(page)

    joon.click('input[name="mode"][value="weighted"]')
    assert joon.evaluate("return document.querySelector('input[value=weighted]').checked")
    joon.click("#pick")
    for page in (mina, joon):
        page.wait("return !document.getElementById('decision').hidden", what="the decision")
    decision = room_state(server.http_url, room["id"])["room"]["decision"]
    assert decision["item"] in {"Bibimbap", "Pho"}, decision
    for page in (mina, joon):
        page.wait_text("#decision-item", decision["item"])
        page.wait_text("#decision-by", "picked by Joon")
        assert page.evaluate(
            "return document.querySelector(arguments[0]).classList.contains('winner')",
            row(decision["item"]),
        )
    # The same spin on both pages: the same names in the same order, ending on the winner.
    spun = mina.evaluate("return window.__reel")
    assert len(spun) > 5 and spun[-1] == decision["item"], spun
    assert joon.evaluate("return window.__reel") == spun

    # "Share the news": the share sheet where the engine has one (neither has here), else
    # the sentence and the link on the clipboard.
    assert not mina.evaluate("return 'share' in navigator")
    mina.click("#share-decision")
    mina.wait_text("#decision-status", "Copied. Paste it in your group chat.")
    assert engine_display.clipboard() == f"We're eating {decision['item']}! {room['url']}"
    no_errors(mina, joon)


def test_page_reconnects_after_a_restart_and_shows_the_newest_state(
    daphne_factory: Callable[..., DaphneServer], engine_pages: Pages
) -> None:
    """daphne stops and comes back on the same port: the page says it is reconnecting, gets
    back in on its own, shows what changed meanwhile, and its own changes go out again."""
    server = daphne_factory()
    room = create_room(server.http_url)
    mina = engine_pages()
    join(mina, room["url"], "Mina")
    add_idea(mina, "Ramen")

    server.stop()
    mina.wait_status("offline")
    mina.wait_contains("#connection-text", "Reconnecting")
    server.start()
    # A change made the moment the server is back, before the page's next try: the page
    # must show it once it is in again.
    joon = Person(room["ws_url"], "Joon")
    try:
        joon.do({"action": "add", "item": "Udon"})
        mina.wait_status("online", timeout=20)
        mina.wait_contains(row("Udon") + " .item-meta", "added by Joon")
        mina.wait_text("#people-count", "2/10")
        add_idea(mina, "Soba")
        joon.wait(lambda e: e["type"] == "state" and any(i["name"] == "Soba" for i in e["items"]))
    finally:
        joon.close()
    mina.wait_text("#people-count", "1/10")
    no_errors(mina)


def test_korean_from_the_browser_language_and_from_the_switch(
    daphne_factory: Callable[..., DaphneServer], engine_pages: Pages
) -> None:
    """A Korean phone gets Korean pages and script text, with the right particle after each
    word; an English browser switches to Korean with the button at the top."""
    server = daphne_factory()
    minsu = engine_pages(locale="ko-KR", size=PHONE)
    assert minsu.evaluate("return navigator.language") == "ko-KR"
    minsu.goto(server.http_url + "/")
    minsu.watch_errors()
    assert minsu.evaluate("return document.documentElement.lang") == "ko"
    minsu.wait_text("h1", "점심 뭐 먹을까요?")
    minsu.click("#create-room")
    minsu.wait_status("online")
    minsu.wait_text("#connection-text", "연결됨")
    assert "메뉴 뽑기" in minsu.text("#pick")
    room_url = minsu.evaluate("return location.href")
    join(minsu, room_url, "민수")
    add_idea(minsu, "김치찌개")
    minsu.wait_contains(row("김치찌개") + " .item-meta", "민수 님이 추가")
    minsu.type("#item-input", "김치찌개", enter=True)
    minsu.wait_text("#item-error", "이미 목록에 있어요.")

    # Another's doings, said with the particle each word takes (비빔밥을, 냉면으로).
    room_id = room_url.rstrip("/").rsplit("/", 1)[1]
    joon = Person(f"{server.ws_url}/ws/rooms/{room_id}/", "Joon")
    try:
        joon.do({"action": "add", "item": "비빔밥"})
        joon.do({"action": "veto", "item": "비빔밥"})
        minsu.wait_contains("#announcer", "Joon 님이 비빔밥을 거부했어요.")
        joon.do({"action": "rename", "name": "지철"})
        minsu.wait_contains("#announcer", "Joon 님이 이름을 지철로 바꿨어요.")
    finally:
        joon.close()
    no_errors(minsu)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    minsu.evaluate("window.scrollTo(0, 0)")
    minsu.screenshot(SCREENSHOTS / f"room-phone-ko-{minsu.engine}.png")

    english = engine_pages(locale="en-US")
    english.goto(room_url)
    assert english.evaluate("return document.documentElement.lang") == "en"
    english.wait_text("#connection-text", "Connected")
    english.wait_contains(row("김치찌개") + " .item-meta", "added by 민수")
    english.click('.lang-switch button[value="ko"]')
    english.wait("return document.documentElement.lang === 'ko'", what="a Korean page")
    english.wait_text("#connection-text", "연결됨")
    english.wait_contains(row("김치찌개") + " .item-meta", "민수 님이 추가")
    assert "메뉴 뽑기" in english.text("#pick")


def test_a_groups_usual_places_in_one_tap(
    daphne_factory: Callable[..., DaphneServer], e2e_database: str, engine_pages: Pages
) -> None:
    """A lunch group's room offers its usual places as one-tap adds, and still does in an
    engine without form.requestSubmit (Safari before 16: the iPhones left on iOS 15)."""
    server = daphne_factory()
    status, group = http_json(
        "POST", f"{server.http_url}/api/groups/", json.dumps({"name": "Team Kimchi"}).encode()
    )
    assert status == 201, group
    earlier_lunches(e2e_database, group["slug"])
    mina = engine_pages()
    mina.goto(group["url"])
    mina.click("#open-room")
    mina.wait("return /\\/rooms\\/[\\w-]+\\/$/.test(location.pathname)", what="today's room")
    mina.watch_errors()
    welcomed(mina)
    mina.wait("return !document.getElementById('favorites-box').hidden", what="usual places")

    mina.click('#favorite-list button[aria-label="Add Bibimbap"]')
    mina.wait("return !!document.querySelector(arguments[0])", row("Bibimbap"), what="Bibimbap")
    # The same tap where forms have no requestSubmit.
    mina.evaluate("delete HTMLFormElement.prototype.requestSubmit")
    assert mina.evaluate("return !('requestSubmit' in document.getElementById('add-form'))")
    mina.click('#favorite-list button[aria-label="Add Kimchi stew"]')
    mina.wait("return !!document.querySelector(arguments[0])", row("Kimchi stew"), what="stew")
    mina.wait("return document.getElementById('favorites-box').hidden", what="no usual place left")
    no_errors(mina)


def test_sharing_the_link_from_the_office_network_over_plain_http(
    daphne_factory: Callable[..., DaphneServer], engine_pages: Pages, engine_display: Xvfb
) -> None:
    """Opened as phones open `make run`'s address (a name that is not loopback, plain http: not
    a secure context, so no async clipboard and no share sheet), the copy button still puts the
    link on the clipboard and leaves the focus where it was, and a tap on the link selects all
    of it to copy by hand."""
    server = daphne_factory(DJANGO_ALLOWED_HOSTS=f"127.0.0.1,localhost,{LAN_HOST}")
    proxy = ForwardProxy(server.port)
    try:
        room = create_room(server.http_url)
        url = room["url"].replace("127.0.0.1", LAN_HOST)
        mina = engine_pages(proxy=proxy.port)
        join(mina, url, "Mina")
        assert mina.evaluate("return [location.href, isSecureContext, 'share' in navigator]") == [
            url,
            False,
            False,
        ]
        assert mina.evaluate("return document.getElementById('share-link').value") == url

        mina.click("#copy-link")
        mina.wait_text("#copy-status", "Link copied.")
        assert engine_display.clipboard() == url
        # The focus stays on the button (a screen reader is not taken elsewhere), the link
        # field is as it was, and the copy left nothing behind in the page.
        assert mina.evaluate("return document.activeElement.id") == "copy-link"
        assert mina.evaluate("return document.getElementById('share-link').value") == url
        assert mina.evaluate("return document.querySelectorAll('textarea').length") == 0

        mina.click("#share-link")
        mina.wait(
            "const f = document.getElementById('share-link');"
            "return f.selectionStart === 0 && f.selectionEnd === f.value.length",
            what="the whole link selected",
        )
        no_errors(mina)
    finally:
        proxy.stop()
