"""Issue 29 on the page, in Chromium, in English and Korean: the host sets a deadline in one
tap, everyone sees the countdown and "N of M done"; everyone done fires it early, a tie goes
to a runoff only the tied items can take part in, and the runoff decides. axe-clean on the
way (light and dark)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from tests.support.browser import (
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
    "en-US": {"done": "2 of 2 done", "none_done": "0 of 2 done", "by": "decided by the runoff"},
    "ko-KR": {
        "done": "2명 다 골랐어요 (전체 2명)",
        "none_done": "0명 다 골랐어요 (전체 2명)",
        "by": "결선 투표로 정해짐",
    },
}


def clean(page, where: str) -> None:
    violations = axe_violations(page)
    assert not violations, f"{where}: {describe(violations)}"


@pytest.mark.parametrize("locale", ["en-US", "ko-KR"])
def test_a_deadline_and_a_runoff_in_two_browsers(
    daphne_factory: Callable[..., DaphneServer], contexts, locale: str
) -> None:
    words = WORDS[locale]
    server = daphne_factory()
    room = create_room(server.http_url)

    def make(name: str, scheme: str):
        return contexts(
            locale=locale,
            name=name,
            viewport=PHONE,
            bypass_csp=True,
            reduced_motion="reduce",
            color_scheme=scheme,
        )

    host = open_room(make("Mina", "light"), room["url"])  # the first in is the host
    guest = open_room(make("Joon", "dark"), room["url"])
    expect(host.locator("#deadline-host")).to_be_visible()
    expect(guest.locator("#deadline-host")).to_be_hidden()
    for name in ("Pho", "Ramen", "Udon"):
        add_item(host, name)
        expect(item(guest, name)).to_be_visible()
    item(host, "Pho").locator("button.vote").click()
    item(guest, "Ramen").locator("button.vote").click()
    expect(item(host, "Ramen").locator("button.vote .tally")).to_have_text("1")

    # One tap: decide in 10 minutes. Both pages count down.
    host.locator("#deadline-host button[data-seconds='600']").click()
    for page in (host, guest):
        expect(page.locator("#deadline-time")).to_be_visible()
        expect(page.locator("#deadline-time")).to_have_text(re.compile(r"^(9|10):\d\d$"))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    suffix = "-ko" if locale == "ko-KR" else ""
    host.screenshot(path=SCREENSHOTS / f"room-deadline-phone{suffix}.png", full_page=True)
    clean(host, "deadline set, host")
    clean(guest, "deadline set, guest (dark)")

    # Everyone done: the deadline fires now; a 1-1 tie becomes a runoff.
    host.locator("#done").click()
    expect(guest.locator("#done-count")).to_have_text(words["done"].replace("2", "1", 1))
    guest.locator("#done").click()
    for page in (host, guest):
        expect(page.locator("#runoff")).to_be_visible()
        expect(page.locator("#runoff-items")).to_have_text("Pho vs Ramen")
        expect(item(page, "Udon").locator("button.vote")).to_be_disabled()
        expect(item(page, "Pho").locator("button.vote .tally")).to_have_text("0")  # votes cleared
        expect(page.locator("#deadline-time")).to_be_hidden()
    guest.screenshot(path=SCREENSHOTS / f"room-runoff-phone-dark{suffix}.png", full_page=True)
    clean(host, "runoff, host")
    clean(guest, "runoff, guest (dark)")

    # One vote each: both for Ramen, and the runoff decides at once.
    item(host, "Ramen").locator("button.vote").click()
    item(guest, "Ramen").locator("button.vote").click()
    for page in (host, guest):
        expect(page.locator("#decision-item")).to_have_text("Ramen")
        expect(page.locator("#decision-by")).to_contain_text(words["by"])
        expect(page.locator("#runoff")).to_be_hidden()
        expect(page.locator("#done-count")).to_have_text(words["none_done"])
    clean(host, "decided, host")
    clean(guest, "decided, guest (dark)")
