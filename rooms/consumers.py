"""The room's WebSocket endpoint: frames in, services called, events out."""

import asyncio
import logging
import weakref
from urllib.parse import parse_qs

from autobahn.exception import Disconnected  # what daphne raises on a closed socket
from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from lunchsite import metrics

from . import broadcast, database, liveness, protocol, security, selectors, services, transport
from .errors import CLOSE_CODES, ClientError, ErrorCode, ServerBusy
from .models import Room
from .ratelimit import participant_window

log = logging.getLogger(__name__)

# A refusal without a close code of its own (server_busy at join). daphne's autobahn lets a
# server send only 1000 or 3000-4999, so not 1011/1013: 4503 reads as "unavailable, retry".
_CLOSE_TRY_AGAIN = 4503


class RoomConsumer(AsyncWebsocketConsumer):
    """One participant's connection to one room."""

    participant_id: int | None = None
    group: str | None = None

    # --- Connection lifecycle ------------------------------------------------------

    async def connect(self) -> None:
        """Accept, then join the room or refuse with an error event and a close code."""
        self.room_id: str = self.scope["url_route"]["kwargs"]["room_id"]
        self.participant_id: int | None = None
        self.group: str | None = None
        self.version = -1  # the newest state this connection was sent
        await self.accept()
        if not selectors.ROOM_ID_SHAPE.fullmatch(self.room_id):
            await self.refuse("room_not_found")
            return
        # Join the group first: a change committed while we join is not missed (the
        # version check drops the copy we already have).
        self.group = Room.group_name_of(self.room_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        try:
            participant, state = await database.call(
                services.participant_join,
                room_id=self.room_id,
                channel_name=self.channel_name,
                session_key=self._session_key(),
                name=self._query("name"),
                token=self._query("token"),
            )
        except ClientError as error:
            await self.refuse(error.code, error.message)
            return
        except ServerBusy:
            await self.refuse("server_busy")
            return
        self.participant_id = participant.pk
        # Shared by this participant's connections here: more sockets, no more actions.
        self.limiter = participant_window(
            participant.pk, limit=settings.ROOM_ACTIONS_PER_10S, window=10
        )
        you = {"id": participant.pk, "name": participant.name, "token": participant.token}
        welcome: protocol.WelcomeEvent = {"type": "welcome", "you": you}
        await self.send(text_data=protocol.encode(welcome))
        await self.send_state(state)
        liveness.local_rooms.add(self)

    async def __call__(self, scope, receive, send) -> None:
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
                await self.disconnect(code=_CLOSE_TRY_AGAIN)
            await send({"type": "websocket.send", "text": busy})
            await send({"type": "websocket.close", "code": _CLOSE_TRY_AGAIN})
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

    async def disconnect(self, code: int) -> None:
        """Leave the group and tell the room this connection is gone."""
        liveness.local_rooms.remove(self)
        if self.group is not None:
            group, self.group = self.group, None
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except Exception as exc:  # Redis is down: its memberships die with it anyway
                log.warning("group_discard failed room=%s: %r", self.room_id, exc)
        if self.participant_id is not None:
            self.participant_id = None
            try:
                await database.call(services.participant_leave, channel_name=self.channel_name)
            except ServerBusy:
                log.warning("leave not recorded room=%s; the presence sweep will", self.room_id)

    # --- Frames from the client ----------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Parse one frame into a command and run it; a refusal goes back as an error event."""
        if self.participant_id is None:
            return
        command = None
        try:
            command = self._parse(text_data, bytes_data)
            with metrics.action_observed(command.action):
                await database.command_run(
                    room_id=self.room_id, participant_id=self.participant_id, command=command
                )
        except ClientError as error:
            # The answer names the request it answers (the parser sets it on its refusals).
            ref = command.ref if command is not None else error.ref
            if error.code in CLOSE_CODES:
                await self.refuse(error.code, error.message, ref=ref)
            else:
                await self.send_error(error.code, error.message, ref=ref)
        except ServerBusy:
            await self.send_error("server_busy", ref=command.ref if command is not None else None)

    def _parse(self, text_data: str | None, bytes_data: bytes | None) -> protocol.Command:
        # Every frame counts toward the limit, or a flood of oversized or binary frames
        # (up to daphne's 1 MiB each) would cost the server work without ever being limited.
        if not self.limiter.allow():
            raise ClientError("rate_limited")
        if text_data is None:
            raise ClientError("bad_message", "Send text frames, not binary.")
        limit = settings.ROOM_MAX_FRAME_BYTES
        # A string longer than the limit in characters is too long in bytes: skip encoding it.
        if len(text_data) > limit or len(text_data.encode("utf-8", "surrogatepass")) > limit:
            raise ClientError("message_too_large")
        return protocol.parse_frame(text_data)

    # --- Events from the room's group ----------------------------------------------

    async def dispatch(self, message: dict) -> None:
        """Hand each message to its handler, as Channels does, minus the database hop."""
        # Channels' dispatch first hops to the database thread to close old connections,
        # for every message. Relays and parsing touch no database, and the services' own
        # hop (database.call) closes old connections on the thread that uses them; at
        # 1,000 deliveries a second the extra hops queued every broadcast behind queries.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def room_event(self, message: broadcast.RoomEvent) -> None:
        """Relay a room event unless this connection already has a newer state."""
        if message["version"] <= self.version:
            return
        if message["is_state"]:
            self.version = message["version"]
        await self.send(text_data=message["text"])

    async def room_closed(self, message: broadcast.RoomClosed) -> None:
        """Staff or the host closed the room: say so and hang up."""
        await self.refuse("room_expired")

    async def room_kicked(self, message: broadcast.RoomKicked) -> None:
        """The host removed a participant: if it is this one, say so and hang up."""
        if message["participant"] == self.participant_id:
            await self.refuse("kicked")

    # --- Helpers -------------------------------------------------------------------

    async def send_state(self, state: dict) -> None:
        """Send a state unless this connection already has a newer one."""
        if state["version"] > self.version:
            self.version = state["version"]
            await self.send(text_data=protocol.encode(state))

    async def send_error(
        self, code: ErrorCode, message: str | None = None, *, ref: protocol.Ref | None = None
    ) -> None:
        """Send an error event; the connection stays open."""
        metrics.error_sent(code)
        await self.send(text_data=protocol.encode(protocol.error_event(code, message, ref)))

    async def refuse(
        self, code: ErrorCode, message: str | None = None, *, ref: protocol.Ref | None = None
    ) -> None:
        """Send the error, then close with its code (4503 when it has none of its own)."""
        await self.send_error(code, message, ref=ref)
        await self.close(code=CLOSE_CODES.get(code, _CLOSE_TRY_AGAIN))

    def backlogged(self) -> bool:
        """True while the client has more unread than ROOM_SEND_BACKLOG_BYTES waiting at daphne."""
        return self._backlog() > settings.ROOM_SEND_BACKLOG_BYTES

    def _sender(self, send):
        """`send` for this connection: bounded for slow readers, quiet for clients already gone.

        A client that does not read (a stalled phone, or on purpose) would make daphne buffer
        every state for it. Past the limit frames are skipped and the connection marked as
        behind; once it drains, the per-process resync sends it the newest state only. A
        room event can also reach the consumer after its client hung up but before daphne's
        disconnect does; daphne then raises autobahn's Disconnected, and the message is
        simply not needed any more.
        """

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

    def _session_key(self) -> str:
        return self.scope.get(security.SESSION_KEY, "")

    def _query(self, key: str) -> str:
        """One parameter of the handshake's query string (`name`, `token`), or ""."""
        query = parse_qs(self.scope.get("query_string", b"").decode("utf-8", "replace"))
        return query.get(key, [""])[0]


# The code a killed connection leaves with (nobody receives it: its client is gone).
_CLOSE_GONE = 1006

_detached: set[asyncio.Task] = set()


def _run_detached(coroutine) -> None:
    """Run a cleanup in a task of its own, kept alive until it finishes."""
    task = asyncio.get_running_loop().create_task(coroutine)
    _detached.add(task)
    task.add_done_callback(_detached.discard)


def _no_backlog() -> int:
    return 0


def _is_layer_outage(exc: BaseException) -> bool:
    """A lost connection to the channel layer's Redis (as opposed to a bug of ours)."""
    return isinstance(exc, OSError | TimeoutError) or type(exc).__module__.startswith("redis.")
