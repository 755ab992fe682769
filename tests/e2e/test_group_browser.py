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


def test_the_schedule_is_set_on_the_group_page_in_korean(
    daphne_factory, e2e_database: str, contexts
) -> None:
    """A Korean team sets its lunch schedule on the group page (time, days, minutes, a day
    off, the chat format); the page says it back in Korean, the API agrees, axe is clean."""
    server = daphne_factory()
    page = contexts(locale="ko-KR", bypass_csp=True).new_page()
    page.goto(server.http_url + "/groups/")
    page.fill("#group-name", "김치찌개 팀")
    page.locator("#create-group").click()
    expect(page.locator("h1")).to_have_text("김치찌개 팀")
    slug = page.url.rstrip("/").rsplit("/", 1)[-1]
    expect(page.locator("#schedule-title")).to_have_text("점심 일정")
    expect(page.get_by_label("시간대")).to_have_value("Asia/Seoul")  # created in Korean
    assert axe_violations(page) == [], describe(axe_violations(page))

    page.get_by_label("점심시간").fill("12:00")
    page.get_by_label("금", exact=True).uncheck()  # no lunch together on Fridays
    page.get_by_label("점심 몇 분 전에 방을 열까요?").fill("30")
    page.get_by_label("점심 몇 분 전에 메뉴를 정할까요?").fill("10")
    page.get_by_label("쉬는 날 (같이 안 먹는 날)").fill("2026-12-25")
    page.get_by_role("button", name="일정 저장").click()
    expect(page.locator("#schedule-summary")).to_have_text(
        "점심 먹는 날엔 11:30에 오늘의 방이 열리고 11:50에 메뉴가 정해져요. (점심 12:00)"
    )
    expect(page.get_by_label("금", exact=True)).not_to_be_checked()
    assert axe_violations(page) == [], describe(axe_violations(page))
    group = page.request.get(f"{server.http_url}/api/groups/{slug}/").json()
    assert group["lunch_time"] == "12:00" and group["weekdays"] == [1, 2, 3, 4]
    assert (group["open_minutes_before"], group["decide_minutes_before"]) == (30, 10)
    assert group["skip"] == ["2026-12-25"] and group["timezone"] == "Asia/Seoul"

    # A room that would decide before it opens is refused, in Korean, and nothing changes.
    page.get_by_label("점심 몇 분 전에 메뉴를 정할까요?").fill("40")
    page.get_by_role("button", name="일정 저장").click()
    expect(page.locator("#schedule-error")).to_contain_text("일정을 저장하지 못했어요")
    expect(page.get_by_label("점심시간")).to_have_attribute("aria-invalid", "true")
    assert axe_violations(page) == [], describe(axe_violations(page))
    group = page.request.get(f"{server.http_url}/api/groups/{slug}/").json()
    assert group["decide_minutes_before"] == 10

    # The chat format beside the webhook.
    page.reload()
    page.get_by_label("채팅 메시지 형식").select_option("jandi")
    page.locator("#save-settings").click()
    expect(page.get_by_label("채팅 메시지 형식")).to_have_value("jandi")
    assert page.request.get(f"{server.http_url}/api/groups/{slug}/").json()["webhook_format"] == (
        "jandi"
    )
    # The same page on a phone in dark mode.
    phone = contexts(
        locale="ko-KR", bypass_csp=True, color_scheme="dark", viewport={"width": 390, "height": 844}
    ).new_page()
    phone.goto(f"{server.http_url}/g/{slug}/")
    expect(phone.locator("#schedule-title")).to_be_visible()
    assert axe_violations(phone) == [], describe(axe_violations(phone))
    box = phone.get_by_label("토", exact=True).locator("xpath=..").bounding_box()
    assert box is not None and box["height"] >= 44 and box["width"] >= 44  # a day's target
