"""The metrics (lunchsite/metrics.py) of a real daphne process, scraped over HTTP on their own
port and parsed with prometheus_client's text parser: they move with what people do."""

from __future__ import annotations

import asyncio
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest

from tests.support.client import RoomClient, create_room, item_names
from tests.support.metrics import Samples, scrape, value
from tests.support.processes import DaphneServer, RedisServer, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


async def scraped_until(
    port: int, check: Callable[[Samples], bool], timeout: float = 10
) -> Samples:
    """Scrape until `check` holds (a gauge read at scrape time may lag a close by a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        samples = await asyncio.to_thread(scrape, port)
        if check(samples) or time.monotonic() > deadline:
            return samples
        await asyncio.sleep(0.1)


async def test_metrics_move_with_connections_actions_errors_and_outages(
    daphne_factory: Callable[..., DaphneServer], fresh_redis: RedisServer
) -> None:
    """Connections and rooms open, actions by outcome, errors by code, pool waits (PostgreSQL)
    and channel-layer send failures, on the metrics port; the public port has no metrics."""
    port = free_port()
    server = daphne_factory(redis_url=fresh_redis.url, METRICS_PORT=port)
    with pytest.raises(urllib.error.HTTPError) as public:
        urllib.request.urlopen(f"{server.http_url}/metrics", timeout=5)
    assert public.value.code == 404

    room = create_room(server.http_url)
    url = f"{server.ws_url}/ws/rooms/{room['id']}/"
    minji = await RoomClient(f"{url}?name=minji").connect()
    joon = await RoomClient(f"{url}?name=joon").connect()
    try:
        samples = await scraped_until(port, lambda s: value(s, "lunchsite_connections_open") == 2)
        assert value(samples, "lunchsite_connections_open") == 2
        assert value(samples, "lunchsite_rooms_open") == 1

        await minji.send("add:pizza")
        await joon.wait_state(lambda s: item_names(s) == ["pizza"])
        await minji.send({"action": "add", "item": "PIZZA", "ref": 1})
        await minji.wait_for(lambda e: e.get("code") == "duplicate_item")
        await joon.send("vote:sushi")
        await joon.wait_for(lambda e: e.get("code") == "unknown_item")
        samples = await asyncio.to_thread(scrape, port)
        assert value(samples, "lunchsite_actions_total", action="add", outcome="ok") == 1
        assert (
            value(samples, "lunchsite_actions_total", action="add", outcome="duplicate_item") == 1
        )
        assert value(samples, "lunchsite_actions_total", action="vote", outcome="unknown_item") == 1
        assert value(samples, "lunchsite_errors_total", code="duplicate_item") == 1
        assert value(samples, "lunchsite_errors_total", code="unknown_item") == 1
        assert value(samples, "lunchsite_action_seconds_count", action="add") == 2
        if os.environ.get("DATABASE_URL", "").startswith("postgres"):
            waits = sum(
                value(samples, "lunchsite_database_pool_wait_seconds_count", pool=pool)
                for pool in ("django", "everyday")
            )
            assert waits > 0
        assert value(samples, "lunchsite_channel_layer_send_failures_total") == 0

        # Redis away: the change commits, its broadcast fails and is counted (and the resync
        # still brings it to the other client).
        fresh_redis.stop()
        await minji.send("add:ramen")
        await joon.wait_state(lambda s: "ramen" in item_names(s), timeout=15)
        samples = await asyncio.to_thread(scrape, port)
        assert value(samples, "lunchsite_channel_layer_send_failures_total") >= 1
        assert value(samples, "lunchsite_actions_total", action="add", outcome="ok") == 2
    finally:
        await minji.close()
        await joon.close()
    samples = await scraped_until(port, lambda s: value(s, "lunchsite_connections_open") == 0)
    assert value(samples, "lunchsite_connections_open") == 0
    assert value(samples, "lunchsite_rooms_open") == 0
