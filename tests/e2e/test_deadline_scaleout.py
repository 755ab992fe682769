"""Deciding on time across two daphne processes on one Redis and one database (issue 29).

The deadline and the runoff live in the database and every process polls for what is due,
so the decision comes whichever process set it, with no client on that process, and exactly
once; a restart does not lose it. A deadline is at least 30 s ahead, so the tests set one
through the protocol and then move it closer in the database, as time passing would.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.client import RoomClient, create_room
from tests.support.processes import DaphneServer, RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

RUNOFF_SECONDS = 4


def ws(worker: DaphneServer, room_id: str, query: str) -> str:
    return f"{worker.ws_url}/ws/rooms/{room_id}/?{query}"


def due_in(database_url: str, room_id: str, column: str, seconds: float) -> None:
    """Move the room's deadline_at or runoff_ends_at to `seconds` from now."""
    assert column in ("deadline_at", "runoff_ends_at")
    at = datetime.now(UTC) + timedelta(seconds=seconds)
    sql = f"UPDATE rooms_room SET {column} = %s WHERE id = %s AND {column} IS NOT NULL"
    if database_url.startswith(("postgres://", "postgresql://")):
        import psycopg

        url = database_url.replace("postgres://", "postgresql://", 1)
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute(sql, [at, room_id]).rowcount == 1
        return
    conn = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        stored = at.replace(tzinfo=None).isoformat(sep=" ")  # as Django stores times in SQLite
        assert conn.execute(sql.replace("%s", "?"), [stored, room_id]).rowcount == 1
    finally:
        conn.close()


def picks_of(client: RoomClient) -> list[dict]:
    return [e for e in client.events if e["type"] == "picked"]


def decided_in_logs(*workers: DaphneServer) -> int:
    return sum(
        w.log().count("room decided by itself") + w.log().count("runoff decided") for w in workers
    )


@pytest.fixture
def start_worker(
    daphne_factory: Callable[..., DaphneServer], redis_server: RedisServer
) -> Callable[..., DaphneServer]:
    def start(runoff_seconds: float = RUNOFF_SECONDS) -> DaphneServer:
        return daphne_factory(redis_url=redis_server.url, ROOM_RUNOFF_SECONDS=runoff_seconds)

    return start


@pytest.fixture
def two_workers(start_worker) -> list[DaphneServer]:
    return [start_worker(), start_worker()]


async def host_with_items(worker: DaphneServer, room: dict, *items: str) -> RoomClient:
    host = await RoomClient(
        ws(worker, room["id"], f"name=host&token={room['host_token']}")
    ).connect()
    for item in items:
        await host.send(f"add:{item}")
    await host.wait_state(lambda s: len(s["items"]) == len(items))
    return host


async def test_the_deadline_decides_once_with_nobody_on_the_process_that_set_it(
    two_workers, e2e_database
) -> None:
    """Set through A, whose only client then leaves: every client on B gets one `picked`."""
    a, b = two_workers
    room = create_room(a.http_url)
    host = await host_with_items(a, room, "pho", "bibimbap")
    await host.send("vote:bibimbap")
    await host.send("deadline:30")
    await host.wait_state(lambda s: s["room"]["deadline"] is not None)
    await host.close()
    clients = [await RoomClient(ws(b, room["id"], f"name={n}")).connect() for n in ("mina", "joon")]
    try:
        due_in(e2e_database, room["id"], "deadline_at", 1)
        loop = asyncio.get_running_loop()
        started = loop.time()
        for client in clients:
            picked = await client.wait_for(lambda e: e["type"] == "picked", timeout=6)
            assert picked["item"] == "bibimbap" and picked["by"] is None and picked["auto"]
        assert loop.time() - started < 1 + 2.5  # within 2 s of the deadline (and a margin)
        for client in clients:
            state = await client.wait_state(lambda s: s["room"]["decision"] is not None)
            assert state["room"]["deadline"] is None and state["room"]["decision"]["auto"]
        await asyncio.sleep(2.5)  # both processes polled again, several times
        assert [len(picks_of(c)) for c in clients] == [1, 1]
        assert decided_in_logs(a, b) == 1
    finally:
        for client in clients:
            await client.close()


async def test_everyone_done_decides_early(two_workers) -> None:
    a, b = two_workers
    room = create_room(a.http_url)
    host = await host_with_items(a, room, "naengmyeon")
    guest = await RoomClient(ws(b, room["id"], "name=guest")).connect()
    try:
        await host.send("deadline:600")
        await guest.wait_state(lambda s: s["room"]["deadline"] and len(s["participants"]) == 2)
        await host.send("done")
        state = await guest.wait_state(lambda s: any(p["done"] for p in s["participants"]))
        assert state["room"]["decision"] is None
        await guest.send({"action": "done", "done": True})
        for client in (host, guest):
            picked = await client.wait_for(lambda e: e["type"] == "picked")
            assert picked["auto"] and picked["item"] == "naengmyeon"
        await asyncio.sleep(1.5)
        assert [len(picks_of(c)) for c in (host, guest)] == [1, 1]
    finally:
        await host.close()
        await guest.close()


async def test_a_two_two_tie_at_the_deadline_goes_to_a_runoff_then_a_winner(
    two_workers, e2e_database
) -> None:
    a, b = two_workers
    room = create_room(a.http_url)
    host = await host_with_items(a, room, "pho", "ramen")
    others = [
        await RoomClient(ws(w, room["id"], f"name={n}")).connect()
        for w, n in ((a, "mina"), (b, "joon"), (b, "sora"))
    ]
    everyone = [host, *others]
    try:
        for client, item in zip(everyone, ("pho", "pho", "ramen", "ramen"), strict=True):
            await client.send(f"vote:{item}")
        await host.wait_state(lambda s: [i["votes"] for i in s["items"]] == [2, 2])
        await host.send("deadline:30")
        await host.wait_state(lambda s: s["room"]["deadline"] is not None)
        due_in(e2e_database, room["id"], "deadline_at", 0.5)
        for client in everyone:
            runoff = await client.wait_for(lambda e: e["type"] == "runoff", timeout=6)
            assert runoff["items"] == ["pho", "ramen"]
            state = await client.wait_state(lambda s: s["room"]["runoff"] is not None)
            assert [i["votes"] for i in state["items"]] == [0, 0]
        # Three vote ramen; the fourth never does: the runoff ends when its time is up.
        for client in everyone[:3]:
            await client.send("vote:ramen")
        await host.send("vote:pho")  # moves the host's vote
        await host.send("vote:ramen")
        for client in everyone:
            picked = await client.wait_for(
                lambda e: e["type"] == "picked", timeout=RUNOFF_SECONDS + 4
            )
            assert picked["item"] == "ramen" and picked["runoff"] and picked["by"] is None
        await asyncio.sleep(1.5)
        assert [len(picks_of(c)) for c in everyone] == [1, 1, 1, 1]
        assert [len([e for e in c.events if e["type"] == "runoff"]) for c in everyone] == [1] * 4
        assert decided_in_logs(a, b) == 1
    finally:
        for client in everyone:
            await client.close()


@pytest.mark.parametrize("column", ["deadline_at", "runoff_ends_at"])
async def test_a_deadline_and_a_runoff_survive_a_restart(
    start_worker, e2e_database, column: str
) -> None:
    """Every process stops with the deadline (or the runoff) pending; the processes started
    after decide it, once."""
    first = [start_worker(60), start_worker(60)]  # the runoff outlasts what comes before
    room = create_room(first[0].http_url)
    host = await host_with_items(first[0], room, "pho", "ramen")
    guest = await RoomClient(ws(first[1], room["id"], "name=guest")).connect()
    await host.send("vote:pho")
    await guest.send("vote:ramen")
    await host.wait_state(lambda s: [i["votes"] for i in s["items"]] == [1, 1])
    if column == "runoff_ends_at":
        await host.send("pick:runoff")
        await guest.wait_for(lambda e: e["type"] == "runoff")
        await guest.send("vote:ramen")
        await host.wait_state(lambda s: s["items"][1]["votes"] == 1)
    else:
        await host.send("vote:ramen")  # no tie: the deadline draws ramen
        await host.send("deadline:30")
        await host.wait_state(lambda s: s["room"]["deadline"] is not None)
    # The voter leaves first: with only the host (no runoff vote) online, nothing ends early.
    await guest.close()
    await host.wait_state(lambda s: len(s["participants"]) == 1)
    await host.close()
    due_in(e2e_database, room["id"], column, 15)
    for worker in first:
        worker.stop()
    again = [start_worker(), start_worker()]
    watcher = await RoomClient(ws(again[1], room["id"], "name=watcher")).connect()
    try:
        state = watcher.state
        assert state["room"]["decision"] is None  # still pending after the restart
        picked = await watcher.wait_for(lambda e: e["type"] == "picked", timeout=25)
        assert picked["item"] == "ramen" and picked["auto"]
        await asyncio.sleep(2)
        assert len(picks_of(watcher)) == 1
        assert decided_in_logs(*first) == 0 and decided_in_logs(*again) == 1
    finally:
        await watcher.close()
