"""Issue 11 on the page: the host's badge and menu, the lock everyone sees, removing someone,
handing over, closing, and the headcount ("I'm in") in the banner and the share text."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.support.browser import (
    PHONE,
    SCREENSHOTS,
    add_item,
    axe_violations,
    describe,
    item,
    open_room,
)
from tests.support.processes import DaphneServer

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def create_from_home(page: Page, base_url: str) -> str:
    """Create a room with the home page's form (that browser becomes the host)."""
    page.goto(base_url + "/")
    page.get_by_role("button", name="Create a room").click()
    expect(page.locator("#connection")).to_have_attribute("data-status", "online")
    return page.url


def test_host_locks_and_removes_a_prankster(
    daphne_factory: Callable[..., DaphneServer], contexts
) -> None:
    """Two browsers: the host locks, the other cannot add and sees why; the host removes the
    other (with a confirmation), who sees that it was removed and cannot come back."""
    server = daphne_factory()
    host_context = contexts(name="Mina", viewport=PHONE, bypass_csp=True)
    host = host_context.new_page()
    url = create_from_home(host, server.http_url)
    guest_context = contexts(name="Prankster", viewport=PHONE, color_scheme="dark", bypass_csp=True)
    guest = open_room(guest_context, url)
    add_item(guest, "Pizza")
    expect(item(host, "Pizza")).to_have_count(1)

    # The host's badge, seen by everyone; the menu only by the host.
    for page in (host, guest):
        expect(page.locator("#participants .chip.host")).to_contain_text("Mina")
        expect(page.locator("#participants .chip.host")).to_contain_text("host")
    expect(guest.locator("#host-menu")).to_be_hidden()
    menu = host.locator("#host-menu")
    expect(menu).to_be_visible()

    # By keyboard: open the menu, lock.
    host.locator("#host-menu-summary").focus()
    host.keyboard.press("Enter")
    expect(host.locator("#lock-toggle")).to_be_visible()
    host.locator("#lock-toggle").focus()
    host.keyboard.press("Enter")
    for page in (host, guest):
        expect(page.locator("#locked-note")).to_be_visible()
        expect(page.locator("#locked-note")).to_contain_text("Locked by the host")
    expect(guest.locator("#item-input")).to_be_disabled()
    expect(guest.locator("#add-button")).to_be_disabled()
    assert "locked-note" in guest.locator("#item-input").get_attribute("aria-describedby")
    expect(host.locator("#lock-toggle")).to_contain_text("Unlock the list")
    # Only the host trims a locked list: the others' Remove is gone, the host's stays.
    expect(item(guest, "Pizza").locator("button.remove")).to_be_hidden()
    expect(item(host, "Pizza").locator("button.remove")).to_be_visible()
    # Votes still work while locked.
    item(guest, "Pizza").locator("button.vote").click()
    expect(item(host, "Pizza").locator("button.vote .tally")).to_have_text("1")
    violations = axe_violations(host) + axe_violations(guest)  # light host, dark guest
    assert not violations, describe(violations)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    host.screenshot(path=SCREENSHOTS / "room-host-phone.png", full_page=True)
    guest.screenshot(path=SCREENSHOTS / "room-locked-phone-dark.png")

    # Remove the prankster: asks first; Cancel keeps them.
    row = host.locator("#host-people li", has_text="Prankster")
    row.get_by_role("button", name="Remove…").click()
    expect(host.locator("#confirm")).to_be_visible()
    expect(host.locator("#confirm-text")).to_contain_text("Remove Prankster from the room?")
    expect(host.locator("#confirm-no")).to_be_focused()
    host.keyboard.press("Enter")  # Cancel
    expect(host.locator("#confirm")).to_be_hidden()
    expect(host.locator("#people-count")).to_have_text("2/10")
    row.get_by_role("button", name="Remove…").click()
    host.locator("#confirm-yes").click()

    expect(guest.locator("#screen-kicked")).to_be_visible()
    expect(guest.locator("#screen-kicked h1")).to_have_text("The host removed you from this room.")
    expect(guest.locator("#screen-kicked h1")).to_be_focused()
    expect(host.locator("#people-count")).to_have_text("1/10")
    expect(item(host, "Pizza").locator("button.vote .tally")).to_have_text("0")
    # Coming back (same browser: cookie and token) is the same answer.
    guest.reload()
    expect(guest.locator("#screen-kicked")).to_be_visible()


def test_headcount_hand_over_and_close(
    daphne_factory: Callable[..., DaphneServer], contexts
) -> None:
    """ "I'm in" near the top with the count; the banner and the share text say who is coming;
    the host hands over; the new host closes the room, and everyone sees the result."""
    server = daphne_factory()
    host = contexts(name="Mina").new_page()
    url = create_from_home(host, server.http_url)
    joon_context = contexts(name="Joon", bypass_csp=True)
    joon_context.grant_permissions(["clipboard-read", "clipboard-write"])
    joon = open_room(joon_context, url)
    expect(host.locator("#going-count")).to_have_text("Nobody has said they're coming yet.")
    going = host.get_by_role("button", name="I'm in")
    going.click()
    expect(going).to_have_attribute("aria-pressed", "true")
    joon.get_by_role("button", name="I'm in").click()
    for page in (host, joon):
        expect(page.locator("#going-count")).to_have_text("2 of us: Mina, Joon")
    # Near the top: above the list, in view on arrival.
    top = host.locator("#going").bounding_box()["y"]
    assert top < host.locator("#items-empty").bounding_box()["y"]

    add_item(host, "Bibimbap")
    joon.get_by_role("button", name="Pick for us").click()
    for page in (host, joon):
        expect(page.locator("#decision-item")).to_have_text("Bibimbap")
        expect(page.locator("#decision-going")).to_have_text("2 of us: Mina, Joon")
    joon.get_by_role("button", name="Share the news").click()
    if not joon.evaluate("'share' in navigator"):
        shared = joon.evaluate("navigator.clipboard.readText()")
        assert shared == f"We're eating Bibimbap! 2 of us: Mina, Joon. {url}", shared

    # Hand over: Joon becomes host; the menu moves with the role.
    host.locator("#host-menu-summary").click()
    host.locator("#host-people li", has_text="Joon").get_by_role("button", name="Make host").click()
    expect(joon.locator("#host-menu")).to_be_visible()
    expect(host.locator("#host-menu")).to_be_hidden()
    expect(host.locator("#participants .chip.host")).to_contain_text("Joon")
    violations = axe_violations(joon)
    assert not violations, describe(violations)

    joon.locator("#host-menu-summary").click()
    joon.get_by_role("button", name="Close the room…").click()
    expect(joon.locator("#confirm-text")).to_contain_text("Close the room for everyone now?")
    joon.locator("#confirm-yes").click()
    for page in (host, joon):
        expect(page.locator("#screen-expired")).to_be_visible()
        expect(page.locator("#screen-expired-decision")).to_have_text("You decided on Bibimbap.")
        expect(page.locator("#screen-expired-items .item-name")).to_have_text(["Bibimbap"])
    response = host.goto(url)
    assert response is not None and response.status == 410
    expect(host.locator("#gone-decision")).to_have_text("You decided on Bibimbap.")
    assert re.search(r"Bibimbap", host.locator("#gone-items").inner_text())
