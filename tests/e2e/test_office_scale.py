"""Faults with an office online: two thousand clients in two hundred rooms, acting throughout.

Each test puts a crowd of real WebSocket clients (bench/loadgen.py, speaking the public
protocol) on one daphne process with Redis, breaks something under it (PostgreSQL's
connections ended or the server restarted, Redis restarted) while actions keep coming at
20 a second, and asserts what the room's people would notice: every action applied and seen
by every client of its room, every room the same on every client and in the API, nobody
disconnected, and once the fault is over no action waiting on the database pool's timeout
(2 s), which is what each of them did before issue 27's fix (a pool check that refused every
descriptor past 1024, and with two thousand sockets every database connection had one).

The churn test connects and disconnects three thousand times in a room that stays open and
bounds what the server keeps of each cycle. How fast the crowd joins and acts is measured by
the bench (docs/performance.md, "Office scale"), not asserted here.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import websockets

from bench.loadgen import LoadRun
from lunchsite.descriptors import descriptor_limit_raised
from tests.support.client import RoomClient, create_room, item_names
from tests.support.processes import (
    DaphneServer,
    PostgresServer,
    RedisServer,
    migrate,
    server_env,
    terminate_backends,
)

pytestmark = [pytest.mark.e2e, pytest.mark.fault, pytest.mark.scale]

ROOMS, PER_ROOM = 200, 10  # 2,000 clients: the "at least 2,000 online"
RATE = 20  # actions a second, round-robin over the rooms, before, during and after the fault
# A change that waits for the database pool's timeout takes at least this long; a change of a
# recovered server takes tens of milliseconds, so the margin is an order of magnitude each way.
POOL_TIMEOUT_SECONDS = 2.0
SLOWEST_AFTER_RECOVERY_SECONDS = 1.5


@pytest.fixture(autouse=True)
def enough_descriptors() -> None:
    """The crowd's sockets are this process's descriptors too."""
    assert descriptor_limit_raised() > ROOMS * PER_ROOM + 500


@pytest.fixture
def crowd_server(tmp_path: Path) -> Iterator[Callable[..., DaphneServer]]:
    """One daphne process on a given database and Redis, stopped afterwards."""
    servers: list[DaphneServer] = []

    def start(database_url: str, redis_url: str) -> DaphneServer:
        env = server_env(database_url, redis_url, ROOM_CREATE_PER_MINUTE=0)
        migrate(env)
        server = DaphneServer(env, tmp_path / f"daphne-{len(servers)}.log")
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


async def crowd(server: DaphneServer) -> LoadRun:
    """Two thousand clients in two hundred rooms, all joined."""
    run = LoadRun([server.http_url], rooms=ROOMS, clients=PER_ROOM)
    await run.create_rooms()
    joined = await run.join_all(concurrency=200)
    assert joined["joined"] == ROOMS * PER_ROOM, joined
    return run


async def acting_through(run: LoadRun, fault: Callable[[], None], *, seconds: float) -> float:
    """Act at RATE for `seconds`; `fault` runs (in a thread) 3 s in. When it returned."""
    returned: list[float] = []

    async def breaker() -> None:
        await asyncio.sleep(3)
        await asyncio.to_thread(fault)
        returned.append(time.perf_counter())

    breaking = asyncio.create_task(breaker())
    step = await run.actions(RATE, seconds)
    await breaking
    assert step["done"] == step["actions"] > 0, (step, dict(run.errors))
    assert run.refused == [], run.refused[:5]
    return returned[0]


async def assert_everyone_caught_up(run: LoadRun) -> None:
    consistency = await run.consistency(with_api=True)
    assert consistency["inconsistent"] == 0, consistency
    assert run.disconnects == 0, dict(run.close_codes)
    await run.close_all()


def slowest_sent_after(run: LoadRun, moment: float) -> float:
    """The longest fan-out of the changes sent after `moment` (seconds)."""
    late = [latency for sent, latency in run.timeline if sent >= moment]
    assert late, "no change was sent after the moment of interest"
    return max(late)


# --- PostgreSQL -----------------------------------------------------------------------


async def test_every_database_connection_ended_under_two_thousand_clients(
    crowd_server: Callable[..., DaphneServer], redis_server: RedisServer, e2e_database: str
) -> None:
    """pg_terminate_backend of every connection: nothing lost, normal again within 5 s."""
    if not e2e_database.startswith("postgres"):
        pytest.skip("ends PostgreSQL's connections; runs in the PostgreSQL pass")
    server = crowd_server(e2e_database, redis_server.url)
    run = await crowd(server)
    ended: list[int] = []
    fault_over = await acting_through(
        run, lambda: ended.append(terminate_backends(e2e_database)), seconds=15
    )
    assert ended[0] >= 2  # the threads' pool and the event loop's, at least
    assert slowest_sent_after(run, fault_over + 5) < SLOWEST_AFTER_RECOVERY_SECONDS
    await assert_everyone_caught_up(run)


async def test_postgresql_restarted_under_two_thousand_clients(
    crowd_server: Callable[..., DaphneServer],
    redis_server: RedisServer,
    private_postgres: PostgresServer,
) -> None:
    """PostgreSQL down for 2 s: every action waits and is applied once; normal again within
    10 s of it answering."""
    database = private_postgres.url
    server = crowd_server(database, redis_server.url)
    run = await crowd(server)
    answering_again = await acting_through(
        run, lambda: private_postgres.restart(down_for=2), seconds=20
    )
    assert slowest_sent_after(run, answering_again + 10) < SLOWEST_AFTER_RECOVERY_SECONDS
    await assert_everyone_caught_up(run)


# --- Redis ----------------------------------------------------------------------------


async def test_redis_restarted_under_two_thousand_clients(
    crowd_server: Callable[..., DaphneServer], fresh_redis: RedisServer, e2e_database: str
) -> None:
    """Redis down for 2 s: every change reaches every client (the broadcast or the resync),
    all within 10 s of Redis answering, and nobody is disconnected."""
    if not e2e_database.startswith("postgres"):
        pytest.skip("two thousand clients on one SQLite writer: runs in the PostgreSQL pass")
    server = crowd_server(e2e_database, fresh_redis.url)
    run = await crowd(server)
    answering_again = await acting_through(run, lambda: fresh_redis.restart(down_for=2), seconds=20)
    during = [sent + latency for sent, latency in run.timeline if sent <= answering_again]
    assert max(during) <= answering_again + 10  # what was sent while Redis was away
    assert slowest_sent_after(run, answering_again + 10) < SLOWEST_AFTER_RECOVERY_SECONDS
    await assert_everyone_caught_up(run)


# --- Churn ------------------------------------------------------------------------------

# Eight people (with the one who stays, nine: under the room's cap of ten) reconnect at once.
WARM_UP_CYCLES, CYCLES, CONCURRENCY = 1_000, 3_000, 8
KIB_PER_CYCLE = 1.0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def reconnecting(url: str, tokens: list[str], cycles: int) -> None:
    """`cycles` connect/disconnect cycles, CONCURRENCY at a time, by the people holding
    `tokens` (phones losing and finding the network), each waiting for its state."""

    async def once(token: str) -> None:
        async with websockets.connect(f"{url}?token={token}", open_timeout=30) as ws:
            while json.loads(await ws.recv())["type"] != "state":
                pass

    for start in range(0, cycles, CONCURRENCY):
        batch = [tokens[(start + i) % len(tokens)] for i in range(CONCURRENCY)]
        await asyncio.gather(*(once(token) for token in batch))


async def test_three_thousand_reconnects_keep_memory_flat(
    crowd_server: Callable[..., DaphneServer], fresh_redis: RedisServer, e2e_database: str
) -> None:
    """3,000 connect/disconnect cycles in a room that stays open: the server keeps at most
    1 KiB a cycle after a warm-up, and no subscription is left in Redis."""
    server = crowd_server(e2e_database, fresh_redis.url)
    room = create_room(server.http_url)
    url = f"{server.ws_url}/ws/rooms/{room['id']}/"
    stays = await RoomClient(url).connect()  # someone stays in the room throughout, reading
    try:
        tokens = []
        for _ in range(CONCURRENCY):
            async with websockets.connect(url) as ws:
                tokens.append(json.loads(await ws.recv())["you"]["token"])
        await reconnecting(url, tokens, WARM_UP_CYCLES)
        await asyncio.sleep(1)
        before = rss_kib(server.process.pid)
        await reconnecting(url, tokens, CYCLES)
        await asyncio.sleep(1)
        grown = rss_kib(server.process.pid) - before
        assert grown / CYCLES <= KIB_PER_CYCLE, f"{grown} KiB over {CYCLES} cycles"
        await stays.send("add:still here")  # and the room still works for whoever stayed
        await stays.wait_state(lambda state: "still here" in item_names(state), timeout=10)
    finally:
        await stays.close()
    client = redis.Redis.from_url(fresh_redis.url)
    try:
        deadline = time.monotonic() + 10
        while (left := client.pubsub_channels("asgispecific.*")) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert left == []
    finally:
        client.close()
    assert "Traceback" not in server.log()
