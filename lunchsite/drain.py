"""A graceful drain: on SIGTERM a daphne process hands its WebSockets over, then exits.

daphne's own SIGTERM (twisted's) stops the reactor at once: every consumer is cancelled, each
client sees 1006, and a change whose answer was on its way is lost to its author. Instead,
SIGTERM here starts a drain (docs/operations.md, "Deploying"):

1. The process stops taking WebSockets: a handshake is answered `503` (nginx then tries the
   next process: `proxy_next_upstream ... http_503`), and `/readyz` answers 503 so that a
   probing load balancer stops sending.
2. Its WebSockets are closed with 1012 ("service restart") in jittered batches spread over
   ROOM_DRAIN_SECONDS, so their clients reconnect to the other processes a few at a time
   rather than all in one instant; they get the newest state there.
3. It waits up to ROOM_DRAIN_FINISH_SECONDS for the consumers to finish: frames a client sent
   before it saw the close are still read (autobahn delivers data while closing) and run,
   then each consumer's `disconnect` leaves the room. So a frame a client managed to send is
   applied, once, and one it could not send was not: a client never needs to resend.
4. It stops the reactor as daphne would; a second SIGTERM does that at once.

autobahn lets a server send only 1000 or 3000-4999 through `sendClose`; 1012 is the code
registered for this (RFC 6455's registry), which browsers and websocat report as is, so the
close frame is sent with autobahn's lower-level `sendCloseFrame`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import random
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

from django.conf import settings

log = logging.getLogger(__name__)

# "Service restart": the client should reconnect (to another process) and will be served.
RESTART_CLOSE_CODE = 1012
# Batches are at least this far apart: finer would be one close per loop turn for no gain.
BATCH_SECONDS = 0.1
# How often the drain looks again at what is left while it waits for the consumers.
POLL_SECONDS = 0.05

Scope = dict[str, Any]
Application = Callable[[Scope, Callable, Callable], Awaitable[None]]


class Served:
    """What this process serves right now: its WebSockets (daphne's protocol, or a stand-in
    under another server) with the room path of each, and how many HTTP requests; and what
    drains did. lunchsite/metrics.py reads it when scraped."""

    def __init__(self) -> None:
        self.websockets: dict[object, str] = {}
        self.http_requests = 0
        self.draining_since: float | None = None
        self.drains = 0
        self.closed_for_restart = 0

    def rooms(self) -> int:
        """Distinct WebSocket paths: the rooms this process has a connection to."""
        return len(set(self.websockets.values()))


served = Served()


def draining() -> bool:
    """True once SIGTERM started the drain: the process takes no more WebSockets."""
    return served.draining_since is not None


# --- The ASGI side: who is served, and no new WebSocket while draining -------------------


def with_drain(application: Application) -> Application:
    """ASGI middleware: count what is served, and refuse WebSockets once the drain began.

    Outermost in lunchsite/asgi.py, beside (and passing on untouched) daphne's own `send`,
    from which it takes the connection's protocol to close it with 1012 later.
    """

    async def app(scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http":
            served.http_requests += 1
            try:
                return await application(scope, receive, send)
            finally:
                served.http_requests -= 1
        if scope["type"] != "websocket":
            return await application(scope, receive, send)
        protocol = _daphne_protocol(send)
        if draining():
            await _refused(protocol, send)
            return None
        key = protocol if protocol is not None else object()
        served.websockets[key] = scope.get("path", "")
        try:
            return await application(scope, receive, send)
        finally:
            served.websockets.pop(key, None)

    return app


def _daphne_protocol(send: Callable) -> Any | None:
    """daphne's WebSocket protocol behind `send` (`partial(server.handle_reply, protocol)`)."""
    if isinstance(send, functools.partial) and send.args:
        return send.args[0]
    return None


async def _refused(protocol: Any | None, send: Callable) -> None:
    """Turn a handshake away with 503, which nginx retries on another process.

    daphne answers a WebSocket closed before it is accepted with 403 only, which nginx would
    pass on; its protocol's pending handshake is failed here as daphne's `serverReject` does,
    with autobahn's ConnectionDeny and 503. Under another server: a close (403).
    """
    handshake = getattr(protocol, "handshake_deferred", None)
    if protocol is None or handshake is None:
        await send({"type": "websocket.close", "code": RESTART_CLOSE_CODE})
        return
    from autobahn.websocket.types import ConnectionDeny

    del protocol.handshake_deferred
    handshake.errback(ConnectionDeny(code=503, reason="Service Unavailable"))
    protocol.server.protocol_disconnected(protocol)


# --- The drain -------------------------------------------------------------------------


def install() -> None:
    """Under daphne, make SIGTERM drain (ROOM_DRAIN_SECONDS > 0); elsewhere do nothing.

    Twisted installs its SIGTERM handler as the reactor starts, so ours replaces it right after
    ("after startup"). Outside daphne (tests, manage.py) no reactor runs and nothing happens.
    """
    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is None or settings.ROOM_DRAIN_SECONDS <= 0:
        return
    reactor.callWhenRunning(_take_sigterm, reactor)


def _take_sigterm(reactor: Any) -> None:
    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        if draining():
            log.warning("SIGTERM again while draining: stopping now")
            reactor.sigTerm(signum, frame)
            return
        # A signal handler runs between two bytecodes of whatever the loop was doing: the
        # drain itself starts on the loop, as twisted's own handler stops it from there.
        reactor.callFromThread(_drain_started, reactor)

    signal.signal(signal.SIGTERM, on_sigterm)


def _drain_started(reactor: Any) -> None:
    if draining():
        return
    served.draining_since = time.monotonic()
    task = asyncio.get_event_loop().create_task(_drain_then_stop(reactor))
    _tasks.add(task)  # a reference until it is done, or the loop may collect it
    task.add_done_callback(_tasks.discard)


_tasks: set[asyncio.Task] = set()


async def _drain_then_stop(reactor: Any) -> None:
    try:
        await drain(settings.ROOM_DRAIN_SECONDS, settings.ROOM_DRAIN_FINISH_SECONDS)
    except Exception:
        log.exception("drain failed; stopping")
    finally:
        from twisted.internet.error import ReactorNotRunning

        # A second SIGTERM may have stopped it meanwhile.
        with contextlib.suppress(ReactorNotRunning):
            reactor.stop()


async def drain(window: float, finish: float) -> None:
    """Close every WebSocket with 1012 over `window` seconds, then wait up to `finish` for the
    consumers (and HTTP requests) in flight to end."""
    served.drains += 1
    if served.draining_since is None:
        served.draining_since = time.monotonic()
    sockets = [key for key in served.websockets if _closable(key)]
    log.warning(
        "SIGTERM: draining %d WebSockets over %.1f s (close code %d), then stopping",
        len(sockets),
        window,
        RESTART_CLOSE_CODE,
    )
    started = time.monotonic()
    for at, batch in _batches(sockets, window):
        await asyncio.sleep(max(0.0, started + at - time.monotonic()))
        for key in batch:
            _close_for_restart(key, finish)
    # Stragglers: handshakes that were under way when the drain began are accepted later.
    deadline = time.monotonic() + finish
    while time.monotonic() < deadline:
        for key in list(served.websockets):
            _close_for_restart(key, finish)
        if not served.websockets and not served.http_requests:
            break
        await asyncio.sleep(POLL_SECONDS)
    left = len(served.websockets)
    log.warning(
        "drain done in %.1f s; %d consumers still running are stopped with the process",
        time.monotonic() - started,
        left,
    )


def _batches(sockets: list[object], window: float) -> list[tuple[float, list[object]]]:
    """The sockets shuffled into batches spread over `window`, each at a jittered moment of
    its own slot: (seconds from the start, the batch), in order."""
    if not sockets:
        return []
    shuffled = random.sample(sockets, len(sockets))
    count = max(1, min(len(shuffled), math.ceil(window / BATCH_SECONDS)))
    slot = window / count
    return [(slot * (i + random.random()), shuffled[i::count]) for i in range(count)]


def _closable(key: object) -> bool:
    return getattr(key, "state", None) == getattr(key, "STATE_OPEN", object())


def _close_for_restart(key: Any, finish: float) -> None:
    """Send the close frame 1012 on an open daphne WebSocket (others: nothing to do yet)."""
    if not _closable(key):
        return
    # autobahn drops a connection whose client has not answered the close within this long
    # (1 s by default); frames the client sent before it saw the close are read until then.
    key.closeHandshakeTimeout = finish
    key.sendCloseFrame(code=RESTART_CLOSE_CODE, reasonUtf8=b"service restart", isReply=False)
    served.closed_for_restart += 1
