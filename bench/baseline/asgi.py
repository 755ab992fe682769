"""The baseline server: the room protocol's shape and fan-out, with state in process memory.

It does what the product's consumer does on the wire (welcome, a full `state` to the whole
group on every join, leave and change, one group per room, the same JSON encoding) but keeps
each room in a dict instead of the database. Two processes keep two dicts, so their states
differ; the load generator only checks that each change shows up, not that rooms agree.
"""

import json
import os
import secrets
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.baseline.settings")
import django

django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from rooms.errors import ClientError  # noqa: E402
from rooms.protocol import encode, error_event, parse_frame  # noqa: E402


class _Room:
    """One room's state as the protocol shows it."""

    def __init__(self, room_id: str) -> None:
        self.id = room_id
        self.version = 0
        self.items: dict[str, dict] = {}
        self.participants: dict[int, str] = {}
        self.next_guest = 1

    def bump(self) -> None:
        # Microseconds, not a counter: two processes keep two dicts, and a client drops any
        # state older than the newest it has, so versions must grow across both.
        self.version = max(self.version + 1, time.time_ns() // 1000)

    def state(self) -> dict:
        expires = datetime.now(UTC) + timedelta(seconds=600)
        return {
            "type": "state",
            "version": self.version,
            "room": {"id": self.id, "expires_at": expires.isoformat(), "decision": None},
            "items": list(self.items.values()),
            "participants": [{"id": pk, "name": name} for pk, name in self.participants.items()],
        }

    def apply(self, action: str, text: str, who: str) -> None:
        name = " ".join(text.split())
        if not name:
            raise ClientError("empty_item")
        key = name.casefold()
        if action == "add":
            if key in self.items:
                raise ClientError("duplicate_item")
            self.items[key] = {
                "name": name,
                "added_by": who,
                "votes": 0,
                "voters": [],
                "vetoed_by": [],
            }
        elif action == "remove":
            # Lenient: with two processes the item may live in the other one's dict.
            self.items.pop(key, None)
        else:
            # Lenient: another process may hold the item, so a vote creates it here.
            item = self.items.setdefault(
                key, {"name": name, "added_by": who, "votes": 0, "voters": [], "vetoed_by": []}
            )
            marks = item["voters"] if action == "vote" else item["vetoed_by"]
            if who in marks:
                marks.remove(who)
            else:
                marks.append(who)
            item["votes"] = len(item["voters"])
        self.bump()


_rooms: dict[str, _Room] = {}
_participant_ids = iter(range(1, 10**9))


def _room(room_id: str) -> _Room:
    room = _rooms.get(room_id)
    if room is None:
        room = _rooms[room_id] = _Room(room_id)
    return room


class BaselineConsumer(AsyncWebsocketConsumer):
    """The product consumer's fan-out path without the database."""

    async def connect(self) -> None:
        """Accept, join the room's group, greet, and send the new state to everyone."""
        self.room = _room(self.scope["url_route"]["kwargs"]["room_id"])
        self.group = f"room.{self.room.id}"
        self.version = -1
        await self.accept()
        await self.channel_layer.group_add(self.group, self.channel_name)
        self.pk = next(_participant_ids)
        query = parse_qs(self.scope.get("query_string", b"").decode())
        self.name = query.get("name", [""])[0][:24] or f"guest-{self.room.next_guest}"
        self.room.next_guest += 1
        self.room.participants[self.pk] = self.name
        self.room.bump()
        welcome = {"type": "welcome", "you": {"id": self.pk, "name": self.name}}
        await self.send(text_data=encode(welcome))
        await self._broadcast()

    async def disconnect(self, code: int) -> None:
        """Leave the group and tell the others."""
        await self.channel_layer.group_discard(self.group, self.channel_name)
        if self.room.participants.pop(getattr(self, "pk", None), None) is not None:
            self.room.bump()
            await self._broadcast()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Apply one command to the in-memory room and broadcast the full state."""
        try:
            command = parse_frame(text_data or "")
            if command.action not in ("add", "remove", "vote", "veto"):
                raise ClientError("bad_message")
            self.room.apply(command.action, command.arguments["name"], self.name)
        except ClientError as error:
            await self.send(text_data=encode(error_event(error.code, error.message)))
            return
        await self._broadcast()

    async def room_event(self, message: dict) -> None:
        """Relay a state unless this connection already has a newer one (as the product does)."""
        if message["version"] <= self.version:
            return
        self.version = message["version"]
        await self.send(text_data=message["text"])

    async def _broadcast(self) -> None:
        state = self.room.state()
        message = {"type": "room.event", "text": encode(state), "version": state["version"]}
        await self.channel_layer.group_send(self.group, message)


async def http_app(scope: dict, receive, send) -> None:
    """POST /api/rooms/ hands out a room id like the product's API; anything else is 200 ok."""
    if scope["type"] == "lifespan":
        return
    while (await receive()).get("more_body"):
        pass
    status, body = 200, {"ok": True}
    if scope["method"] == "POST" and scope["path"] == "/api/rooms/":
        host = dict(scope["headers"]).get(b"host", b"127.0.0.1").decode()
        room_id = secrets.token_urlsafe(12)
        status = 201
        body = {
            "id": room_id,
            "url": f"http://{host}/rooms/{room_id}/",
            "ws_url": f"ws://{host}/ws/rooms/{room_id}/",
        }
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": payload})


application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": URLRouter(
            [re_path(r"^ws/rooms/(?P<room_id>[^/]{1,64})/$", BaselineConsumer.as_asgi())]
        ),
    }
)
