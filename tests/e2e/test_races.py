"""Races between many clients on two daphne workers sharing one database and one Redis.

Run on SQLite and on PostgreSQL (scripts/test.sh runs the suite twice); e2e_database gives
the workers a fresh database of the current kind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.support.client import RoomClient, create_room, item_names, room_state
from tests.support.processes import DaphneServer, RedisServer

pytestmark = pytest.mark.e2e

CLIENTS = 10


@pytest.fixture
def workers(daphne_factory: Callable[..., DaphneServer], redis_server: RedisServer) -> list:
    """Two daphne workers behind one Redis channel layer, on the test's database."""
    return [daphne_factory(redis_url=redis_server.url) for _ in range(2)]


def ws_url(worker: DaphneServer, room_id: str, name: str = "") -> str:
    query = f"?name={name}" if name else ""
    return f"{worker.ws_url}/ws/rooms/{room_id}/{query}"


async def join(url: str) -> RoomClient:
    """Connect and wait for the first answer: a state (admitted) or an error (refused)."""
    client = await RoomClient(url).connect(welcome=False)
    await client.wait_for(lambda e: e["type"] in {"state", "error"}, timeout=30)
    return client


async def join_all(workers: list[DaphneServer], room_id: str, count: int) -> list[RoomClient]:
    """`count` clients joining at once, alternating between the workers."""
    return list(
        await asyncio.gather(
            *(join(ws_url(workers[i % 2], room_id, f"p{i}")) for i in range(count))
        )
    )


async def close_all(clients: list[RoomClient]) -> None:
    await asyncio.gather(*(c.close() for c in clients))


def errors(client: RoomClient) -> list[str]:
    return [e["code"] for e in client.events if e["type"] == "error"]


async def converge(clients: list[RoomClient], base_url: str, room_id: str) -> dict:
    """Wait until every client's newest state is the API's state; return that state."""
    expected: dict = {}
    async with asyncio.timeout(20):
        while True:
            expected = room_state(base_url, room_id)
            version = expected["version"]
            try:
                await asyncio.gather(
                    *(
                        c.wait_state(lambda s, v=version: s["version"] >= v, timeout=5)
                        for c in clients
                    )
                )
            except TimeoutError:
                continue
            if room_state(base_url, room_id)["version"] == expected["version"]:
                break
    for client in clients:
        assert {k: v for k, v in client.state.items() if k != "type"} == expected
    return expected


def assert_versions_increase(clients: list[RoomClient]) -> None:
    for client in clients:
        assert client.versions == sorted(set(client.versions)), client.versions


def assert_no_traceback(workers: list[DaphneServer]) -> None:
    for worker in workers:
        log = worker.log()
        assert "Traceback" not in log, log


async def test_fourteen_joins_across_two_workers_admit_exactly_ten(workers: list) -> None:
    """14 clients joining one room at once: 10 admitted, 4 told room_full and closed 4403."""
    room = create_room(workers[0].http_url)
    clients = await join_all(workers, room["id"], 14)
    try:
        admitted = [c for c in clients if c.state is not None]
        refused = [c for c in clients if c.state is None]
        assert len(admitted) == 10
        assert len(refused) == 4
        for client in refused:
            assert errors(client) == ["room_full"]
            assert await client.wait_closed() == 4403
        final = await converge(admitted, workers[1].http_url, room["id"])
        assert len(final["participants"]) == 10
        assert {p["id"] for p in final["participants"]} == {c.you["id"] for c in admitted}
        assert_versions_increase(admitted)
    finally:
        await close_all(clients)
    assert_no_traceback(workers)


async def test_thirty_concurrent_adds_are_all_kept(workers: list) -> None:
    """10 clients adding 3 distinct items each at once: all 30 kept, every client ends equal."""
    room = create_room(workers[0].http_url)
    clients = await join_all(workers, room["id"], CLIENTS)
    try:
        await asyncio.gather(
            *(c.send(f"add:dish {i}-{n}") for i, c in enumerate(clients) for n in range(3))
        )
        for client in clients:
            await client.wait_state(lambda s: len(s["items"]) == 30, timeout=30)
        final = await converge(clients, workers[1].http_url, room["id"])
        expected = {f"dish {i}-{n}" for i in range(CLIENTS) for n in range(3)}
        assert set(item_names(final)) == expected
        assert all(errors(c) == [] for c in clients)
        assert_versions_increase(clients)
    finally:
        await close_all(clients)
    assert_no_traceback(workers)


async def test_same_item_in_ten_spellings_is_added_once(workers: list) -> None:
    """10 clients adding one item in case and spacing variants: one item, nine duplicate_item."""
    room = create_room(workers[0].http_url)
    clients = await join_all(workers, room["id"], CLIENTS)
    spellings = [
        "Pizza Place",
        "pizza place",
        "PIZZA PLACE",
        "  pizza   place  ",
        "Pizza\tPlace",
        "pIzZa pLaCe",
        "pizza\u00a0place",
        "Pizza  Place ",
        "\u200bpizza place",
        "PIZZA\u3000place",
    ]
    try:
        await asyncio.gather(
            *(c.send({"action": "add", "item": s}) for c, s in zip(clients, spellings, strict=True))
        )
        answered = [
            c.wait_for(
                lambda e: e["type"] == "error" or (e["type"] == "state" and e["items"]), timeout=20
            )
            for c in clients
        ]
        await asyncio.gather(*answered)
        final = await converge(clients, workers[0].http_url, room["id"])
        assert len(final["items"]) == 1
        assert final["items"][0]["name"] in {
            " ".join(s.replace("\u200b", "").split()) for s in spellings
        }
        codes = [code for c in clients for code in errors(c)]
        assert codes == ["duplicate_item"] * 9
        assert_versions_increase(clients)
    finally:
        await close_all(clients)
    assert_no_traceback(workers)


async def test_votes_removes_and_renames_at_once_end_consistent(workers: list) -> None:
    """Vote toggles, remove-while-voting and rename-while-adding: one final state everywhere."""
    room = create_room(workers[0].http_url)
    clients = await join_all(workers, room["id"], CLIENTS)
    try:
        for name in ("sushi", "tacos", "curry"):
            await clients[0].send(f"add:{name}")
        for client in clients:
            await client.wait_state(lambda s: len(s["items"]) == 3)

        async def actions(i: int, client: RoomClient) -> None:
            frames = ["vote:sushi", "vote:tacos", "vote:TACOS", "vote:curry"]
            if i == 0:
                frames.insert(2, "remove:curry")
            if i == 1:
                frames += ["name:Renamed", "add:ramen", "add:pho"]
            if i == 2:
                frames += ["add:bibimbap", "veto:sushi", "veto:sushi", "veto:tacos"]
            for frame in frames:
                await client.send(frame)

        start_version = room_state(workers[0].http_url, room["id"])["version"]
        await asyncio.gather(*(actions(i, c) for i, c in enumerate(clients)))
        # Every frame is answered by a new version (accepted) or an error to its sender.
        sent = 4 * CLIENTS + 1 + 3 + 4
        async with asyncio.timeout(30):
            while True:
                changes = room_state(workers[0].http_url, room["id"])["version"] - start_version
                if changes + sum(len(errors(c)) for c in clients) >= sent:
                    break
                await asyncio.sleep(0.1)
        final = await converge(clients, workers[1].http_url, room["id"])
    finally:
        await close_all(clients)
    by_name = {item["name"]: item for item in final["items"]}
    # the three set up first keep their places; the concurrent adds come after, in any order
    assert list(by_name)[:2] == ["sushi", "tacos"]
    assert sorted(by_name) == sorted(["sushi", "tacos", "ramen", "pho", "bibimbap"])
    names = {p["name"] for p in final["participants"]}
    assert len(names) == CLIENTS and "Renamed" in names
    assert by_name["sushi"]["votes"] == CLIENTS
    assert sorted(by_name["sushi"]["voters"]) == sorted(names)
    # vote then vote again (any case) is a toggle back to nothing
    assert by_name["tacos"]["votes"] == 0
    assert by_name["tacos"]["vetoed_by"] == ["p2"]
    assert by_name["sushi"]["vetoed_by"] == []
    assert by_name["ramen"]["added_by"] == "Renamed"
    assert by_name["pho"]["added_by"] == "Renamed"
    # a vote for curry raced its removal: either it came first or it got unknown_item
    for client in clients:
        assert set(errors(client)) <= {"unknown_item"}
    assert_versions_increase(clients)
    assert_no_traceback(workers)
