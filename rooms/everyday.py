"""The everyday changes on PostgreSQL, sent from the event loop instead of a database thread.

An add, a remove, a vote, a veto, a rename, in/out and extend are one pipeline: BEGIN, the
room's lock, the change with the bump, the state read and COMMIT, one round trip
(`services.pipelined_statements`, rooms/services/_core.py). On a database thread each also
cost two hops between the loop and the thread, and the thread's Python waited for the
interpreter lock the loop holds while it relays frames (docs/performance.md). Here psycopg's
async connection sends the same statements from the loop, on a pool of the loop's own.

Only what went through is done here. A refused change wrote nothing (the rules are in its
SQL), so the service runs it again on a database thread and says which rule refused it, or
applies it if the room changed in between. So does a change whose connection failed (the
services' retries and server_busy, rooms/database.py), with one care: if the connection
failed after the COMMIT went out, the change may have committed unanswered. Its bump writes
a receipt of its own into the room's row, and the service first looks for it (`Unanswered`,
`services.command_run`), so a change that went through is not applied a second time. Every
other command, and SQLite, go to the services as before.
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

from . import backend, broadcast, selectors, services
from .protocol import Command, StateEvent

log = logging.getLogger(__name__)


def enabled() -> bool:
    """On PostgreSQL, unless ROOM_CHANGES_ON_EVENT_LOOP=0."""
    return settings.ROOM_CHANGES_ON_EVENT_LOOP and backend.vendor() == "postgresql"


class Unanswered(Exception):
    """The change's connection failed: it may have committed. The service is to run it unless
    its bump's `receipt` is in the room (`services.command_run`'s `unless_committed`)."""

    def __init__(self, receipt: UUID) -> None:
        super().__init__(receipt)
        self.receipt = receipt


async def command_run(*, room_id: str, participant_id: int, command: Command) -> StateEvent | None:
    """Apply an everyday command and publish its state; None if the services must run it.

    Raises Unanswered if the statements failed (PostgreSQL down or saturated, the connection
    lost) and the services must decide whether the change went through.
    """
    spec = command.spec
    build = services.EVERYDAY_CHANGES.get(spec.service)
    if build is None or not enabled():
        return None
    change = build(**spec.fixed, **command.arguments)  # a bad argument raises ClientError
    by = participant_id if spec.by_participant else None
    receipt = uuid4()
    statements = services.pipelined_statements(room_id, change, by=by, receipt=receipt)
    try:
        bumped, state_rows = await _sent_in_one_transaction(statements)
    except psycopg.Error as exc:  # PoolTimeout too: nothing was sent, the receipt is not found
        log.warning("everyday change failed on the loop room=%s: %r; trying a thread", room_id, exc)
        raise Unanswered(receipt) from exc
    applied = services.applied_from(bumped, state_rows)
    if applied is None:
        return None  # refused: the service says why
    state = selectors.room_state_from_rows(room=applied.room, rows=applied.state_rows)
    await broadcast.state_published(group=applied.room.group_name, state=state)
    return state


async def _sent_in_one_transaction(
    statements: list[tuple[str, dict]],
) -> tuple[list[tuple], list[tuple]]:
    """BEGIN, the lock, the change with the bump, the state read, COMMIT: one pipeline.

    The rows of the bump and of the state read. A statement that fails aborts the rest,
    COMMIT included, and raises; the pool rolls the connection back when it is returned.
    """
    pool = await _pool()
    async with metrics.pool_connection(pool, "everyday") as conn:
        cursors = [conn.cursor() for _ in statements]
        async with conn.pipeline():
            await conn.execute("BEGIN")
            for cursor, (sql, params) in zip(cursors, statements, strict=True):
                await cursor.execute(sql, params)
            await conn.execute("COMMIT")
        _, bumped, state = cursors
        return await bumped.fetchall(), await state.fetchall()


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
