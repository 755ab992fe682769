"""Issue 30 on the page, in Chromium: orders from two browsers, the split, a paid mark, the
message copied for the chat (English and Korean), large targets, axe clean."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.support.browser import PHONE, add_item, axe_violations, open_room
from tests.support.client import create_room, http_json
from tests.support.processes import DaphneServer

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def create_room_in(base_url: str, language: str) -> dict:
    """A room made by a page in `language` (its summary is written in it)."""
    request = urllib.request.Request(
        f"{base_url}/api/rooms/", method="POST", headers={"Accept-Language": language}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def person(contexts, server: DaphneServer, name: str, **options) -> BrowserContext:
    context = contexts(name=name, reduced_motion="reduce", bypass_csp=True, **options)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.http_url)
    return context


def decide(page: Page, place: str, pick_label: str) -> None:
    add_item(page, place)
    expect(page.locator("#items > li")).to_have_count(1)
    page.get_by_role("button", name=pick_label).click()
    expect(page.locator("#after")).to_be_visible()


def order(page: Page, text: str) -> None:
    page.fill("#order-input", text)
    page.press("#order-input", "Enter")


def copied(page: Page) -> str:
    page.locator("#copy-summary").click()
    expect(page.locator("#after-status")).not_to_have_text("")
    return page.evaluate("navigator.clipboard.readText()")


def small_targets(page: Page) -> list[str]:
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('#after button, #after input'))
            .filter(e => e.offsetParent !== null)
            .map(e => [e.id || e.className, e.getBoundingClientRect()])
            .filter(([, r]) => r.height < 44 || r.width < 44)
            .map(([name, r]) => name + ' ' + Math.round(r.width) + 'x' + Math.round(r.height))"""
    )


def test_orders_split_paid_and_the_message_in_english(
    daphne_factory: Callable[..., DaphneServer], contexts
) -> None:
    server = daphne_factory()
    room = create_room(server.http_url)
    mina = open_room(person(contexts, server, "Mina"), room["url"])
    joon = open_room(person(contexts, server, "Joon", viewport=PHONE), room["url"])
    expect(mina.locator("#participants > li")).to_have_count(2)
    expect(mina.locator("#after")).to_be_hidden()
    decide(mina, "Hong Kong Banjeom", "Pick for us")
    expect(joon.locator("#after")).to_be_visible()

    # Orders from both browsers fold into one line, spelled as first given.
    order(mina, "Jjamppong large")
    expect(mina.locator("#order-mine")).to_have_text("Your order: Jjamppong large")
    order(joon, "jjamppong   LARGE")
    for page in (mina, joon):
        lines = page.locator("#order-tally > li")
        expect(lines).to_have_count(1)
        expect(lines.first).to_contain_text("Jjamppong large")
        expect(lines.first.locator(".tally-count")).to_have_text("\N{MULTIPLICATION SIGN}2")
        expect(lines.first.locator(".tally-who")).to_have_text("Mina, Joon")

    # Mina paid: the bill is split between who ordered.
    mina.fill("#bill-input", "abc")
    mina.press("#bill-input", "Enter")
    expect(mina.locator("#bill-error")).to_have_text(
        "Type the total in whole numbers, up to 10,000,000."
    )
    mina.fill("#bill-input", "27,000")
    mina.press("#bill-input", "Enter")
    for page in (mina, joon):
        expect(page.locator("#bill-line")).to_have_text("Total 27,000 KRW, paid by Mina")
        expect(page.locator("#shares > li")).to_have_count(2)
    expect(mina.locator("#paid-toggle")).to_be_hidden()  # the payer's share is paid
    toggle = joon.locator("#paid-toggle")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    joon_share = mina.locator("#shares > li", has_text="Joon")
    expect(joon_share).to_contain_text("13,500 KRW")
    expect(joon_share).to_contain_text("not yet")
    toggle.click()
    expect(joon_share).to_contain_text("✓ sent")
    expect(toggle).to_have_attribute("aria-pressed", "true")

    # The message for the chat, as the server wrote it.
    assert copied(mina).splitlines() == [
        "Lunch: Hong Kong Banjeom",
        "Orders:",
        "- Jjamppong large \N{MULTIPLICATION SIGN}2",
        "Total 27,000 KRW, paid by Mina",
        "Please send Mina:",
        "- Joon 13,500 KRW (sent)",
    ]
    expect(mina.locator("#announce")).to_have_count(0)  # not a group's room
    for page in (mina, joon):
        assert not small_targets(page), small_targets(page)
        assert axe_violations(page) == []


def test_the_message_in_korean(daphne_factory: Callable[..., DaphneServer], contexts) -> None:
    server = daphne_factory()
    room = create_room_in(server.http_url, "ko")
    minsu = open_room(person(contexts, server, "민수", locale="ko-KR", viewport=PHONE), room["url"])
    jiwon = open_room(person(contexts, server, "지원", locale="ko-KR"), room["url"])
    expect(minsu.locator("#participants > li")).to_have_count(2)
    decide(minsu, "홍콩반점", "메뉴 뽑기")
    order(minsu, "짬뽕 곱빼기")
    order(jiwon, "탕수육")
    expect(minsu.locator("#order-tally > li")).to_have_count(2)
    jiwon.fill("#bill-input", "30000")
    jiwon.get_by_role("button", name="나눠 내기").click()
    expect(minsu.locator("#bill-line")).to_have_text("합계 30,000원 · 지원 님이 계산")
    expect(minsu.locator("#shares > li", has_text="민수")).to_contain_text("15,000원")
    minsu.locator("#paid-toggle").click()
    expect(jiwon.locator("#shares > li", has_text="민수")).to_contain_text("송금 완료")
    assert copied(minsu).splitlines() == [
        "오늘 점심: 홍콩반점",
        "주문:",
        "- 짬뽕 곱빼기 \N{MULTIPLICATION SIGN}1",
        "- 탕수육 \N{MULTIPLICATION SIGN}1",
        "합계 30,000원, 지원 님이 계산했어요",
        "지원 님께 보내 주세요:",
        "- 민수 15,000원 (송금 완료)",
    ]
    for page in (minsu, jiwon):
        assert not small_targets(page), small_targets(page)
        assert axe_violations(page) == []


def test_a_groups_room_posts_the_message_to_its_chat(
    daphne_factory: Callable[..., DaphneServer], contexts, receiver_factory
) -> None:
    """In a group's room one button posts the message to the group's webhook: one post per
    tap; a second tap within the minute says why nothing went. Dark mode, axe clean."""
    receiver = receiver_factory(path="/hooks/T0/SECRET")
    server = daphne_factory(DJANGO_DEBUG="1", GROUP_WEBHOOK_ALLOW_PRIVATE="1")
    body = json.dumps({"name": "Team Kimchi", "webhook_url": receiver.url}).encode()
    status, group = http_json("POST", f"{server.http_url}/api/groups/", body)
    assert status == 201, group
    status, room = http_json("POST", f"{server.http_url}/api/groups/{group['slug']}/room/")
    assert status in (200, 201), room
    mina = open_room(person(contexts, server, "Mina", color_scheme="dark"), room["url"])
    decide(mina, "Pho", "Pick for us")
    assert receiver.received.wait(10)  # the decision's own post
    receiver.received.clear()
    order(mina, "Pho bo")
    expect(mina.locator("#order-tally > li")).to_have_count(1)
    mina.get_by_role("button", name="Post it to the group's chat").click()
    expect(mina.locator("#after-status")).to_have_text("Posting it to the group's chat…")
    assert receiver.received.wait(10)
    assert (
        receiver.requests[-1]["body"]["text"]
        == "Lunch: Pho\nOrders:\n- Pho bo \N{MULTIPLICATION SIGN}1"
    )
    mina.get_by_role("button", name="Post it to the group's chat").click()
    expect(mina.locator("#announce-error")).to_have_text(
        "The group's chat got it less than a minute ago. Try again in a minute."
    )
    mina.wait_for_timeout(500)
    assert len(receiver.requests) == 2  # the decision and one announcement
    assert not small_targets(mina), small_targets(mina)
    assert axe_violations(mina) == []
