"""A lunch group in a real Chromium: create it, open today's room on two browsers, decide."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.support.browser import axe_violations, describe, item
from tests.support.seed import earlier_lunches

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def person(contexts, name: str) -> Page:
    return contexts(name=name).new_page()


def test_a_group_decides_something_new_from_its_usual_places(
    daphne_factory, e2e_database: str, contexts
) -> None:
    """Create a group, open today's room on two browsers, add usual places in one tap each,
    pick with "not what we had this week", and find the decision in the group's history."""
    server = daphne_factory()
    mina = person(contexts, "Mina")
    mina.goto(server.http_url + "/")
    mina.get_by_role("link", name="Start a lunch group").click()
    mina.fill("#group-name", "Team Kimchi")
    mina.get_by_role("button", name="Create the group").click()
    expect(mina.locator("h1")).to_have_text("Team Kimchi")
    group_url = mina.url
    slug = group_url.rstrip("/").rsplit("/", 1)[-1]

    # The group's earlier lunches (the database, as if they had happened on other days).
    earlier_lunches(e2e_database, slug)
    mina.reload()
    expect(mina.locator("#history li")).to_have_count(2)
    expect(mina.locator("#favorites")).to_contain_text("Kimchi stew")

    mina.get_by_role("button", name="Open today's room").click()
    expect(mina.locator("#connection")).to_have_attribute("data-status", "online")
    room_url = mina.url
    joon = person(contexts, "Joon")
    joon.goto(group_url)
    joon.get_by_role("link", name="Join today's room").click()
    expect(joon.locator("#connection")).to_have_attribute("data-status", "online")
    assert joon.url == room_url
    expect(joon.locator("#group-link")).to_have_text("← Team Kimchi")

    # Our usual places, one tap each; what is on the list leaves the usual places.
    expect(mina.locator("#favorites-box")).to_be_visible()
    mina.get_by_role("button", name="Add Bibimbap").click()
    expect(item(joon, "Bibimbap")).to_have_count(1)
    expect(joon.get_by_role("button", name="Add Bibimbap")).to_have_count(0)
    joon.get_by_role("button", name="Add Kimchi stew").click()
    expect(item(mina, "Kimchi stew")).to_have_count(1)
    expect(mina.locator("#favorites-box")).to_be_hidden()
    # Kimchi stew has the votes: without "not what we had this week" it would win.
    item(joon, "Kimchi stew").locator("button.vote").click()
    expect(item(mina, "Kimchi stew").locator("button.vote .tally")).to_have_text("1")

    mina.get_by_label("Not what we had this week").check()
    mina.get_by_role("button", name="Pick for us").click()
    for page in (mina, joon):
        expect(page.locator("#decision-item")).to_have_text("Bibimbap")

    joon.goto(group_url)
    expect(joon.locator("#history li").first).to_contain_text("Bibimbap")
    expect(joon.locator("#history li").first).to_contain_text("picked by Mina")
    expect(joon.locator("#history li")).to_have_count(3)


@pytest.mark.parametrize("locale", ["en-US", "ko-KR"])
def test_group_screens_have_no_serious_axe_violations(
    daphne_factory, e2e_database: str, contexts, locale: str
) -> None:
    """The group form, a group page with history, and a group's room pass axe-core (AA)."""
    server = daphne_factory()
    page = contexts(locale=locale, bypass_csp=True).new_page()
    page.goto(server.http_url + "/groups/")
    expect(page.locator("#group-name")).to_be_visible()
    assert axe_violations(page) == [], describe(axe_violations(page))
    page.fill("#group-name", "Team Kimchi")
    page.locator("#create-group").click()
    slug = page.url.rstrip("/").rsplit("/", 1)[-1]
    earlier_lunches(e2e_database, slug)
    page.reload()
    expect(page.locator("#history li")).to_have_count(2)
    assert axe_violations(page) == [], describe(axe_violations(page))
    page.locator("#open-room").click()
    expect(page.locator("#favorites-box")).to_be_visible()
    page.wait_for_timeout(300)
    assert axe_violations(page) == [], describe(axe_violations(page))
