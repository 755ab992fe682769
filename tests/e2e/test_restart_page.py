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
