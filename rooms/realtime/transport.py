"""What a connection holds below the consumer: its pub/sub channel and daphne's protocol.

Three workarounds live here, each for a gap in a library we run on:

- channels-redis's pub/sub layer forgets a channel (its asyncio.Queue and its Redis
  subscription) only when the consumer's pending `receive()` is cancelled. Channels'
  `await_many_dispatch` never cancels it when a broadcast completed that receive in the same
  turn as the client's disconnect: the finished task cannot be cancelled, the cleanup never
  runs, and one subscription plus one queue stay behind per such connection for the life of
  the process (django/channels_redis#276, open). `channel_release` finishes the job.
- daphne (twisted) buffers whatever the application sends, without limit, for a client that
  does not read. `with_send_backlog` lets the consumer see how much is waiting, so that it can
  skip to the newest state instead of piling up every one (docs/protocol.md, slow readers).
- autobahn resolves a closed connection's `is_closed` Deferred with the protocol itself, and
  the protocol keeps that Deferred: a reference cycle that holds daphne's whole connection
  (transport, buffers, queues, the scope) until a full garbage collection, which this
  process's collector settings make rare (lunchsite/collector.py). `with_send_backlog` adds a
  last callback that drops the result, so a connection is freed when it closes: about 5 KiB
  per WebSocket that came and went (issue 27's churn).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

# The scope key under which `with_send_backlog` puts the connection's backlog reader.
SEND_BACKLOG_KEY = "lunchsite.send_backlog"


def _pubsub_layer(layer):
    """The pub/sub layer's per-loop object holding channels and shards, or None for others."""
    from channels_redis.pubsub import RedisPubSubChannelLayer

    if not isinstance(layer, RedisPubSubChannelLayer):
        return None
    return layer._get_layer()


async def channel_release(layer, channel: str) -> None:
    """Forget `channel` in the pub/sub layer if it is still there: its queue and subscription."""
    inner = _pubsub_layer(layer)
    if inner is None or channel not in inner.channels:
        return
    del inner.channels[channel]
    try:
        await inner._get_shard(channel).unsubscribe(channel)
    except Exception as exc:  # Redis away: the subscription died with the connection anyway
        log.debug("unsubscribe of a finished channel failed: %r", exc)


async def channel_new(layer, prefix: str) -> str:
    """`layer.new_channel(prefix)`, without the queue the pub/sub layer leaves if Redis refuses."""
    inner = _pubsub_layer(layer)
    before = set(inner.channels) if inner is not None else set()
    try:
        return await layer.new_channel(prefix)
    except BaseException:
        if inner is not None:
            for channel in set(inner.channels) - before:
                del inner.channels[channel]
        raise


def pubsub_channel_count(layer) -> int | None:
    """How many specific channels the pub/sub layer holds in this process (None: other layer)."""
    inner = _pubsub_layer(layer)
    return None if inner is None else len(inner.channels)


# --- daphne's write buffer ----------------------------------------------------------


def _buffered_bytes(protocol) -> int:
    """Bytes accepted from the application that the client has not taken yet (twisted)."""
    transport = getattr(protocol, "transport", None)
    if transport is None:
        return 0
    # twisted.internet.abstract.FileDescriptor keeps the unsent data in dataBuffer (from
    # offset on) plus the chunks written since (_tempDataBuffer, whose size is _tempDataLen).
    data = getattr(transport, "dataBuffer", b"")
    return len(data) - getattr(transport, "offset", 0) + getattr(transport, "_tempDataLen", 0)


def with_send_backlog(application):
    """ASGI middleware: put a `() -> bytes waiting to be written` reader into the scope.

    daphne calls an application with `send=functools.partial(server.handle_reply, protocol)`;
    the protocol's transport knows what is buffered. Under another server (or in tests with
    Channels' communicator) the reader answers 0: nothing is ever skipped.
    """

    async def app(scope, receive, send):
        protocol = None
        if isinstance(send, functools.partial) and send.args:
            protocol = send.args[0]
        reader: Callable[[], int] = (
            functools.partial(_buffered_bytes, protocol) if protocol is not None else _nothing
        )
        closed = getattr(protocol, "is_closed", None)
        if closed is not None and hasattr(closed, "addCallback"):
            closed.addCallback(_result_dropped)
        # Into daphne's own scope, which is this connection's alone: a copy, kept for the
        # connection's life, cost 0.7 KiB per WebSocket (issue 27: memory per connection).
        scope[SEND_BACKLOG_KEY] = reader
        return await application(scope, receive, send)

    return app


def _nothing() -> int:
    return 0


def _result_dropped(result: object) -> None:
    """A Deferred's last callback: it keeps None instead of its result (the protocol)."""
    return None
