"""Prometheus metrics of one daphne process, served on a port of their own, never the public one.

With METRICS_PORT set, the process serves prometheus_client's text format on
METRICS_ADDRESS:METRICS_PORT (loopback unless told otherwise), from a thread of its own; the
public port (nginx's upstream) has no metrics URL. Each daphne process has its own registry and
its own port (the systemd unit gives instance N port 910N), and Prometheus scrapes each:
no multiprocess mode, whose files and locks a process that restarts in a rolling deploy would
leave behind. docs/operations.md, "Metrics", has the list, example queries and alerts.

All instrumentation is here; the code it measures calls one line per place: `action_observed`
around a command (the consumer), `action_replayed` for one answered from its receipt (the
consumer), `error_sent` where an error event goes out (the consumer),
`layer_send_failed` where a broadcast fails (rooms/broadcast.py), `pool_waited` and
`pool_connection` where a PostgreSQL connection is taken from a pool. What a process serves
and what its drains did is read from lunchsite/drain.py when scraped, at no cost per event.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any

from django.conf import settings
from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lunchsite import drain
from rooms.errors import ClientError, ServerBusy

log = logging.getLogger(__name__)

ACTIONS = Counter(
    "lunchsite_actions",
    "Room actions run, by action and outcome: ok, or the error code that refused it.",
    ["action", "outcome"],
)
ACTION_SECONDS = Histogram(
    "lunchsite_action_seconds",
    "From a parsed action to its end: committed and published, or refused.",
    ["action"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ACTIONS_REPLAYED = Counter(
    "lunchsite_actions_replayed",
    "Room actions with an id seen before: answered from their receipt, not applied again "
    "(a resend after a reconnect whose first answer was lost). Also counted in actions.",
    ["action"],
)
ERRORS = Counter("lunchsite_errors", "Error events sent to clients, by code.", ["code"])
LAYER_SEND_FAILURES = Counter(
    "lunchsite_channel_layer_send_failures",
    "Broadcasts (group_send attempts) the channel layer refused: Redis away. The change is "
    "committed; the per-process resync repairs what was lost.",
)
POOL_WAIT_SECONDS = Histogram(
    "lunchsite_database_pool_wait_seconds",
    "Time to get a PostgreSQL connection from a pool (django: the database threads and HTTP; "
    "everyday: the event loop's), timeouts included.",
    ["pool"],
    buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
)


def action_observed(action: str) -> _ActionTimer:
    """`with metrics.action_observed(action):` around running a command: counts it by outcome
    (ok, the ClientError's code, server_busy, or server_error) and times it."""
    return _ActionTimer(action)


class _ActionTimer:
    __slots__ = ("action", "started")

    def __init__(self, action: str) -> None:
        self.action = action
        self.started = time.perf_counter()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        ACTION_SECONDS.labels(self.action).observe(time.perf_counter() - self.started)
        ACTIONS.labels(self.action, _outcome(error)).inc()


def _outcome(error: BaseException | None) -> str:
    if error is None:
        return "ok"
    if isinstance(error, ClientError):
        return error.code
    if isinstance(error, ServerBusy):
        return "server_busy"
    return "server_error"


def action_replayed(action: str) -> None:
    """A command with an id was seen before: answered from its receipt, not applied again."""
    ACTIONS_REPLAYED.labels(action).inc()


def error_sent(code: str) -> None:
    """An error event with this code went to a client."""
    ERRORS.labels(code).inc()


def layer_send_failed() -> None:
    """A broadcast's group_send failed."""
    LAYER_SEND_FAILURES.inc()


@contextlib.contextmanager
def pool_waited(pool: str) -> Iterator[None]:
    """Time the block (taking a connection from the named pool), whether it got one or not."""
    started = time.perf_counter()
    try:
        yield
    finally:
        POOL_WAIT_SECONDS.labels(pool).observe(time.perf_counter() - started)


@contextlib.asynccontextmanager
async def pool_connection(pool: Any, name: str) -> AsyncIterator[Any]:
    """`pool.connection()` of a psycopg AsyncConnectionPool, its wait timed under `name`."""
    started = time.perf_counter()
    timed = False
    try:
        async with pool.connection() as conn:
            timed = True
            POOL_WAIT_SECONDS.labels(name).observe(time.perf_counter() - started)
            yield conn
    finally:
        if not timed:  # the pool timed out, or could not connect: that wait counts too
            POOL_WAIT_SECONDS.labels(name).observe(time.perf_counter() - started)


class _ServedCollector(Collector):
    """What the process serves and what its drains did, read when scraped (lunchsite/drain.py)."""

    def collect(self) -> Iterator[Metric]:
        served = drain.served
        yield GaugeMetricFamily(
            "lunchsite_connections_open",
            "WebSocket connections this process serves.",
            value=len(served.websockets),
        )
        yield GaugeMetricFamily(
            "lunchsite_rooms_open",
            "Rooms with at least one WebSocket on this process.",
            value=_rooms(served),
        )
        yield GaugeMetricFamily(
            "lunchsite_http_requests_in_flight",
            "HTTP requests this process is answering.",
            value=served.http_requests,
        )
        yield GaugeMetricFamily(
            "lunchsite_draining",
            "1 once SIGTERM started this process's drain.",
            value=1 if drain.draining() else 0,
        )
        yield CounterMetricFamily(
            "lunchsite_drains", "Drains this process started (SIGTERM).", value=served.drains
        )
        yield CounterMetricFamily(
            "lunchsite_drain_closed_connections",
            "WebSockets a drain closed with 1012 (service restart).",
            value=served.closed_for_restart,
        )


def _rooms(served: drain.Served) -> int:
    # Scraped from another thread while the event loop adds and removes connections.
    for _ in range(3):
        try:
            return served.rooms()
        except RuntimeError:  # the dict changed size while it was read: read it again
            continue
    return 0


REGISTRY.register(_ServedCollector())


def serve() -> None:
    """Serve the metrics on METRICS_ADDRESS:METRICS_PORT from a thread (0: not at all).

    A port that cannot be bound is logged, not fatal: the process serves its rooms first.
    """
    port = settings.METRICS_PORT
    if not port:
        return
    address = settings.METRICS_ADDRESS
    try:
        start_http_server(port, addr=address)
    except OSError as exc:
        log.error("metrics not served on %s:%s: %s", address, port, exc)
        return
    log.info("metrics on http://%s:%s/metrics", address, port)
