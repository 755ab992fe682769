"""Per-process upkeep of the connections this process serves, by room.

One task per process, not one per connection: every ROOM_RESYNC_SECONDS it reads the
versions of its rooms in one query, hangs up the connections of rooms that expired or
were closed, and sends the current state to connections a lost broadcast left behind
(Redis pub/sub delivers at most once: a publish during a Redis restart is gone). Every
ROOM_HEARTBEAT_SECONDS it refreshes the presence of all its connections in one UPDATE,
so a worker that dies stops counting toward its rooms' caps once its rows go stale. A few
times per host grace it asks which of its rooms' hosts have been gone past the grace, and
passes their role on (the condition is in the database, so any process may do it).

Only connections that are still served are refreshed: each is remembered with the task that
serves it, and one whose task has ended (daphne cancels a consumer that takes too long to
shut down, and its `disconnect` never runs) is dropped, so its row goes stale like a dead
worker's. A connection that is not reading (`backlogged`) is not resent states it would not
take; it gets the newest once it drains.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Protocol

from django.conf import settings

from .. import database, selectors, services
from ..errors import ClientError, ErrorCode, ServerBusy
from ..protocol import StateEvent

log = logging.getLogger(__name__)

# A connection that is behind waits this long for its broadcast to arrive on its own before
# the state is read for it: on a busy server the broadcast is usually on its way.
GRACE_SECONDS = 1.0


class LiveConnection(Protocol):
    room_id: str
    channel_name: str
    participant_id: int | None
    version: int

    async def send_state(self, state: dict) -> None: ...

    async def refuse(self, code: ErrorCode, message: str | None = None) -> None: ...

    def backlogged(self) -> bool: ...


class LocalRooms:
    """The live connections of this process, and the task that looks after them."""

    def __init__(self) -> None:
        self.rooms: dict[str, set[LiveConnection]] = defaultdict(set)
        self._served_by: dict[LiveConnection, asyncio.Task | None] = {}
        # Per room: since when some connection has been behind, and the version it lacked.
        self._behind_since: dict[str, tuple[float, int]] = {}
        self._task: asyncio.Task | None = None
        self._next_beat = 0.0
        self._next_host_check = 0.0

    def add(self, connection: LiveConnection) -> None:
        """Look after a connection; called from the task that serves it."""
        self.rooms[connection.room_id].add(connection)
        self._served_by[connection] = asyncio.current_task()
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._next_beat = time.monotonic() + settings.ROOM_HEARTBEAT_SECONDS
            self._task = loop.create_task(self._run(), name="lunchsite-liveness")

    def remove(self, connection: LiveConnection) -> None:
        self._served_by.pop(connection, None)
        members = self.rooms.get(connection.room_id)
        if members is None:
            return
        members.discard(connection)
        if not members:
            del self.rooms[connection.room_id]
            self._behind_since.pop(connection.room_id, None)

    async def _run(self) -> None:
        while self.rooms:
            await asyncio.sleep(settings.ROOM_RESYNC_SECONDS)
            try:
                await self.tick()
            except ServerBusy:
                continue  # the next tick tries again
            except Exception:  # the loop must outlive any one bad tick
                log.exception("liveness tick failed")

    async def tick(self) -> None:
        """One round: heartbeat when due, then expiry and lost broadcasts."""
        if time.monotonic() >= self._next_beat:
            self._next_beat = time.monotonic() + settings.ROOM_HEARTBEAT_SECONDS
            self.drop_unserved()
            connections = [
                (c.room_id, c.channel_name, c.participant_id)
                for members in self.rooms.values()
                for c in members
                if c.participant_id is not None
            ]
            await database.call(services.presence_refresh, connections=connections)
        # Only the rooms asked about: connections that join during the read are in rooms
        # the answer knows nothing of, which is not the same as rooms that are gone.
        room_ids = list(self.rooms)
        versions = await database.call(selectors.rooms_open_versions, room_ids=room_ids)
        await self._pass_on_absent_hosts(room_ids)
        now = time.monotonic()
        for room_id in room_ids:
            members = self.rooms.get(room_id)
            if not members:
                continue
            if room_id not in versions:
                for connection in list(members):
                    self.remove(connection)
                    await _quietly(connection.refuse("room_expired"))
                continue
            lagging = [c for c in members if c.version < versions[room_id] and not c.backlogged()]
            if not lagging:
                self._behind_since.pop(room_id, None)
                continue
            since, wanted = self._behind_since.setdefault(room_id, (now, versions[room_id]))
            if now - since < GRACE_SECONDS:
                continue
            # Only a connection still without the version it lacked a grace ago is behind;
            # in a busy room some newer change is always on its way to everyone.
            lagging = [c for c in lagging if c.version < wanted]
            if not lagging:
                self._behind_since[room_id] = (now, versions[room_id])
                continue
            del self._behind_since[room_id]
            state = await database.call(_state, room_id=room_id)
            if state is None:
                continue
            log.info(
                "resync room=%s version=%s connections=%s", room_id, state["version"], len(lagging)
            )
            for connection in lagging:
                if not await _quietly(connection.send_state(state)):
                    self.remove(connection)

    def drop_unserved(self) -> None:
        """Forget connections whose serving task has ended: they must not be heartbeated."""
        for connection, task in list(self._served_by.items()):
            if task is not None and task.done():
                log.warning(
                    "connection no longer served room=%s; its presence lapses", connection.room_id
                )
                self.remove(connection)

    async def _pass_on_absent_hosts(self, room_ids: list[str]) -> None:
        """Pass on the role of hosts gone past ROOM_HOST_GRACE_SECONDS (~12 checks a grace)."""
        if time.monotonic() < self._next_host_check:
            return
        interval = max(settings.ROOM_RESYNC_SECONDS, settings.ROOM_HOST_GRACE_SECONDS / 12)
        self._next_host_check = time.monotonic() + interval
        for room_id in await database.call(selectors.rooms_host_overdue, room_ids=room_ids):
            try:
                await database.call(services.host_pass_on, room_id=room_id)
            except (ClientError, ServerBusy):
                continue  # expired meanwhile, or the database is busy: next time


async def _quietly(action) -> bool:
    """Run one connection's send; a connection that cannot be sent to is not our loop's end."""
    try:
        await action
    except Exception as exc:
        log.warning("liveness could not reach a connection: %r", exc)
        return False
    return True


def _state(*, room_id: str) -> StateEvent | None:
    try:
        return selectors.room_state(room=selectors.room_get(room_id=room_id))
    except ClientError:
        return None  # deleted meanwhile (purged)


local_rooms = LocalRooms()
