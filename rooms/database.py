"""Running the room services from async code: on which thread, what a busy database means,
and publishing what they committed from the event loop."""

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.db import DatabaseSyncToAsync, database_sync_to_async
from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection

from . import backend, broadcast, everyday, services
from .errors import ClientError, ServerBusy
from .protocol import Command

log = logging.getLogger(__name__)

# A locked SQLite file or a restarting PostgreSQL: try again a few times before giving up.
ATTEMPTS = 3
RETRY_DELAY_SECONDS = 0.2

# Fewer threads than the pool has connections (DATABASE_POOL_MAX_SIZE, 8), so a service
# never waits for one; the rest serve HTTP requests and the health check.
_EXECUTOR = ThreadPoolExecutor(max_workers=settings.DATABASE_THREADS, thread_name_prefix="database")


@functools.cache
def _on_database_thread(vendor: str) -> Callable[..., Any]:
    """Where services run: PostgreSQL on the executor's threads, SQLite on channels' one.

    On one thread every query's round trip waits for the one before, and a process's rooms
    queue behind each other; PostgreSQL runs transactions side by side (each room's row lock
    still orders that room's changes) from a bounded pool. SQLite has a single writer anyway.
    Made once per database: an asgiref wrapper serves any number of calls at a time.
    """
    if vendor == "sqlite":
        return database_sync_to_async(_collecting)
    return DatabaseSyncToAsync(_collecting, thread_sensitive=False, executor=_EXECUTOR)


async def call(service: Callable[..., Any], **kwargs: Any) -> Any:
    """Run a service off the event loop and publish its broadcasts; an outage is ServerBusy.

    One hop to a database thread per call. The service's broadcasts are collected there
    and published here, after the commit, so the thread never waits on the channel layer.
    """
    for attempt in range(1, ATTEMPTS + 1):
        result, error, outbox = await _on_database_thread(backend.vendor())(service, kwargs)
        if outbox:
            await broadcast.publish(outbox)
        if error is None:
            return result
        if isinstance(error, ClientError | IntegrityError) or not isinstance(error, DatabaseError):
            raise error
        log.warning("database error service=%s attempt=%s: %s", service.__name__, attempt, error)
        if attempt == ATTEMPTS:
            raise ServerBusy(str(error)) from error
        await asyncio.sleep(RETRY_DELAY_SECONDS * attempt)
    raise AssertionError("unreachable")


async def command_run(*, room_id: str, participant_id: int, command: Command) -> None:
    """Run a participant's command: an everyday change from the event loop where it can go
    (rooms/everyday.py), anything else, or whatever that could not do, on a database thread."""
    arguments: dict[str, Any] = {
        "room_id": room_id,
        "participant_id": participant_id,
        "command": command,
    }
    try:
        if await everyday.command_run(**arguments) is not None:
            return
    except everyday.Unanswered as unanswered:
        arguments["unless_committed"] = unanswered.receipt
    await call(services.command_run, **arguments)


def request_connection_closed(**kwargs: Any) -> None:
    """At the end of an HTTP request, close its SQLite connection, whatever CONN_MAX_AGE says.

    SQLite's connections are kept between calls (settings.py) for the consumers' services,
    which all run on one long-lived thread. Under ASGI each HTTP request's sync code runs on
    a thread of its own that ends with the request: a connection it kept would stay open,
    a file descriptor each, until the garbage collector found it. (Connected to Django's
    `request_finished` in rooms/apps.py; PostgreSQL's pool returns connections anyway.) A
    connection inside an atomic block is its caller's to end: Django's test client sends
    this signal on the test's own thread, in the test's transaction.
    """
    if connection.vendor == "sqlite" and not connection.in_atomic_block:
        connection.close()


def _collecting(
    service: Callable[..., Any], kwargs: dict[str, Any]
) -> tuple[Any, Exception | None, broadcast.Outbox]:
    """Run the service; what it committed is kept for `call` to publish, even if it failed."""
    with broadcast.collecting() as outbox:
        try:
            return service(**kwargs), None, outbox
        except Exception as exc:
            return None, exc, outbox
