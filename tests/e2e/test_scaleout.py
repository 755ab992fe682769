"""Two daphne processes sharing Redis and one database: one site, whichever process a client hits.

With DATABASE_URL naming PostgreSQL (the suite's second run) this is the production topology;
on SQLite the same rules hold across processes through the file's write lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.support.client import RoomClient, create_room, item_names, room_state
from tests.support.processes import DaphneServer, RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


def room_ws(worker: DaphneServer, room_id: str, name: str) -> str:
    return f"{worker.ws_url}/ws/rooms/{room_id}/?name={name}"


def comparable(state: dict) -> dict:
    return {key: value for key, value in state.items() if key != "type"}


@pytest.fixture
def two_workers(
    daphne_factory: Callable[..., DaphneServer], redis_server: RedisServer
) -> list[DaphneServer]:
    return [daphne_factory(redis_url=redis_server.url) for _ in range(2)]


async def test_a_change_through_either_process_reaches_every_client(
    two_workers: list[DaphneServer],
) -> None:
    """Clients on both processes see adds, votes and removes made through either one."""
    room = create_room(two_workers[0].http_url)
    clients = [
        await RoomClient(room_ws(two_workers[i % 2], room["id"], f"p{i}")).connect()
        for i in range(4)
    ]
    try:
        for client in clients:
            await client.wait_state(lambda s: len(s["participants"]) == 4)
        await clients[0].send("add:pizza")  # through process A
        await clients[1].send("add:ramen")  # through process B
        for client in clients:
            await client.wait_state(lambda s: set(item_names(s)) == {"pizza", "ramen"})
        await clients[3].send({"action": "vote", "item": "pizza"})  # B
        await clients[2].send("remove:ramen")  # A
        for client in clients:
            await client.wait_state(
                lambda s: item_names(s) == ["pizza"] and s["items"][0]["voters"] == ["p3"]
            )
        final = [room_state(worker.http_url, room["id"]) for worker in two_workers]
        assert final[0] == final[1]
        for client in clients:
            assert comparable(client.state) == final[0]
    finally:
        for client in clients:
            await client.close()


async def test_seven_plus_seven_concurrent_joins_admit_exactly_ten(
    two_workers: list[DaphneServer],
) -> None:
    """14 clients join at once, 7 through each process: 10 admitted, 4 get room_full (4403)."""
    room = create_room(two_workers[1].http_url)
    clients = [RoomClient(room_ws(two_workers[i % 2], room["id"], f"j{i}")) for i in range(14)]

    async def join(client: RoomClient) -> str:
        await client.connect(welcome=False)
        event = await client.wait_for(lambda e: e["type"] in {"state", "error"}, timeout=30)
        return "admitted" if event["type"] == "state" else event["code"]

    try:
        outcomes = await asyncio.gather(*(join(c) for c in clients))
        assert sorted(outcomes).count("admitted") == 10, outcomes
        assert sorted(outcomes).count("room_full") == 4, outcomes
        refused = [c for c, o in zip(clients, outcomes, strict=True) if o == "room_full"]
        admitted = [c for c, o in zip(clients, outcomes, strict=True) if o == "admitted"]
        for client in refused:
            assert await client.wait_closed() == 4403
        # Both processes admitted someone: the cap held across them, not inside one.
        assert {clients.index(c) % 2 for c in admitted} == {0, 1}
        expected = sorted(f"j{clients.index(c)}" for c in admitted)
        for client in admitted:
            state = await client.wait_state(lambda s: len(s["participants"]) == 10)
            assert sorted(p["name"] for p in state["participants"]) == expected
        final = room_state(two_workers[0].http_url, room["id"])
        assert sorted(p["name"] for p in final["participants"]) == expected
        for client in admitted:
            await client.wait_state(lambda s: s["version"] == final["version"])
            assert comparable(client.state) == final
    finally:
        for client in clients:
            await client.close()
