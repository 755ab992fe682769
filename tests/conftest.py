"""Fixtures shared by every test: real Redis, real daphne processes, fresh databases."""

from __future__ import annotations

import inspect
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tests.support.processes import (
    DaphneServer,
    PostgresServer,
    PostgresUnavailable,
    RedisServer,
    database_url_for_test,
    drop_database,
    migrate,
    server_env,
)
from tests.support.webhook_receiver import Receiver, receivers

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker) -> Iterator[None]:
    """pytest-django's test database, with stray connections cut before it is dropped.

    Consumer tests leave connections open in database threads that outlive the tests, and
    PostgreSQL refuses to drop a database that is in use.
    """
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


# Fixtures that start processes of their own, and the marker that keeps a test asking for one
# out of the fast tier (scripts/test-fast.sh) even when its module forgot to say so.
SLOW_FIXTURES = {
    "daphne_factory": "e2e",
    "daphne_url": "e2e",
    "e2e_database": "e2e",
    "redis_server": "redis",
    "fresh_redis": "redis",
    "channel_layer_redis": "redis",
}
PERFORMANCE_DIR = Path(__file__).resolve().parent / "performance"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every async test closes its loop's database pool (`loop_pool_closed`); tests that start
    processes carry their slow marker; tests/performance/ carries `performance`."""
    for item in items:
        if inspect.iscoroutinefunction(getattr(item, "function", None)):
            item.fixturenames.append("loop_pool_closed")
        for marker in sorted({SLOW_FIXTURES[f] for f in item.fixturenames if f in SLOW_FIXTURES}):
            item.add_marker(marker)
        if PERFORMANCE_DIR in item.path.parents:
            item.add_marker("performance")


@pytest.fixture
async def loop_pool_closed() -> AsyncIterator[None]:
    """Each async test runs on a loop of its own, and the everyday changes open a pool of
    PostgreSQL connections per loop (rooms/everyday.py): close it with the test, rather than
    leave it to the garbage collector and the session's backend cleanup."""
    yield
    from rooms import everyday

    await everyday.pools_close()


@pytest.fixture
def many_descriptors() -> Iterator[None]:
    """Over a thousand files open, as in a process serving a thousand WebSockets: the next
    socket's descriptor is above select()'s FD_SETSIZE (1024)."""
    opened = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    assert max(opened) >= 1024
    yield
    for descriptor in opened:
        os.close(descriptor)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server of the test session's own (never the machine's shared one)."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def fresh_redis() -> Iterator[RedisServer]:
    """A redis-server for one test, which it may stop and restart."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def private_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster of the test's own, which it may stop, restart or terminate."""
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        pytest.skip("runs in the PostgreSQL pass of the suite")
    server = PostgresServer()
    try:
        server.start()
    except PostgresUnavailable as missing:
        pytest.skip(str(missing))
    yield server
    server.destroy()


@pytest.fixture
def channel_layer_redis(settings, redis_server: RedisServer) -> str:
    """Point the channel layer (and cache) of in-process tests at the real Redis."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [redis_server.url]},
        }
    }
    return redis_server.url


@pytest.fixture
def channel_layer_memory(settings) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


# The consumer tests' channel layer, one per pass of `make test` so that each test runs once per
# database: the in-memory layer on SQLite (and in the fast tier), Redis on PostgreSQL, as in
# production. TEST_CHANNEL_LAYER=memory or redis picks one for a run.
CONSUMER_LAYER = os.environ.get("TEST_CHANNEL_LAYER") or (
    "redis" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "memory"
)


@pytest.fixture(
    params=[
        pytest.param(CONSUMER_LAYER, marks=[pytest.mark.redis] if CONSUMER_LAYER == "redis" else [])
    ]
)
def layer(request: pytest.FixtureRequest) -> str:
    """The channel layer of this pass for a consumer test (the in-memory one or Redis)."""
    request.getfixturevalue(f"channel_layer_{request.param}")
    return request.param


@pytest.fixture
def e2e_database(tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database for daphne processes (PostgreSQL when DATABASE_URL says so)."""
    url = database_url_for_test(tmp_path)
    migrate(server_env(url))
    yield url
    drop_database(url)


@pytest.fixture
def daphne_factory(e2e_database: str, tmp_path: Path) -> Iterator[Callable[..., DaphneServer]]:
    """Start daphne processes on the test's database; every one is stopped afterwards.

    Keyword arguments become environment variables (ROOM_TTL_SECONDS=2, REDIS_URL=...);
    `daphne_args` are more command-line options for daphne. It returns once /readyz is 200,
    or with `ready=False` once /livez is (a server whose dependencies are down).
    """
    servers: list[DaphneServer] = []

    def start(
        *,
        redis_url: str | None = None,
        port: int | None = None,
        daphne_args: tuple[str, ...] = (),
        ready: bool = True,
        **env: object,
    ) -> DaphneServer:
        log_path = tmp_path / f"daphne-{len(servers)}.log"
        server = DaphneServer(
            server_env(e2e_database, redis_url, **env), log_path, args=tuple(daphne_args)
        )
        if port is not None:
            server.port = port
        servers.append(server)
        return server.start(wait_live=not ready)

    yield start
    for server in servers:
        server.stop()
    ARTIFACTS.mkdir(exist_ok=True)
    for server in servers:
        if server.log_path.exists():
            (
                ARTIFACTS / f"{os.getpid()}-{server.log_path.parent.name}-{server.log_path.name}"
            ).write_text(server.log())


@pytest.fixture
def daphne_url(daphne_factory) -> str:
    """One daphne process with the in-memory channel layer."""
    return daphne_factory().http_url


@pytest.fixture
def receiver_factory() -> Iterator[Callable[..., Receiver]]:
    """Start local webhook receivers (keyword arguments as `Receiver`); all stop afterwards."""
    yield from receivers()
