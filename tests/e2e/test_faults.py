"""Faults with real processes: Redis restarted or absent, a worker killed, the database busy.

Each test starts the processes it breaks (never the machine's shared Redis or PostgreSQL)
and asserts what a user would notice: nothing stored is lost, clients catch up, errors are
clear codes rather than tracebacks.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db import connection as db_connection
from django.utils import timezone
from prometheus_client import REGISTRY
from redis.exceptions import ConnectionError as RedisConnectionError

from lunchsite.asgi import application
from rooms import selectors, services
from rooms.errors import ClientError
from rooms.models import Connection, Participant, new_room_id
from tests.support.client import (
    RoomClient,
    create_room,
    http_json,
    item_names,
    next_answer,
    room_state,
)
from tests.support.processes import (
    DaphneServer,
    PostgresServer,
    RedisServer,
    migrate,
    server_env,
    terminate_backends,
    wait_for_port,
)


@pytest.fixture
async def close_db_thread() -> AsyncIterator[None]:
    """Close the database connection of sync_to_async's thread, so the test DB can be dropped."""
    yield
    # looked up inside the thread: each thread has its own connection
    await sync_to_async(lambda: db_connection.close())()


pytestmark = [pytest.mark.e2e, pytest.mark.fault]


def room_ws(worker: DaphneServer, room_id: str, name: str = "") -> str:
    query = f"?name={name}" if name else ""
    return f"{worker.ws_url}/ws/rooms/{room_id}/{query}"


def healthz(worker: DaphneServer, path: str = "/readyz") -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"{worker.http_url}{path}", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def errors(client: RoomClient) -> list[str]:
    return [e["code"] for e in client.events if e["type"] == "error"]


def assert_no_client_traceback(clients: list[RoomClient]) -> None:
    """Nothing a client received mentions Python internals."""
    for client in clients:
        for event in client.events:
            text = json.dumps(event)
            assert "Traceback" not in text and "Error:" not in text, event


async def reconnect(url: str, *, within: float) -> RoomClient:
    """Reconnect the way a client does: retry (room_full, refused) until admitted."""
    deadline = time.monotonic() + within
    while True:
        client = RoomClient(url)
        try:
            await client.connect(welcome=False)
            event = await client.wait_for(lambda e: e["type"] in {"state", "error"}, timeout=10)
            if event["type"] == "state":
                return client
            await client.close()
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"not readmitted within {within}s: {client.events}")
        await asyncio.sleep(0.25)


# --- Redis -----------------------------------------------------------------------


async def test_redis_restart_mid_room_keeps_clients_in_sync(
    daphne_factory: Callable[..., DaphneServer], fresh_redis: RedisServer
) -> None:
    """Redis restarted (its state gone): clients on both workers see changes within 5 s."""
    # The pub/sub layer resubscribes by itself but drops what was published meanwhile.
    workers = [daphne_factory(redis_url=fresh_redis.url) for _ in range(2)]
    room = create_room(workers[0].http_url)
    clients = [await RoomClient(room_ws(w, room["id"])).connect() for w in workers]
    try:
        await clients[0].send("add:before")
        for client in clients:
            await client.wait_state(lambda s: "before" in item_names(s))

        fresh_redis.stop()
        # A change while Redis is down is stored, and its broadcast fails; connected clients
        # still get it from their connection's resync, which reads the database.
        await clients[1].send("add:during")
        for client in clients:
            await client.wait_state(lambda s: item_names(s) == ["before", "during"], timeout=6)
        fresh_redis.start()
        back = time.monotonic()

        await clients[0].send("add:after")
        for client in clients:
            await client.wait_state(lambda s: "after" in item_names(s), timeout=5)
        assert time.monotonic() - back < 5
        # and the live path works both ways again
        await clients[1].send("add:later")
        for client in clients:
            await client.wait_state(lambda s: "later" in item_names(s), timeout=5)
        final = room_state(workers[1].http_url, room["id"])
        assert item_names(final) == ["before", "during", "after", "later"]
        for client in clients:
            assert client.state == {"type": "state", **final}
        assert_no_client_traceback(clients)
    finally:
        for client in clients:
            await client.close()


# --- A worker killed ---------------------------------------------------------------

# Short presence timings so the test takes seconds; the default is checked separately.
FAST_PRESENCE = {"ROOM_HEARTBEAT_SECONDS": 0.5, "ROOM_PRESENCE_TIMEOUT_SECONDS": 3}


def test_default_presence_timeout_frees_ghosts_within_two_minutes(settings) -> None:
    """With the defaults a dead worker's participants stop counting well within 2 minutes."""
    # The cap ignores a connection silent for the timeout; the others' next heartbeat then
    # sweeps it from the participant list everyone sees.
    assert settings.ROOM_PRESENCE_TIMEOUT_SECONDS > 2 * settings.ROOM_HEARTBEAT_SECONDS
    assert settings.ROOM_PRESENCE_TIMEOUT_SECONDS + settings.ROOM_HEARTBEAT_SECONDS < 120


@pytest.mark.django_db
def test_with_default_timings_ghosts_stop_counting_after_the_timeout(settings) -> None:
    """Default settings: connections silent past the timeout no longer fill the room."""
    room = services.room_create()
    ghosts = [Participant.objects.create(room=room, name=f"g{i}") for i in range(10)]
    silent_for = timedelta(seconds=settings.ROOM_PRESENCE_TIMEOUT_SECONDS - 5)
    for ghost in ghosts:
        Connection.objects.create(
            participant=ghost,
            channel_name=f"dead.{ghost.pk}",
            last_seen=timezone.now() - silent_for,
        )
    with pytest.raises(ClientError) as full:
        services.participant_join(room_id=room.pk, channel_name="live.1")
    assert full.value.code == "room_full"  # still within the timeout: they might be alive

    Connection.objects.update(last_seen=timezone.now() - silent_for - timedelta(seconds=10))
    participant, state = services.participant_join(room_id=room.pk, channel_name="live.1")
    assert [p["id"] for p in state["participants"]] == [participant.pk]
    assert not Connection.objects.filter(channel_name__startswith="dead.").exists()


async def test_killed_worker_leaves_no_ghosts_and_loses_nothing(
    daphne_factory: Callable[..., DaphneServer], redis_server: RedisServer
) -> None:
    """SIGKILL one of two workers: its clients rejoin the survivor; no ghosts fill the room."""
    doomed, survivor = (daphne_factory(redis_url=redis_server.url, **FAST_PRESENCE) for _ in "ab")
    room = create_room(survivor.http_url)
    stay = [await RoomClient(room_ws(survivor, room["id"], f"s{i}")).connect() for i in range(5)]
    moved = [await RoomClient(room_ws(doomed, room["id"], f"d{i}")).connect() for i in range(5)]
    clients = stay + moved
    try:
        for i, client in enumerate(clients):
            await client.send(f"add:dish {i}")
        await stay[0].wait_state(lambda s: len(s["items"]) == 10 and len(s["participants"]) == 10)

        doomed.kill(signal.SIGKILL)
        killed = time.monotonic()
        for client in moved:
            assert await client.wait_closed() not in {1000, None}
        # The dead worker's connections still count for a moment: the room is full.
        late = await RoomClient(room_ws(survivor, room["id"])).connect(welcome=False)
        assert (await late.wait_for(lambda e: e["type"] in {"state", "error"}))["type"] == "error"
        assert errors(late) == ["room_full"]
        assert await late.wait_closed() == 4403

        rejoined = await asyncio.gather(
            *(reconnect(room_ws(survivor, room["id"], f"d{i}"), within=30) for i in range(5))
        )
        clients += rejoined
        took = time.monotonic() - killed
        assert took < FAST_PRESENCE["ROOM_PRESENCE_TIMEOUT_SECONDS"] + 10
        # Everyone on the survivor sees exactly the ten live people and all ten dishes.
        live = {c.you["id"] for c in [*stay, *rejoined]}
        for client in [*stay, *rejoined]:
            state = await client.wait_state(
                lambda s: {p["id"] for p in s["participants"]} == live, timeout=10
            )
            assert sorted(item_names(state)) == sorted(f"dish {i}" for i in range(10))
        api = room_state(survivor.http_url, room["id"])
        assert {p["id"] for p in api["participants"]} == live
        assert item_names(api) == item_names(stay[0].state)
        assert "Traceback" not in survivor.log()
        assert_no_client_traceback(clients)
    finally:
        for client in clients:
            await client.close()


# --- The database busy -------------------------------------------------------------


def _sqlite_path(database_url: str) -> Path:
    return Path(database_url.removeprefix("sqlite:///"))


@pytest.mark.skipif(
    os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="locks the SQLite file; the PostgreSQL run restarts a private PostgreSQL instead",
)
async def test_locked_sqlite_gives_server_busy_and_changes_nothing(
    daphne_factory: Callable[..., DaphneServer], e2e_database: str
) -> None:
    """Another process holds the SQLite write lock: `server_busy`, nothing half-applied."""
    server = daphne_factory(SQLITE_BUSY_TIMEOUT_SECONDS=0.3)
    room = create_room(server.http_url)
    client = await RoomClient(room_ws(server, room["id"])).connect()
    await client.send("add:kept")
    await client.wait_state(lambda s: item_names(s) == ["kept"])
    before = room_state(server.http_url, room["id"])

    lock = sqlite3.connect(_sqlite_path(e2e_database), isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")
        await client.send("add:blocked")
        event = await client.wait_for(lambda e: e["type"] == "error", timeout=15)
        assert event["code"] == "server_busy"
        # A join needs the write lock too: refused with a clear error, not a hang.
        newcomer = await RoomClient(room_ws(server, room["id"])).connect(welcome=False)
        refusal = await newcomer.wait_for(lambda e: e["type"] == "error", timeout=15)
        assert refusal["code"] == "server_busy"
        assert await newcomer.wait_closed() == 4503
        assert room_state(server.http_url, room["id"]) == before  # reads still work
    finally:
        lock.rollback()
        lock.close()

    assert client.close_code is None  # the connection stayed open
    await client.send("add:blocked")
    state = await client.wait_state(lambda s: item_names(s) == ["kept", "blocked"], timeout=10)
    assert state == {"type": "state", **room_state(server.http_url, room["id"])}
    assert_no_client_traceback([client, newcomer])
    await client.close()
    assert "Traceback" not in server.log()


async def test_postgres_restart_gives_server_busy_then_recovers(
    private_postgres: PostgresServer, tmp_path: Path
) -> None:
    """PostgreSQL down mid-room: `server_busy`, nothing half-applied; back up, it just works."""
    url, stop_pg, start_pg = private_postgres.url, private_postgres.stop, private_postgres.start
    env = server_env(url)
    migrate(env)
    server = DaphneServer(env, tmp_path / "daphne-pg.log").start()
    client: RoomClient | None = None
    try:
        room = create_room(server.http_url)
        client = await RoomClient(room_ws(server, room["id"])).connect()
        await client.send("add:kept")
        await client.wait_state(lambda s: item_names(s) == ["kept"])

        stop_pg()
        await client.send("add:retried")
        event = await client.wait_for(lambda e: e["type"] == "error", timeout=20)
        assert event["code"] == "server_busy"
        assert healthz(server)[0] == 503
        start_pg()
        # Retry as a person would on server_busy; the connection pool reconnects in seconds.
        deadline = time.monotonic() + 30
        while True:
            seen = len(client.events)
            await client.send("add:retried")
            answer = await next_answer(client, seen, timeout=20)
            if answer["type"] == "state" or answer["code"] == "duplicate_item":
                break
            assert answer["code"] == "server_busy"
            assert time.monotonic() < deadline, "PostgreSQL back, actions still refused"
            await asyncio.sleep(0.5)
        state = await client.wait_state(lambda s: "retried" in item_names(s), timeout=10)
        assert item_names(state) == ["kept", "retried"]
        assert item_names(room_state(server.http_url, room["id"])) == ["kept", "retried"]
        assert healthz(server)[0] == 200
        assert client.close_code is None
        assert_no_client_traceback([client])
    finally:
        if client is not None:
            await client.close()
        server.stop()
    assert "Traceback" not in server.log()


# --- Redis down at start-up --------------------------------------------------------


async def test_redis_down_at_start_gives_503_then_recovers(
    e2e_database: str, tmp_path: Path
) -> None:
    """REDIS_URL set but Redis down: /readyz 503, the log names the channel layer; fine once up."""
    redis = RedisServer()  # not started yet: its port refuses connections
    server = DaphneServer(server_env(e2e_database, redis.url), tmp_path / "daphne-noredis.log")
    server.start(wait_healthy=False)
    client: RoomClient | None = None
    try:
        wait_for_port(server.port)
        status, body = healthz(server)
        assert (status, body) == (503, {"status": "unavailable"})  # no grace before it answered
        assert healthz(server, "/livez")[0] == 200
        said = [line for line in server.log().splitlines() if "readiness check" in line]
        assert len(said) == 1 and "channel_layer" in said[0], said
        assert "connect" in said[0].lower()
        # A WebSocket now: a clear server_busy and 4503 (try again), not an HTTP 500.
        early = RoomClient(f"{server.ws_url}/ws/rooms/{new_room_id()}/")
        await early.connect(welcome=False)
        assert (await early.wait_for(lambda e: e["type"] == "error"))["code"] == "server_busy"
        assert await early.wait_closed() == 4503

        redis.start()
        deadline = time.monotonic() + 15
        while healthz(server)[0] != 200:
            assert time.monotonic() < deadline, healthz(server)
            await asyncio.sleep(0.2)
        room = create_room(server.http_url)
        client = await RoomClient(room_ws(server, room["id"])).connect()
        await client.send("add:soup")
        await client.wait_state(lambda s: item_names(s) == ["soup"], timeout=5)
    finally:
        if client is not None:
            await client.close()
        server.stop()
        redis.stop()
    assert "Traceback" not in server.log()


class FailingLayer(InMemoryChannelLayer):
    """An in-memory layer whose receive fails like the core Redis layer's when Redis goes."""

    async def receive(self, channel: str) -> dict:
        message = await super().receive(channel)
        if message.get("type") == "test.redis_gone":
            raise RedisConnectionError("Connection closed by server.")
        return message


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_db_thread")
async def test_channel_layer_failure_leaves_no_ghost(settings) -> None:
    """The layer failing under a connection: it leaves the room and closes 4503, no ghost."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": f"{__name__}.FailingLayer"}}
    settings.ROOM_HEARTBEAT_SECONDS = 0.05
    settings.ROOM_RESYNC_SECONDS = 0.05
    room = await sync_to_async(services.room_create)()
    communicator = WebsocketCommunicator(application, f"/ws/rooms/{room.pk}/")
    assert (await communicator.connect())[0]
    assert json.loads(await communicator.receive_from(3))["type"] == "welcome"
    connections = sync_to_async(lambda: list(Connection.objects.values_list("channel_name")))
    [(channel,)] = await connections()

    busy_counted = sync_to_async(
        lambda: REGISTRY.get_sample_value("lunchsite_errors_total", {"code": "server_busy"}) or 0
    )
    busy_before = await busy_counted()
    await get_channel_layer().send(channel, {"type": "test.redis_gone"})
    said = []
    while (output := await communicator.receive_output(3))["type"] != "websocket.close":
        said.append(json.loads(output["text"]))
    assert said[-1]["type"] == "error" and said[-1]["code"] == "server_busy"
    assert output["code"] == 4503
    assert await busy_counted() == busy_before + 1  # the metrics count what the client was told
    await asyncio.sleep(0.3)  # several heartbeats: a leftover keep-alive would rejoin
    assert await connections() == []
    online = sync_to_async(lambda: selectors.participants_online(room=room).count())
    assert await online() == 0
    await communicator.wait()


# --- Health of an idle worker across a Redis restart ---------------------------------


def timed_healthz(worker: DaphneServer) -> tuple[int, dict, float]:
    started = time.monotonic()
    status, body = healthz(worker)
    return status, body, time.monotonic() - started


async def test_idle_worker_health_recovers_after_redis_returns(
    daphne_factory: Callable[..., DaphneServer], fresh_redis: RedisServer
) -> None:
    """No client connected: /readyz is 503 while Redis is down, 200 within 10 s of its return."""
    server = daphne_factory(redis_url=fresh_redis.url, READYZ_CHANNEL_LAYER_GRACE_SECONDS=0)
    assert timed_healthz(server)[0] == 200
    fresh_redis.stop()
    for _ in range(3):  # the checks that time out while Redis is away are what broke it
        status, body, took = timed_healthz(server)
        assert (status, body) == (503, {"status": "unavailable"})
        assert took <= 3.2, took
    fresh_redis.start()  # same port, empty
    back = time.monotonic()
    while True:
        status, body, took = timed_healthz(server)
        assert took <= 3.2, (took, body)
        if status == 200:
            break
        assert time.monotonic() - back < 10, body
        await asyncio.sleep(0.5)
    # and it stays up
    assert [timed_healthz(server)[0] for _ in range(3)] == [200, 200, 200]


async def test_redis_outage_logs_one_warning_each_way_and_a_count(
    daphne_factory: Callable[..., DaphneServer], fresh_redis: RedisServer
) -> None:
    """A Redis outage: one warning when it goes, one when it is back; no traceback a second."""
    server = daphne_factory(redis_url=fresh_redis.url)
    room = create_room(server.http_url)
    client = await RoomClient(room_ws(server, room["id"])).connect()
    try:
        fresh_redis.stop()
        await asyncio.sleep(6)  # channels-redis's receive task fails about once a second
        fresh_redis.start()
        deadline = time.monotonic() + 10
        while "redis reachable again" not in server.log():
            assert time.monotonic() < deadline, server.log()[-3000:]
            await asyncio.sleep(0.3)
    finally:
        await client.close()
    log = server.log()
    assert log.count("redis unreachable") == 1, log[-3000:]
    assert log.count("redis reachable again") == 1
    back = next(line for line in log.splitlines() if "redis reachable again" in line)
    assert int(back.split("(")[1].split()[0]) >= 3  # the errors it counted instead of logging
    assert "Traceback" not in log
    assert "Unexpected exception in receive task" not in log


async def test_a_redis_blip_leaves_workers_ready_and_an_outage_does_not(
    daphne_factory: Callable[..., DaphneServer], fresh_redis: RedisServer
) -> None:
    """Redis away for less than the grace: /readyz stays 200; longer: 503; back: 200 again."""
    grace = 4.0
    server = daphne_factory(redis_url=fresh_redis.url, READYZ_CHANNEL_LAYER_GRACE_SECONDS=grace)
    assert healthz(server)[0] == 200
    fresh_redis.stop()
    gone = time.monotonic()
    seen: list[tuple[float, int]] = []
    while time.monotonic() - gone < grace + 12:
        status = healthz(server)[0]
        seen.append((round(time.monotonic() - gone, 1), status))
        assert healthz(server, "/livez")[0] == 200
        if status == 503:
            break
        await asyncio.sleep(0.3)
    first_503 = next((at for at, status in seen if status == 503), None)
    assert seen[0][1] == 200, seen  # the blip: still ready
    # failing since the first failed check (a check waits up to 2.5 s), unready a grace later
    assert first_503 is not None and grace <= first_503 <= grace + 8, seen
    fresh_redis.start()
    back = time.monotonic()
    while healthz(server)[0] != 200:
        assert time.monotonic() - back < 10, server.log()[-2000:]
        await asyncio.sleep(0.3)
    log = server.log()
    assert log.count("readiness check channel_layer unreachable") == 1, log[-3000:]
    assert "readiness check channel_layer reachable again" in log


def test_probes_are_exempt_from_the_https_redirect(
    daphne_factory: Callable[..., DaphneServer],
) -> None:
    """With DJANGO_HTTPS=1 a plain-HTTP probe gets its answer; pages redirect."""
    server = daphne_factory(DJANGO_HTTPS=1)
    for path in ("/livez", "/readyz", "/healthz"):
        assert healthz(server, path)[0] == 200, path

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as page:
        opener.open(f"{server.http_url}/", timeout=10)
    assert page.value.code == 301


def test_room_creation_is_limited_per_process_while_redis_is_down(
    daphne_factory: Callable[..., DaphneServer], fresh_redis: RedisServer
) -> None:
    """The creation limit's counters live in Redis; while it is down each process counts."""
    server = daphne_factory(redis_url=fresh_redis.url, ROOM_CREATE_PER_MINUTE=3)
    fresh_redis.stop()
    answers = [http_json("POST", f"{server.http_url}/api/rooms/")[0] for _ in range(7)]
    # 3 per minute's window, and these few requests touch at most two windows
    assert answers.count(201) <= 6 and answers.count(429) >= 1, answers
    assert set(answers) == {201, 429}, answers
    assert "Traceback" not in server.log()


# --- The JSON API when the database goes away --------------------------------------


@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="kills PostgreSQL backends; runs in the PostgreSQL pass",
)
def test_api_survives_its_pooled_connections_being_killed(
    daphne_factory: Callable[..., DaphneServer], e2e_database: str
) -> None:
    """pg_terminate_backend on the app's connections mid-traffic: answers stay 200 and JSON."""
    # Production's pool (tests/settings.py turns it off for the test process, and daphne
    # would inherit that).
    server = daphne_factory(DATABASE_POOL=1)
    rooms = [create_room(server.http_url) for _ in range(4)]
    answers: list[tuple[int, str]] = []
    stop = threading.Event()

    def hammer(room_id: str) -> None:
        while not stop.is_set():
            request = f"{server.http_url}/api/rooms/{room_id}/"
            try:
                with urllib.request.urlopen(request, timeout=20) as response:
                    answers.append((response.status, response.headers["Content-Type"]))
            except urllib.error.HTTPError as error:
                answers.append((error.code, error.headers["Content-Type"]))

    threads = [threading.Thread(target=hammer, args=(r["id"],)) for r in rooms * 2]
    for thread in threads:
        thread.start()
    killed = 0
    try:
        for _ in range(8):  # connections die while requests are using them
            time.sleep(0.5)
            killed += terminate_backends(e2e_database)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert killed >= 8
    assert {content_type for _, content_type in answers} == {"application/json"}, answers
    statuses = [status for status, _ in answers]
    assert set(statuses) <= {200, 503}
    assert statuses.count(200) >= 0.9 * len(statuses), statuses.count(503)
    assert "Traceback" not in server.log()


async def test_api_answers_json_503_while_postgres_is_down(
    private_postgres: PostgresServer, tmp_path: Path
) -> None:
    """PostgreSQL stopped: every /api/ call answers 503 {"error": "server_busy"} + Retry-After."""
    url, stop_pg, start_pg = private_postgres.url, private_postgres.stop, private_postgres.start
    env = server_env(url, DATABASE_POOL=1)
    migrate(env)
    server = DaphneServer(env, tmp_path / "daphne-api-pg.log").start()
    try:
        room = create_room(server.http_url)
        stop_pg()
        for method, path in [("GET", f"/api/rooms/{room['id']}/"), ("POST", "/api/rooms/")]:
            request = urllib.request.Request(f"{server.http_url}{path}", method=method)
            started = time.monotonic()
            with pytest.raises(urllib.error.HTTPError) as answer:
                urllib.request.urlopen(request, timeout=20)
            assert time.monotonic() - started < 8
            assert answer.value.code == 503
            assert answer.value.headers["Content-Type"] == "application/json"
            assert int(answer.value.headers["Retry-After"]) > 0
            assert json.loads(answer.value.read()) == {"error": "server_busy"}
        start_pg()
        deadline = time.monotonic() + 30
        while http_json("GET", f"{server.http_url}/api/rooms/{room['id']}/")[0] != 200:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.5)
    finally:
        server.stop()
    assert "Traceback" not in server.log()


async def test_a_twenty_second_redis_outage_keeps_clients_and_delivers_changes(
    daphne_factory: Callable[..., DaphneServer], fresh_redis: RedisServer
) -> None:
    """What held in issue 9: Redis away 20 s, clients stay connected and see changes in ~2 s."""
    workers = [daphne_factory(redis_url=fresh_redis.url) for _ in range(2)]
    room = create_room(workers[0].http_url)
    clients = [await RoomClient(room_ws(w, room["id"])).connect() for w in workers]
    try:
        fresh_redis.stop()
        down = time.monotonic()
        await asyncio.sleep(5)
        await clients[0].send("add:during the outage")
        sent = time.monotonic()
        for client in clients:
            await client.wait_state(lambda s: "during the outage" in item_names(s), timeout=5)
        assert time.monotonic() - sent < 4  # through the per-process resync
        await asyncio.sleep(max(0.0, 20 - (time.monotonic() - down)))
        fresh_redis.start()
        await clients[1].send("add:after")
        for client in clients:
            await client.wait_state(lambda s: "after" in item_names(s), timeout=6)
        assert [c.close_code for c in clients] == [None, None]  # nobody was dropped
        assert_no_client_traceback(clients)
    finally:
        for client in clients:
            await client.close()
