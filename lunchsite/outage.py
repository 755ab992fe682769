"""Redis outages in the log: one warning when Redis goes, a count while it is away, one when back.

channels-redis's pub/sub layer logs a full traceback about once a second for as long as Redis
is unreachable (`Unexpected exception in receive task`, logger `channels_redis.pubsub`).
`RedisOutageFilter` (installed on that logger by settings.LOGGING) swallows those records and
reports them to `redis_outage` instead, which also hears from our own cache users (the room
creation limit). When the layer is the one that noticed, a small task pings Redis every second
until it answers, so even an idle worker logs that Redis is back.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from django.conf import settings

log = logging.getLogger(__name__)

# While Redis stays away, say so again (with the count) this often.
REMINDER_SECONDS = 60.0
PING_SECONDS = 1.0


class Outage:
    """The state of one dependency as this process sees it: up, or down since when."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.down_since: float | None = None
        self.errors = 0
        self._reminded = 0.0
        self._lock = threading.Lock()
        self._watcher: asyncio.Task | None = None

    def failed(self, exc: BaseException | str) -> bool:
        """Count one failure; log only the first of an outage (and a reminder now and then)."""
        now = time.monotonic()
        with self._lock:
            self.errors += 1
            since = self.down_since
            first = since is None
            if since is None:
                since = self.down_since = self._reminded = now
            remind = not first and now - self._reminded >= REMINDER_SECONDS
            if remind:
                self._reminded = now
            down_for, errors = now - since, self.errors
        if first:
            log.warning(
                "%s unreachable: %s; further errors are counted, not logged", self.name, exc
            )
        elif remind:
            log.warning(
                "%s still unreachable after %.0f s (%d errors)", self.name, down_for, errors
            )
        return first

    def recovered(self) -> None:
        """The dependency answered: if it was down, log that it is back and how long it was away."""
        with self._lock:
            if self.down_since is None:
                return
            down_for, errors = time.monotonic() - self.down_since, self.errors
            self.down_since, self.errors = None, 0
        log.warning(
            "%s reachable again after %.1f s (%d errors while down)", self.name, down_for, errors
        )

    @property
    def is_down(self) -> bool:
        return self.down_since is not None

    def watch(self, ping) -> None:
        """From the event loop: call `ping` every second until it succeeds, then `recovered()`."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not on a loop (a sync thread): the next success there reports recovery
        if self._watcher is not None and not self._watcher.done():
            return
        self._watcher = loop.create_task(self._watch(ping), name=f"{self.name}-outage-watch")

    async def _watch(self, ping) -> None:
        while self.is_down:
            await asyncio.sleep(PING_SECONDS)
            try:
                await asyncio.wait_for(ping(), timeout=PING_SECONDS)
            except Exception as exc:  # still down: count it like any other failure
                self.failed(f"{type(exc).__name__}: {exc}")
            else:
                self.recovered()


redis_outage = Outage("redis")


async def _ping_redis() -> None:
    from redis import asyncio as aioredis

    client = aioredis.from_url(settings.REDIS_URL, socket_connect_timeout=PING_SECONDS)
    try:
        await client.ping()
    finally:
        await client.aclose()


def _is_connection_error(exc: BaseException) -> bool:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return isinstance(exc, OSError | TimeoutError | RedisConnectionError | RedisTimeoutError)


class RedisOutageFilter(logging.Filter):
    """On channels-redis's logger: its per-second error records become `redis_outage` counts."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or not _is_connection_error(exc):
            return True  # anything else (a bug) is logged as it is
        redis_outage.failed(f"{type(exc).__name__}: {exc}")
        if settings.REDIS_URL:
            redis_outage.watch(_ping_redis)
        return False
