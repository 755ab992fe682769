"""The PostgreSQL pool's checkout check: no round trip for a healthy connection, a new
connection in place of one the server ended (lunchsite/postgresql/base.py)."""

from __future__ import annotations

import select
import time
from collections.abc import Iterator

import pytest
from django.db import connection
from psycopg_pool import ConnectionPool

from lunchsite.postgresql.base import DatabaseWrapper, check_if_suspect

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="psycopg's pool; runs in the PostgreSQL pass"
    ),
]


@pytest.fixture
def pooled() -> Iterator[DatabaseWrapper]:
    """The project's backend on the test database, with a pool of one connection."""
    settings = {
        **connection.settings_dict,
        "ENGINE": "lunchsite.postgresql",
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {"pool": {"min_size": 1, "max_size": 1, "timeout": 5}},
    }
    wrapper = DatabaseWrapper(settings, alias="pool_check_test")
    wrapper.pool.open(wait=True)
    yield wrapper
    wrapper.close_pool()


@pytest.fixture
def full_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts psycopg's own check (the empty query) each time it runs."""
    calls: list[int] = []
    original = ConnectionPool.check_connection

    def counting(conn) -> None:
        calls.append(conn.info.backend_pid)
        original(conn)

    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(counting))
    return calls


def _terminate(pid: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        assert cursor.fetchone() == (True,)


def _wait_readable(conn, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    while not poller.poll(50):
        assert time.monotonic() < deadline, "the server never ended the connection"


def test_the_backend_gives_its_pool_the_cheap_check(pooled: DatabaseWrapper) -> None:
    # Fails if psycopg_pool renames the attribute the backend sets.
    assert pooled.pool._check is check_if_suspect


def test_a_healthy_connection_is_checked_out_without_a_query(
    pooled: DatabaseWrapper, full_checks: list[int]
) -> None:
    for _ in range(3):
        with pooled.pool.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    assert full_checks == []


def test_a_connection_the_server_ended_is_replaced_at_checkout(
    pooled: DatabaseWrapper, full_checks: list[int]
) -> None:
    with pooled.pool.connection() as conn:
        pid = conn.info.backend_pid
    _terminate(pid)
    _wait_readable(conn)

    with pooled.pool.connection() as conn:
        # The caller never sees the dead one: the check caught it and the pool reconnected.
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.info.backend_pid != pid
    assert full_checks == [pid]


def test_a_connection_above_descriptor_1024_is_checked_out(
    many_descriptors: None, pooled: DatabaseWrapper, full_checks: list[int]
) -> None:
    """With a thousand sockets open, a new connection's descriptor is past select()'s limit:
    the check still answers (it raised ValueError, and every checkout timed out)."""
    with pooled.pool.connection() as conn:
        assert conn.fileno() >= 1024
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with pooled.pool.connection() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert full_checks == []


def test_a_dropped_connection_above_descriptor_1024_is_replaced(
    many_descriptors: None, pooled: DatabaseWrapper, full_checks: list[int]
) -> None:
    with pooled.pool.connection() as conn:
        pid = conn.info.backend_pid
        assert conn.fileno() >= 1024
    _terminate(pid)
    _wait_readable(conn)
    with pooled.pool.connection() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.info.backend_pid != pid
    assert full_checks == [pid]
