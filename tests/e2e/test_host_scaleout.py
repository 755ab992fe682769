"""Identity and the host across two daphne processes on one Redis and one database.

The rules live in the database, not in a process's memory: a token minted by one process
rejoins through the other, a kick on one hangs up the kicked one on the other, and the
host's role passes on when the host's process is not the one that notices.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.support.client import RoomClient, create_room
from tests.support.processes import DaphneServer, RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

GRACE = 2  # ROOM_HOST_GRACE_SECONDS for these processes


@pytest.fixture
def two_workers(
    daphne_factory: Callable[..., DaphneServer], redis_server: RedisServer
) -> list[DaphneServer]:
    return [
        daphne_factory(redis_url=redis_server.url, ROOM_HOST_GRACE_SECONDS=GRACE) for _ in range(2)
    ]


def ws(worker: DaphneServer, room_id: str, query: str) -> str:
    return f"{worker.ws_url}/ws/rooms/{room_id}/?{query}"


def hosts(state: dict) -> list[str]:
    return [p["name"] for p in state["participants"] if p["host"]]


async def test_rejoin_by_token_through_the_other_process(two_workers) -> None:
    """A token from process A is the same participant on B, once under the cap, not in logs."""
    a, b = two_workers
    room = create_room(a.http_url)
    first = await RoomClient(ws(a, room["id"], "name=joon")).connect()
    token = first.you["token"]
    again = await RoomClient(ws(b, room["id"], f"token={token}")).connect()
    try:
        assert again.you == first.you
        await first.send("add:naengmyeon")
        state = await again.wait_state(lambda s: s["items"])
        assert [p["name"] for p in state["participants"]] == ["joon"]
        assert state["items"][0]["added_by_id"] == first.you["id"]
    finally:
        await first.close()
        await again.close()
    for worker in two_workers:
        assert "WSCONNECT /ws/rooms/" in worker.log()  # the access log is on
        assert token not in worker.log()


async def test_the_host_role_passes_on_across_processes(two_workers) -> None:
    """The host (on A) goes away; after the grace the first joiner (on B) is host for all."""
    a, b = two_workers
    room = create_room(a.http_url)
    host = await RoomClient(ws(a, room["id"], f"name=host&token={room['host_token']}")).connect()
    mina = await RoomClient(ws(b, room["id"], "name=mina")).connect()
    joon = await RoomClient(ws(b, room["id"], "name=joon")).connect()
    try:
        await joon.wait_state(lambda s: hosts(s) == ["host"] and len(s["participants"]) == 3)
        await host.close()
        state = await joon.wait_state(lambda s: len(s["participants"]) == 2)
        assert hosts(state) == []  # away, within its grace
        loop = asyncio.get_running_loop()
        gone_at = loop.time()
        state = await joon.wait_state(lambda s: hosts(s) == ["mina"], timeout=GRACE + 8)
        assert loop.time() - gone_at >= GRACE - 0.5
        await mina.wait_state(lambda s: hosts(s) == ["mina"])
        await mina.send("lock")
        await joon.wait_state(lambda s: s["room"]["locked"])
        # The creator comes back, through the other process: a participant like any other.
        back = await RoomClient(ws(b, room["id"], f"token={room['host_token']}")).connect()
        state = await back.wait_state(lambda s: len(s["participants"]) == 3)
        assert back.you["name"] == "host" and hosts(state) == ["mina"]
        await back.close()
    finally:
        for client in (host, mina, joon):
            await client.close()


async def test_a_kick_on_one_process_hangs_up_the_other(two_workers) -> None:
    """The host on A kicks a client on B: kicked, 4403; its token cannot rejoin on either."""
    a, b = two_workers
    room = create_room(b.http_url)
    host = await RoomClient(ws(a, room["id"], f"name=host&token={room['host_token']}")).connect()
    troll = await RoomClient(ws(b, room["id"], "name=troll")).connect()
    try:
        await troll.send("add:glue")
        await host.wait_state(lambda s: s["items"] and len(s["participants"]) == 2)
        await troll.send("vote:glue")
        await host.wait_state(lambda s: s["items"][0]["votes"] == 1)
        await host.send({"action": "kick", "participant": troll.you["id"], "ref": 5})
        event = await troll.wait_for(lambda e: e["type"] == "error")
        assert event["code"] == "kicked" and "ref" not in event
        assert await troll.wait_closed() == 4403
        state = await host.wait_state(lambda s: len(s["participants"]) == 1)
        assert state["items"][0]["votes"] == 0
        for worker in two_workers:
            again = RoomClient(ws(worker, room["id"], f"token={troll.you['token']}"))
            await again.connect(welcome=False)
            event = await again.wait_for(lambda e: e["type"] == "error")
            assert event["code"] == "kicked"
            assert await again.wait_closed() == 4403
    finally:
        await host.close()
        await troll.close()
