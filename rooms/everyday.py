"""The everyday changes on PostgreSQL, sent from the event loop instead of a database thread.

An add, a remove, a vote, a veto, a rename, in/out and extend are one pipeline: BEGIN, the
room's lock, the checks with the change and the bump, the state read and COMMIT, one round
trip. The statements and the reading of their rows are rooms/services/runner.py's, the same
as a database thread's; only the sending is here. On a database thread each change also
cost two hops between the loop and the thread, and the thread's Python waited for the
interpreter lock the loop holds while it relays frames (docs/performance.md). Here psycopg's
async connection sends the same statements from the loop, on a pool of the loop's own.

A refusal comes back in the same round trip as its error code (rooms/services/changes.py),
having written nothing. A change whose connection failed goes to the service on a database
thread (its retries and server_busy, rooms/database.py), with one care: if the connection
failed after the COMMIT went out, the change may have committed unanswered. Its bump writes
a receipt of its own into the room's row, and the thread first looks for it (`Unanswered`,
`commands.command_run`), so a change that went through is not applied a second time (a
command with an `id` is found by its own receipt, written by the same statement). Every
other command, and SQLite, go to the services on a database thread.
"""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID, uuid4
from weakref import WeakKeyDictionary

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from psycopg_pool import AsyncConnectionPool

from lunchsite import metrics
from lunchsite.postgresql.base import looks_dropped

from . import backend, broadcast
from .protocol import StateEvent
from .services import states
from .services.changes import Change
from .services.runner import (
    CommandKey,
    Replay,
    change_outcome,
    change_statements,
    keyed_change_outcome,
)
from .services.statements import Statement

log = logging.getLogger(__name__)


def enabled() -> bool:
    """On PostgreSQL, unless ROOM_CHANGES_ON_EVENT_LOOP=0."""
    return settings.ROOM_CHANGES_ON_EVENT_LOOP and backend.vendor() == "postgresql"


class Unanswered(Exception):
    """The change's connection failed: it may have committed. A database thread is to run it
    unless its bump's `receipt` is in the room (`commands.command_run`'s `unless_committed`)."""

    def __init__(self, receipt: UUID) -> None:
        super().__init__(receipt)
        self.receipt = receipt


async def change_send(
    *, room_id: str, change: Change, by: int | None, key: CommandKey | None = None
) -> StateEvent | Replay:
    """Apply a change from the loop and publish its state; return the state.

    A refusal raises its ClientError. Raises Unanswered if the statements failed
    (PostgreSQL down or saturated, the connection lost) and a database thread must decide
    whether the change went through. With a command's `key`, the same statement keeps its
    receipt: a command seen before is answered as then (a Replay, or the same ClientError).
    """
    receipt = uuid4()
    plan = change_statements(room_id, change, by=by, vendor="postgresql", receipt=receipt, key=key)
    try:
        rows = await _sent_in_one_transaction(plan.sql)
    except psycopg.Error as exc:  # PoolTimeout too: nothing was sent, the receipt is not found
        log.warning("everyday change failed on the loop room=%s: %r; trying a thread", room_id, exc)
        raise Unanswered(receipt) from exc
    if key is None:
        applied = change_outcome(rows[plan.verdict], rows[-1])
    else:
        outcome = keyed_change_outcome(rows[plan.verdict], rows[-1])
        if isinstance(outcome, Replay):
            return outcome
        applied = outcome
    # Committed already: the state goes out through the services' own entry point, now.
    with broadcast.collecting(committed=True) as outbox:
        states.state_publish(applied.room, applied.state)
    await broadcast.publish(outbox)
    return applied.state


async def _sent_in_one_transaction(statements: list[Statement]) -> list[list[tuple]]:
    """BEGIN, the statements, COMMIT: one pipeline; the rows of each statement.

    A statement that fails aborts the rest, COMMIT included, and raises; the pool rolls the
    connection back when it is returned.
    """
    pool = await _pool()
    async with metrics.pool_connection(pool, "everyday") as conn:
        cursors = [conn.cursor() for _ in statements]
        async with conn.pipeline():
            await conn.execute("BEGIN")
            for cursor, (sql, params) in zip(cursors, statements, strict=True):
                await cursor.execute(sql, params)
            await conn.execute("COMMIT")
        return [await cursor.fetchall() for cursor in cursors]


# --- The loop's connections ------------------------------------------------------

_pools: WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncConnectionPool] = WeakKeyDictionary()


async def _pool() -> AsyncConnectionPool:
    """The running loop's pool, opened on first use (daphne runs one loop per process)."""
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is None:
        pool = _pools[loop] = AsyncConnectionPool(
            kwargs=_connection_kwargs(),
            min_size=1,
            max_size=settings.DATABASE_THREADS,
            # As the threads' pool: longer means PostgreSQL is down or saturated, and the
            # service's retries then answer server_busy.
            timeout=2,
            check=_check_if_suspect,
            open=False,
            name="everyday",
        )
    if pool.closed:  # new, or still opening for another change (open() is idempotent)
        await pool.open()
    return pool


async def pools_close() -> None:
    """Close the running loop's pool (tests: their loops end, daphne's does not)."""
    pool = _pools.pop(asyncio.get_running_loop(), None)
    if pool is not None:
        await pool.close()


def _connection_kwargs() -> dict:
    """Django's connection parameters (database, adapters, prepared statements), for psycopg's
    async connection: in autocommit, as the pipeline sends its own BEGIN and COMMIT, and in
    UTC, as Django reads and writes times."""
    params = dict(connections[DEFAULT_DB_ALIAS].get_connection_params())
    params.pop("cursor_factory", None)  # Django's is a sync cursor; psycopg's binds server-side
    # DATABASE_PREPARE_THRESHOLD=0 (PgBouncer without prepared statements): Django then binds
    # on the client and passes no threshold; psycopg's default would prepare after 5 runs.
    params.setdefault("prepare_threshold", None)
    options = params.get("options", "")
    params["options"] = f"{options} -c TimeZone=UTC".strip()
    params["autocommit"] = True
    return params


async def _check_if_suspect(conn: psycopg.AsyncConnection) -> None:
    """lunchsite/postgresql/base.py's check, for this pool: a round trip only for a
    connection whose socket shows the server dropped it."""
    if looks_dropped(conn):
        await AsyncConnectionPool.check_connection(conn)
