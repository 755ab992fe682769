"""Health probes: `/livez` (the process serves) and `/readyz` (it can serve a room now).

Both are answered by `HealthProbeMiddleware`, ahead of the host check, the session and the
rest of the stack: a load balancer or systemd probes a worker on its own address
(`Host: 127.0.0.1:8001`), which is not in ALLOWED_HOSTS in production, and a probe needs
none of what follows. Anyone gets only `{"status": ...}`; which check failed and why goes to
the log, once when it starts failing and once when it answers again (lunchsite/outage.py).
`/healthz`, the older name, answers as `/readyz` does. docs/operations.md.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse

from lunchsite import drain
from rooms.realtime import transport

from .outage import Outage, redis_outage

log = logging.getLogger(__name__)

# Both checks run side by side, each within this budget, so one call answers in about 2.5 s
# at worst: a load balancer's probe (typically 5 s) never times out on us.
HEALTH_CHECK_SECONDS = 2.5

LIVENESS_PATHS = frozenset({"/livez"})
READINESS_PATHS = frozenset({"/readyz", "/healthz"})


def _database_answers() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


class _LayerProbe:
    """A round trip through the channel layer on one long-lived channel of this process.

    The channel's receive runs in a task of its own that is never cancelled: the pub/sub
    layer unsubscribes a channel whose receive is cancelled, and a check that timed out
    (Redis down) would then publish its next ping to a channel nobody listens to, so an
    idle worker's health never came back. A new channel per check would leak instead.
    """

    def __init__(self, layer) -> None:
        self.layer = layer
        self.loop = asyncio.get_running_loop()
        self.channel: str | None = None
        # For the readiness grace: whether the layer ever answered, and since when it fails.
        self.answered_once = False
        self.failing_since: float | None = None
        self.waiting: dict[str, asyncio.Future] = {}
        self._reader: asyncio.Task | None = None

    async def round_trip(self) -> None:
        if self._reader is None or self._reader.done():
            # Redis down: new_channel fails here, and the next check tries again.
            if self.channel is not None:
                await transport.channel_release(self.layer, self.channel)
            self.channel = None
            self.channel = await transport.channel_new(self.layer, "healthz.")
            self._reader = asyncio.get_running_loop().create_task(self._read(self.channel))
        nonce = secrets.token_hex(8)
        answered = self.waiting[nonce] = asyncio.get_running_loop().create_future()
        try:
            await self.layer.send(self.channel, {"type": "healthz.ping", "nonce": nonce})
            await answered
        finally:
            del self.waiting[nonce]

    async def _read(self, channel: str) -> None:
        while True:
            message = await self.layer.receive(channel)
            # A ping from a check that already timed out finds nobody waiting: skipped.
            future = self.waiting.get(message.get("nonce", ""))
            if future is not None and not future.done():
                future.set_result(None)


# One probe per layer, replaced when the event loop changes (tests run several; daphne has one).
_probes: dict[int, _LayerProbe] = {}


def _layer_probe() -> _LayerProbe:
    layer = get_channel_layer()
    probe = _probes.get(id(layer))
    if probe is None or probe.layer is not layer or probe.loop is not asyncio.get_running_loop():
        probe = _probes[id(layer)] = _LayerProbe(layer)
    return probe


class _Check:
    """One dependency's check, within the budget; its first failure and recovery are logged."""

    def __init__(self, name: str) -> None:
        self.outage = Outage(f"readiness check {name}")

    async def __call__(self, run: Callable[[], Awaitable[None]]) -> bool:
        try:
            await asyncio.wait_for(run(), timeout=HEALTH_CHECK_SECONDS)
        except Exception as exc:  # any failure is the answer, not a crash
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self.outage.failed(detail[:300])
            return False
        self.outage.recovered()
        return True


_database = _Check("database")
_channel_layer = _Check("channel_layer")
_database_answers_async = sync_to_async(_database_answers)


async def ready() -> bool:
    """Whether this process can serve a room now: its database and its channel layer answer.

    A channel layer that answered before and has been failing for less than
    READYZ_CHANNEL_LAYER_GRACE_SECONDS still counts as ready: a Redis restart is shared by
    every worker, connected clients ride it out (the per-process resync), and a load balancer
    that pulled every worker at once for it would turn a blip into an outage. The database
    has no grace: without it nothing works, and a worker that alone lost it should be skipped.
    """
    probe = _layer_probe()
    database_ok, layer_ok = await asyncio.gather(
        _database(_database_answers_async), _channel_layer(probe.round_trip)
    )
    now = time.monotonic()
    if layer_ok:
        probe.answered_once, probe.failing_since = True, None
        if settings.REDIS_URL:
            redis_outage.recovered()
    elif probe.failing_since is None:
        probe.failing_since = now
    grace = settings.READYZ_CHANNEL_LAYER_GRACE_SECONDS
    tolerated = not layer_ok and probe.answered_once and now - (probe.failing_since or now) < grace
    return database_ok and (layer_ok or tolerated)


def _probe_response(status: int, body: dict[str, str]) -> HttpResponse:
    response = JsonResponse(body, status=status)
    # Answered before the middleware that adds these to pages: a JSON body needs no more.
    response["Cache-Control"] = "no-store"
    response["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'"
    response["X-Frame-Options"] = "DENY"
    return response


async def livez(request: HttpRequest) -> HttpResponse:
    """200 while the process serves HTTP; checks nothing else."""
    return _probe_response(200, {"status": "ok"})


async def readyz(request: HttpRequest) -> HttpResponse:
    """200 when the database and the channel layer answer (see `ready`), else 503; 503 from
    the moment SIGTERM starts the drain, so that a load balancer stops sending."""
    if not drain.draining() and await ready():
        return _probe_response(200, {"status": "ok"})
    return _probe_response(503, {"status": "unavailable"})


class HealthProbeMiddleware:
    """Answer /livez, /readyz and /healthz before the host check, sessions and the views."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Awaitable[HttpResponse]]) -> None:
        assert iscoroutinefunction(get_response)
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if path not in LIVENESS_PATHS and path not in READINESS_PATHS:
            return await self.get_response(request)
        if request.method not in {"GET", "HEAD"}:
            response = _probe_response(405, {"status": "method_not_allowed"})
            response["Allow"] = "GET, HEAD"
            return response
        return await (livez if path in LIVENESS_PATHS else readyz)(request)
