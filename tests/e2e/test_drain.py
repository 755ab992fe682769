"""The graceful drain (lunchsite/drain.py) on a real daphne process: on SIGTERM it turns new
WebSockets away with 503 and /readyz to 503, closes its own with 1012 spread over the window,
applies every frame its clients managed to send, lets them leave, and exits."""

from __future__ import annotations

import asyncio
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest
import websockets

from tests.support.client import RoomClient, create_room, room_state
from tests.support.metrics import scrape, value
from tests.support.processes import DaphneServer, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.fault]

DRAIN_SECONDS = 2.0
FINISH_SECONDS = 5.0


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


async def keep_adding(client: RoomClient, prefix: str, sent: list[str]) -> None:
    """Add an item every 0.6 s until the socket is closed; `sent` gets each one that went out
    (at most 6 in the test's 3.5 s: 4 people stay under ROOM_MAX_ITEMS, each under its rate)."""
    for n in range(100):
        item = f"{prefix}-{n}"
        try:
            await client.send(f"add:{item}")
        except websockets.ConnectionClosed:
            return
        sent.append(item)
        await asyncio.sleep(0.6)


async def test_sigterm_hands_every_websocket_over_and_loses_nothing(
    daphne_factory: Callable[..., DaphneServer],
) -> None:
    """SIGTERM: 503 for new sockets and /readyz, 1012 for the open ones over the window (not all
    at once), every add sent before the close applied, nobody left online, exit 0."""
    metrics_port = free_port()
    server = daphne_factory(
        ROOM_DRAIN_SECONDS=DRAIN_SECONDS,
        ROOM_DRAIN_FINISH_SECONDS=FINISH_SECONDS,
        METRICS_PORT=metrics_port,
    )
    rooms = [create_room(server.http_url)["id"] for _ in range(2)]
    clients = [
        await RoomClient(f"{server.ws_url}/ws/rooms/{rooms[i % 2]}/?name=p{i}").connect()
        for i in range(8)
    ]
    sent: list[list[str]] = [[] for _ in clients]
    adding = [
        asyncio.create_task(keep_adding(client, f"p{i}", sent[i]))
        for i, client in enumerate(clients)
    ]
    await asyncio.sleep(0.5)

    server.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    await asyncio.sleep(0.3)
    assert await asyncio.to_thread(status_of, f"{server.http_url}/readyz") == 503
    assert await asyncio.to_thread(status_of, f"{server.http_url}/livez") == 200
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(f"{server.ws_url}/ws/rooms/{rooms[0]}/?name=late", open_timeout=5)
    assert refused.value.response.status_code == 503
    during = await asyncio.to_thread(scrape, metrics_port)
    assert value(during, "lunchsite_draining") == 1
    assert value(during, "lunchsite_drains_total") == 1

    async def closed(client: RoomClient) -> tuple[int | None, float]:
        code = await client.wait_closed(timeout=DRAIN_SECONDS + 5)
        return code, time.monotonic() - signalled

    ends = await asyncio.gather(*(closed(client) for client in clients))
    assert [code for code, _ in ends] == [1012] * len(clients)
    closed_at = [at for _, at in ends]
    await asyncio.gather(*adding)
    # Spread over the window, in jittered batches: not one instant for everyone.
    assert max(closed_at) - min(closed_at) > DRAIN_SECONDS / 4, closed_at
    exit_code = await asyncio.to_thread(server.process.wait, DRAIN_SECONDS + FINISH_SECONDS + 10)
    assert exit_code == 0, server.log()[-3000:]
    log = server.log()
    assert "Traceback" not in log, log[-3000:]
    assert "SIGTERM: draining 8 WebSockets" in log, log[-3000:]
    assert all(not [e for e in c.events if e["type"] == "error"] for c in clients)

    # Another process on the same database: each add that went out is there, once, and the
    # drained connections left (nobody is online).
    after = daphne_factory()
    for i, room_id in enumerate(rooms):
        state = room_state(after.http_url, room_id)
        names = [item["name"] for item in state["items"]]
        expected = sorted(item for n, items in enumerate(sent) if n % 2 == i for item in items)
        assert sorted(names) == expected
        assert state["participants"] == []
