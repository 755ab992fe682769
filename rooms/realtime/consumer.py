"""The machinery under every room connection, apart from what the connection means.

rooms/consumers.py's RoomConsumer is the translator (connect, receive, disconnect, one handler
per group event); `LiveConsumer` holds the few places where Channels' own machinery had to be
wrapped, each said once in its docstring below.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from autobahn.exception import Disconnected  # what daphne raises on a closed socket
from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from lunchsite import metrics

from .. import protocol
from . import liveness, transport

log = logging.getLogger(__name__)

# A refusal without a close code of its own (server_busy at join, a channel-layer outage).
# daphne's autobahn lets a server send only 1000 or 3000-4999, so not 1011/1013: 4503 reads
# as "unavailable, retry".
CLOSE_TRY_AGAIN = 4503
# The code a killed connection leaves with (nobody receives it: its client is gone).
_CLOSE_GONE = 1006

Send = Callable[[dict], Awaitable[None]]


class LiveConsumer(AsyncWebsocketConsumer):
    """A room connection that survives its infrastructure: outages, dead sockets, slow readers.

    Why each override of Channels' machinery exists:

    - `__call__`: Channels lets an exception of the channel layer (Redis gone: at the
      handshake, or under the receive loop) escape as an HTTP 500 or leave a connection
      whose keep-alive heartbeats for ever. Here it becomes a `server_busy` error and close
      4503, which the client retries. And whatever ended the connection, including daphne
      cancelling a consumer that "took too long to shut down" (its `disconnect` never runs),
      `_cleanup_after_serving` leaves nothing behind: no ghost participant, no pub/sub
      channel (django/channels_redis#276, rooms/realtime/transport.py).
    - `dispatch`: Channels hops to the database thread for every message, to close old
      connections. Relays and parsing touch no database, and the services' own hop
      (rooms/database.py) closes old connections on the thread that uses them; at 1,000
      deliveries a second the extra hops queued every broadcast behind queries.
    - `send`, bounded (`_sender`): daphne buffers without limit for a client that does not
      read. Past ROOM_SEND_BACKLOG_BYTES frames are skipped and the connection marked as
      behind (`version = -1`); once it drains the per-process resync (liveness.py) sends it
      the newest state only. A frame for a client that already hung up is dropped quietly.

    A subclass sets `room_id`, `participant_id`, `group` (the channel-layer group it joined)
    and `version` (the newest state it was sent), and implements `disconnect`.
    """

    participant_id: int | None = None
    group: str | None = None
    version = -1

    async def __call__(self, scope: dict, receive: Callable, send: Send) -> None:
        """Serve the connection; if the channel layer fails under it, leave and close 4503."""
        self._backlog = scope.get(transport.SEND_BACKLOG_KEY, _no_backlog)
        try:
            await super().__call__(scope, receive, self._sender(send))
        except Exception as exc:
            if not _is_layer_outage(exc):
                raise
            busy = protocol.encode(protocol.error_event("server_busy"))
            if getattr(self, "room_id", None) is None:
                # Redis is down as the handshake comes in (Channels asks the layer for a
                # channel first): answer it with server_busy rather than an HTTP 500.
                log.warning("channel layer unavailable at connect: %r", exc)
                await send({"type": "websocket.accept"})
            else:
                # The core Redis layer's receive loop raises when Redis goes away. Without
                # this the keep-alive task would heartbeat a dead connection for ever.
                log.warning("channel layer failed room=%s: %r; closing", self.room_id, exc)
                await self.disconnect(code=CLOSE_TRY_AGAIN)
            await send({"type": "websocket.send", "text": busy})
            metrics.error_sent("server_busy")
            await send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN})
        finally:
            await self._cleanup_after_serving()

    async def _cleanup_after_serving(self) -> None:
        """Whatever ended this connection, leave nothing behind: no ghost, no subscription."""
        if self.participant_id is not None or self.group is not None:
            # disconnect never ran: daphne cancelled us ("took too long to shut down and was
            # killed"). Stop the heartbeat now and leave in a task of its own, which
            # daphne's repeated cancels of this one cannot cut short.
            log.warning("connection ended without disconnect room=%s; leaving", self.room_id)
            liveness.local_rooms.remove(self)
            _run_detached(self.disconnect(code=_CLOSE_GONE))
        channel = getattr(self, "channel_name", None)
        if channel is not None:
            await transport.channel_release(self.channel_layer, channel)

    async def dispatch(self, message: dict) -> None:
        """Hand each message to its handler, as Channels does, minus the database hop."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    def backlogged(self) -> bool:
        """True while the client has more unread than ROOM_SEND_BACKLOG_BYTES waiting at daphne."""
        return self._backlog() > settings.ROOM_SEND_BACKLOG_BYTES

    def _sender(self, send: Send) -> Send:
        """`send` for this connection: bounded for slow readers, quiet for clients already gone."""

        # The consumer keeps this function (as `base_send`): a weak reference back, so that
        # the two are no reference cycle, and a consumer that ends is freed at once rather
        # than by a full collection, with its scope and daphne's protocol (issue 27's churn).
        consumer = weakref.ref(self)

        async def send_bounded(message: dict) -> None:
            me = consumer()
            if me is not None and message["type"] == "websocket.send" and me.backlogged():
                if me.version >= 0:
                    log.info("slow reader room=%s: skipping to the newest state", me.room_id)
                me.version = -1  # behind every room: the resync sends the newest state
                return
            try:
                await send(message)
            except Disconnected:
                log.debug("dropped %s for a client that already left", message.get("type"))

        return send_bounded


_detached: set[asyncio.Task] = set()


def _run_detached(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run a cleanup in a task of its own, kept alive until it finishes."""
    task = asyncio.get_running_loop().create_task(coroutine)
    _detached.add(task)
    task.add_done_callback(_detached.discard)


def _no_backlog() -> int:
    return 0


def _is_layer_outage(exc: BaseException) -> bool:
    """A lost connection to the channel layer's Redis (as opposed to a bug of ours)."""
    return isinstance(exc, OSError | TimeoutError) or type(exc).__module__.startswith("redis.")
