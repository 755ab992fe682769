"""The room's WebSocket endpoint: frames in, services called, events out."""

import logging
from urllib.parse import parse_qs

from django.conf import settings

from lunchsite import metrics, security

from . import broadcast, commands, database, protocol, selectors, services
from .errors import CLOSE_CODES, ClientError, ErrorCode, ServerBusy
from .models import Room
from .realtime import liveness
from .realtime.consumer import CLOSE_TRY_AGAIN, LiveConsumer
from .realtime.ratelimit import participant_window

log = logging.getLogger(__name__)


class RoomConsumer(LiveConsumer):
    """One participant's connection to one room (the machinery under it: LiveConsumer)."""

    # --- Connection lifecycle ------------------------------------------------------

    async def connect(self) -> None:
        """Accept, then join the room or refuse with an error event and a close code."""
        self.room_id: str = self.scope["url_route"]["kwargs"]["room_id"]
        self.participant_id: int | None = None
        self.group: str | None = None
        self.version = -1  # the newest state this connection was sent
        # A blind room: the votes this connection was last told are its participant's own
        # (welcome, `mine`); None while the states show them.
        self.mine: list[str] | None = None
        await self.accept()
        if not selectors.ROOM_ID_SHAPE.fullmatch(self.room_id):
            await self.refuse("room_not_found")
            return
        # Join the group first: a change committed while we join is not missed (the
        # version check drops the copy we already have).
        self.group = Room.channel_group_of(self.room_id)
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
        you: protocol.You = {
            "id": participant.pk,
            "name": participant.name,
            "token": participant.token,
            "votes": selectors.votes_of(state, participant.pk),
        }
        self.mine = you["votes"]
        welcome: protocol.WelcomeEvent = {"type": "welcome", "you": you}
        await self.send(text_data=protocol.encode(welcome))
        await self.send_state(state)
        liveness.local_rooms.add(self)

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
                answer = await commands.command_dispatch(
                    room_id=self.room_id, participant_id=self.participant_id, command=command
                )
        except ClientError as error:
            # The answer names the request it answers (the parser sets it on its refusals).
            ref = command.ref if command is not None else error.ref
            command_id = command.id if command is not None else error.command_id
            if error.code in CLOSE_CODES:
                await self.refuse(error.code, error.message, ref=ref, command_id=command_id)
            else:
                await self.send_error(error.code, error.message, ref=ref, command_id=command_id)
            return
        except ServerBusy:
            # No answer kept: the same id may be sent again (applied then, or answered by
            # its receipt if a try committed before the database failed).
            await self.send_error(
                "server_busy",
                ref=command.ref if command is not None else None,
                command_id=command.id if command is not None else None,
            )
            return
        if answer.replayed:
            metrics.action_replayed(command.action)
            log.info(
                "command seen before, answered again room=%s action=%s",
                self.room_id,
                command.action,
            )
        if command.id is not None:
            # Applied (now, or when first seen): the state it made goes to everyone through
            # the room's group as always (or came before, at the join); the ack names it.
            await self.send(text_data=protocol.encode(protocol.ack_event(command, answer.version)))

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

    async def room_event(self, message: broadcast.RoomEvent) -> None:
        """Relay a room event unless this connection already has a newer state."""
        if message["version"] <= self.version:
            return
        if message["is_state"]:
            self.version = message["version"]
        await self.send(text_data=message["text"])
        if message["is_state"]:
            await self.send_mine(message.get("mine"))

    async def room_closed(self, message: broadcast.RoomClosed) -> None:
        """Staff or the host closed the room: say so and hang up."""
        await self.refuse("room_expired")

    async def room_kicked(self, message: broadcast.RoomKicked) -> None:
        """The host removed a participant: if it is this one, say so and hang up."""
        if message["participant"] == self.participant_id:
            await self.refuse("kicked")

    # --- Helpers -------------------------------------------------------------------

    async def send_state(self, state: protocol.StateEvent) -> None:
        """Send a (full) state, as it may be shown, unless this connection already has a
        newer one (its join's, the resync's)."""
        if state["version"] > self.version:
            self.version = state["version"]
            shown = selectors.state_shown(state)
            await self.send(text_data=protocol.encode(shown.state))
            await self.send_mine(shown.mine)

    async def send_mine(self, mine: dict[str, list[str]] | None) -> None:
        """A blind room's state went out: tell this connection its participant's own votes,
        if they are not what it was last told (`mine`: everyone's, by id)."""
        if mine is None:
            self.mine = None  # the states show them
            return
        votes = mine.get(str(self.participant_id), [])
        if votes != self.mine:
            self.mine = votes
            event: protocol.MineEvent = {"type": "mine", "votes": votes}
            await self.send(text_data=protocol.encode(event))

    async def send_error(
        self,
        code: ErrorCode,
        message: str | None = None,
        *,
        ref: protocol.Ref | None = None,
        command_id: str | None = None,
    ) -> None:
        """Send an error event; the connection stays open."""
        metrics.error_sent(code)
        event = protocol.error_event(code, message, ref, command_id)
        await self.send(text_data=protocol.encode(event))

    async def refuse(
        self,
        code: ErrorCode,
        message: str | None = None,
        *,
        ref: protocol.Ref | None = None,
        command_id: str | None = None,
    ) -> None:
        """Send the error, then close with its code (4503 when it has none of its own)."""
        await self.send_error(code, message, ref=ref, command_id=command_id)
        await self.close(code=CLOSE_CODES.get(code, CLOSE_TRY_AGAIN))

    def _session_key(self) -> str:
        return self.scope.get(security.SESSION_KEY, "")

    def _query(self, key: str) -> str:
        """One parameter of the handshake's query string (`name`, `token`), or ""."""
        query = parse_qs(self.scope.get("query_string", b"").decode("utf-8", "replace"))
        return query.get(key, [""])[0]
