"""Sending a room's changes to everyone in it, once the change has committed.

Services say what changed (`state_on_commit`, `closed_on_commit`); this module owns the
`room.event` message the consumer reads and how it reaches the room's channel-layer group.

The version rule, stated once:
- every accepted change bumps the room's `version` by exactly one, in the same transaction
  that makes the change (the statement that locks the room), and the state read in that
  transaction carries that version;
- the state is published only after the transaction commits, so nobody sees a change that
  was rolled back;
- a consumer relays a `room.event` only if its version is above the newest state that
  connection was sent (rooms/consumers.py), so copies that arrive late, twice, or after the
  joiner's own state are dropped and nobody ever sees the version go backwards;
- a publish that never arrives (Redis restarted, a worker died before flushing) is repaired
  by rooms/realtime/liveness.py, which compares each connection's version with the room's and
  resends the state; the page (static/rooms/room.js) ignores any state not newer than its own.

Where a message goes depends on who called the service. Under `database.call` (the
consumer) the messages are collected on the database thread and published from the event
loop once the call returns, so a database thread never waits on Redis while it holds a
pool connection. Anywhere else (the admin, management commands, tests) they are sent at
once from the calling thread.

Presence changes (joins, leaves) are coalesced per room and process: their state is held
for ROOM_PRESENCE_COALESCE_SECONDS, a newer one replaces it, and a newer state of any
change makes it unnecessary. Ten people arriving together cost the room one or two states
instead of ten; each joiner's own first state comes straight from its join, so it always
lists itself, and the version rule drops whatever arrives out of order.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Literal, TypedDict
from weakref import WeakKeyDictionary

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from lunchsite import metrics

from .protocol import BeforeEvent, StateEvent, encode

log = logging.getLogger(__name__)

# After a Redis restart the first publish meets a dead pooled connection; the retry gets a
# fresh one. Clients that still miss it catch up through rooms/realtime/liveness.py.
PUBLISH_ATTEMPTS = 2


class RoomEvent(TypedDict):
    """What a room's group receives for each change; the consumer relays `text` as is."""

    type: Literal["room.event"]
    text: str  # the event, encoded once for every connection
    version: int  # the room's version the event belongs to
    is_state: bool  # a full state (the connection's version moves) or an event before one
    # A presence change (join, leave): its state may be merged with the room's next ones.
    presence: bool
    # A blind room's state: each participant's own votes, by its id as text (the consumer
    # tells each connection its own with `mine`, rooms/consumers.py); never sent as is.
    mine: dict[str, list[str]] | None


class RoomClosed(TypedDict):
    """Staff or the host closed the room: every connection says so and hangs up."""

    type: Literal["room.closed"]


class RoomKicked(TypedDict):
    """The host removed a participant: its connections say so and hang up."""

    type: Literal["room.kicked"]
    participant: int


Message = RoomEvent | RoomClosed | RoomKicked
Outbox = list[tuple[str, Message]]


# --- What services call ----------------------------------------------------------------


def state_on_commit(
    *,
    group: str,
    state: StateEvent,
    mine: dict[str, list[str]] | None = None,
    before: tuple[BeforeEvent, ...] = (),
    presence: bool = False,
) -> None:
    """Send `before` events, then `state` (with `mine`, a blind room's own votes by
    participant), to the room's group once the transaction commits."""
    version = state["version"]
    for event in before:
        _on_commit(group, _room_event(event, version, is_state=False, presence=False))
    _on_commit(group, _room_event(state, version, is_state=True, presence=presence, mine=mine))


def closed_on_commit(*, group: str) -> None:
    """Tell the room's connections, once the transaction commits, that the room is closed."""
    _on_commit(group, {"type": "room.closed"})


def kicked_on_commit(*, group: str, participant_id: int) -> None:
    """Tell the room's connections, once the transaction commits, whom the host removed."""
    _on_commit(group, {"type": "room.kicked", "participant": participant_id})


def _room_event(
    event: StateEvent | BeforeEvent,
    version: int,
    *,
    is_state: bool,
    presence: bool,
    mine: dict[str, list[str]] | None = None,
) -> RoomEvent:
    return {
        "type": "room.event",
        "text": encode(event),
        "version": version,
        "is_state": is_state,
        "presence": presence,
        "mine": mine,
    }


# --- Collecting on the database thread ---------------------------------------------------

_local = threading.local()


@contextmanager
def collecting(*, committed: bool = False) -> Iterator[Outbox]:
    """Collect the messages committed in this block instead of sending them.

    `committed`: the block's change has committed already (an everyday change sent from the
    event loop, rooms/everyday.py), so its messages are collected at once, without asking
    Django's connection (which the loop must not touch) about a transaction."""
    outer = getattr(_local, "outbox", None), getattr(_local, "committed", False)
    outbox: Outbox = []
    _local.outbox, _local.committed = outbox, committed
    try:
        yield outbox
    finally:
        _local.outbox, _local.committed = outer


def _on_commit(group: str, message: Message) -> None:
    if getattr(_local, "committed", False):
        _committed(group, message)
    else:
        transaction.on_commit(partial(_committed, group, message))


def _committed(group: str, message: Message) -> None:
    outbox = getattr(_local, "outbox", None)
    if outbox is not None:
        outbox.append((group, message))
    else:
        _send_now(group, message)


def _send_now(group: str, message: Message) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for attempt in range(1, PUBLISH_ATTEMPTS + 1):
        try:
            async_to_sync(layer.group_send)(group, message)
            return
        except Exception as exc:  # the change is committed; an outage must not undo it
            _log_failure(group, message, attempt, exc)


# --- Publishing from the event loop ------------------------------------------------------


async def publish(outbox: Outbox) -> None:
    """Send collected messages to their groups, in order; an outage is logged, not raised."""
    layer = get_channel_layer()
    if layer is None:
        return
    held = _held_presence()
    for group, message in outbox:
        if message["type"] == "room.event":
            if message["presence"] and settings.ROOM_PRESENCE_COALESCE_SECONDS > 0:
                held.hold(layer, group, message)
                continue
            if message["is_state"]:
                held.superseded(group, message["version"])
        await _publish_one(layer, group, message)


class _HeldPresence:
    """The presence states of one event loop's rooms that wait to be sent, newest per room."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.held: dict[str, RoomEvent] = {}
        self.sending: set[asyncio.Task] = set()

    def hold(self, layer, group: str, message: RoomEvent) -> None:
        current = self.held.get(group)
        if current is None:
            self.held[group] = message
            self.loop.call_later(settings.ROOM_PRESENCE_COALESCE_SECONDS, self._send, layer, group)
        elif message["version"] > current["version"]:
            self.held[group] = message

    def superseded(self, group: str, version: int) -> None:
        """A state of `version` is going out: a held state no newer is not needed."""
        current = self.held.get(group)
        if current is not None and current["version"] <= version:
            del self.held[group]

    def _send(self, layer, group: str) -> None:
        message = self.held.pop(group, None)
        if message is None:
            return
        task = self.loop.create_task(_publish_one(layer, group, message))
        self.sending.add(task)  # a reference until done, so the task is not collected
        task.add_done_callback(self.sending.discard)


_held_by_loop: WeakKeyDictionary[asyncio.AbstractEventLoop, _HeldPresence] = WeakKeyDictionary()


def _held_presence() -> _HeldPresence:
    loop = asyncio.get_running_loop()
    held = _held_by_loop.get(loop)
    if held is None:
        held = _held_by_loop[loop] = _HeldPresence(loop)
    return held


async def _publish_one(layer, group: str, message: Message) -> None:
    for attempt in range(1, PUBLISH_ATTEMPTS + 1):
        try:
            await layer.group_send(group, message)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the change is committed; the resync repairs a lost one
            _log_failure(group, message, attempt, exc)


def _log_failure(group: str, message: Message, attempt: int, exc: Exception) -> None:
    metrics.layer_send_failed()
    log.warning(
        "room broadcast failed group=%s type=%s attempt=%s: %r",
        group,
        message["type"],
        attempt,
        exc,
    )
