"""axe-core on every screen a person meets: no serious or critical WCAG 2.1 AA violation."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.support.browser import DESKTOP, PHONE, axe_violations, describe
from tests.support.client import create_room
from tests.support.processes import DaphneServer
from tests.support.seed import Person, lively_room

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

TTL_FOR_EXPIRY = 3


@pytest.fixture(scope="module")
def axe_report() -> dict[str, int]:
    """Violations counted per screen, viewport, language and colour scheme (printed at the end)."""
    report: dict[str, int] = {}
    yield report
    print("\naxe-core serious+critical violations per screen:")
    for key, count in sorted(report.items()):
        print(f"  {key}: {count}")


def screens(server: DaphneServer, short: DaphneServer, tiny: DaphneServer) -> dict[str, tuple]:
    """The rooms behind each screen: (url, what shows it is ready)."""
    empty = create_room(server.http_url)
    lively = create_room(server.http_url)
    mina, joon = Person(lively["ws_url"], "Mina"), Person(lively["ws_url"], "Joon")
    lively_room(mina, joon)
    decided = create_room(server.http_url)
    mina2, joon2 = Person(decided["ws_url"], "Mina"), Person(decided["ws_url"], "Joon")
    lively_room(mina2, joon2)
    mina2.do({"action": "pick"}, until=lambda s: s["room"]["decision"])
    # Expired: a room on the server with a short life, decided, then left alone.
    expired = create_room(short.http_url)
    sora, kim = Person(expired["ws_url"], "Sora"), Person(expired["ws_url"], "Kim")
    lively_room(sora, kim)
    sora.do({"action": "pick"}, until=lambda s: s["room"]["decision"])
    for person in (mina, joon, mina2, joon2, sora, kim):
        person.close()
    # Full: the server with room for one person, who is already there.
    full = create_room(tiny.http_url)
    squatter = Person(full["ws_url"], "First")
    time.sleep(TTL_FOR_EXPIRY + 1)
    return {
        "home": (server.http_url + "/", "#create-room", None),
        "empty-room": (empty["url"], "#items-empty", None),
        "room-votes-vetoes": (lively["url"], "#items > li.vetoed", None),
        "decided": (decided["url"], "#decision-item", None),
        "expired": (expired["url"], "#gone-decision", None),
        "full": (full["url"], "#screen-full", squatter),
        "not-found": (server.http_url + "/rooms/no-such-room/", "#gone", None),
    }


def check(page: Page, url: str, ready: str) -> list[dict]:
    page.goto(url)
    expect(page.locator(ready).first).to_be_visible()
    page.wait_for_timeout(300)  # transitions and the first render settle
    return axe_violations(page)


def test_no_serious_or_critical_axe_violations(
    daphne_factory: Callable[..., DaphneServer], contexts, axe_report
) -> None:
    """Home, rooms (empty, lively, decided), expired, full and not found: phone and desktop,
    English and Korean, light (and dark on the phone): zero serious/critical."""
    server = daphne_factory()
    short = daphne_factory(ROOM_TTL_SECONDS=TTL_FOR_EXPIRY)
    tiny = daphne_factory(ROOM_MAX_PARTICIPANTS=1)
    rooms = screens(server, short, tiny)
    failures = {}
    runs = [
        (viewport_name, viewport, locale, "light")
        for viewport_name, viewport in (("390x844", PHONE), ("1280x800", DESKTOP))
        for locale in ("en-US", "ko-KR")
    ] + [("390x844", PHONE, locale, "dark") for locale in ("en-US", "ko-KR")]
    for viewport_name, viewport, locale, scheme in runs:
        context = contexts(
            locale=locale, viewport=viewport, color_scheme=scheme, bypass_csp=True, name="Mina"
        )
        page = context.new_page()
        for screen, (url, ready, _) in rooms.items():
            violations = check(page, url, ready)
            key = f"{screen} {viewport_name} {locale[:2]} {scheme}"
            axe_report[key] = len(violations)
            if violations:
                failures[key] = violations
        context.close()
    assert not failures, describe(failures)
