"""The room page, in Chromium, when its server process is restarted for a deploy: closed with
1012 (lunchsite/drain.py), it reconnects within a moment, never says "Offline", shows the newest
state it then gets, and keeps what the person was typing."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

import pytest
from playwright.sync_api import WebSocketRoute, expect

from tests.support.browser import add_item
from tests.support.client import create_room, state_frame
from tests.support.processes import DaphneServer

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def test_a_restart_reconnects_at_once_and_keeps_what_was_typed(
    daphne_factory: Callable[..., DaphneServer], contexts
) -> None:
    """Against a scripted server that closes with 1012: a new socket within a second, the status
    "Connecting…" rather than "Offline", the newest state shown, the typed text still there."""
    server = daphne_factory()
    room = create_room(server.http_url)
    page = contexts(name="Mina").new_page()
    sockets: list[tuple[float, WebSocketRoute]] = []

    def accept(ws: WebSocketRoute) -> None:
        sockets.append((time.monotonic(), ws))
        ws.send(json.dumps({"type": "welcome", "you": {"id": 1, "name": "Mina", "token": "t"}}))
        # The process the page lands on after the restart has a change made meanwhile.
        ws.send(state_frame(len(sockets), *(["Ramen"] if len(sockets) == 1 else ["Ramen", "Udon"])))

    page.route_web_socket(re.compile(r"/ws/rooms/"), accept)
    page.goto(room["url"])
    expect(page.locator("#connection")).to_have_attribute("data-status", "online")
    expect(page.locator("#items .item-name")).to_have_text(["Ramen"])
    page.evaluate(
        """() => { window.__statuses = [];
          const box = document.getElementById('connection');
          new MutationObserver(() => window.__statuses.push(box.dataset.status))
            .observe(box, {attributes: true, attributeFilter: ['data-status']}); }"""
    )
    page.locator("#item-input").fill("Kimchi stew")

    closed_at = time.monotonic()
    sockets[-1][1].close(code=1012, reason="service restart")
    expect(page.locator("#items .item-name")).to_have_text(["Ramen", "Udon"])
    expect(page.locator("#connection")).to_have_attribute("data-status", "online")
    assert len(sockets) == 2
    assert sockets[1][0] - closed_at < 1.0, sockets[1][0] - closed_at  # no backoff
    statuses = page.evaluate("window.__statuses")
    assert "offline" not in statuses and "connecting" in statuses, statuses
    expect(page.locator("#item-input")).to_have_value("Kimchi stew")


def test_a_command_unanswered_at_the_restart_is_sent_again_with_its_id(
    daphne_factory: Callable[..., DaphneServer], contexts
) -> None:
    """The add went out, then the process restarted before its ack came: the page sends the very
    same frame (the same id) on the next socket, after its welcome, keeps the typed text until
    the list has it, and sends nothing again once it is acknowledged."""
    server = daphne_factory()
    room = create_room(server.http_url)
    page = contexts(name="Mina").new_page()
    received: list[list[dict]] = []
    sockets: list[WebSocketRoute] = []

    def accept(ws: WebSocketRoute) -> None:
        frames: list[dict] = []
        received.append(frames)
        sockets.append(ws)
        ws.on_message(lambda message: frames.append(json.loads(message)))
        ws.send(json.dumps({"type": "welcome", "you": {"id": 1, "name": "Mina", "token": "t"}}))
        ws.send(state_frame(len(sockets), "Ramen"))

    page.route_web_socket(re.compile(r"/ws/rooms/"), accept)
    page.goto(room["url"])
    expect(page.locator("#connection")).to_have_attribute("data-status", "online")
    add_item(page, "Kimchi stew")
    deadline = time.monotonic() + 5
    while not received[0] and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    (sent,) = received[0]
    assert sent["action"] == "add" and sent["item"] == "Kimchi stew"
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", sent["id"]), sent

    sockets[0].close(code=1012, reason="service restart")  # no ack came
    deadline = time.monotonic() + 5
    while (len(received) < 2 or not received[1]) and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert received[1] == [sent]  # the same frame, id and ref included
    expect(page.locator("#item-input")).to_have_value("Kimchi stew")  # not on the list yet

    sockets[1].send(json.dumps({"type": "ack", "id": sent["id"], "version": 3, "ref": sent["ref"]}))
    sockets[1].send(state_frame(3, "Ramen", "Kimchi stew"))
    expect(page.locator("#items .item-name")).to_have_text(["Ramen", "Kimchi stew"])
    expect(page.locator("#item-input")).to_have_value("")
    sockets[1].close(code=1012, reason="service restart")
    deadline = time.monotonic() + 5
    while len(received) < 3 and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    expect(page.locator("#connection")).to_have_attribute("data-status", "online")
    page.wait_for_timeout(500)
    assert len(received) == 3 and received[2] == []  # answered: never sent again
