"""The host's actions and the headcount over the WebSocket: codes, close codes, who sees what."""

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client

from lunchsite.asgi import application
from rooms import services
from rooms.models import Room

pytestmark = pytest.mark.django_db(transaction=True)


async def connect(room_id: str, query: str = "", cookie: str = "") -> WebsocketCommunicator:
    headers = [(b"cookie", f"sessionid={cookie}".encode())] if cookie else []
    communicator = WebsocketCommunicator(
        application, f"/ws/rooms/{room_id}/?{query}", headers=headers
    )
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def receive(communicator: WebsocketCommunicator, timeout: float = 3) -> dict:
    return json.loads(await communicator.receive_from(timeout))


async def joined(room_id: str, query: str, cookie: str = "") -> tuple[WebsocketCommunicator, dict]:
    communicator = await connect(room_id, query, cookie)
    welcome = await receive(communicator)
    assert welcome["type"] == "welcome", welcome
    assert (await receive(communicator))["type"] == "state"
    return communicator, welcome["you"]


async def until_state(communicator: WebsocketCommunicator, predicate, timeout: float = 3) -> dict:
    while True:
        event = await receive(communicator, timeout)
        if event["type"] == "state" and predicate(event):
            return event


async def error_of(communicator: WebsocketCommunicator) -> dict:
    while (event := await receive(communicator))["type"] != "error":
        pass
    return event


async def refused_with(communicator: WebsocketCommunicator, code: str, close: int) -> None:
    """Refused and closed; then the client's side of the close, as daphne would send it, so
    the consumer's leave runs inside the test and not during the database's teardown."""
    assert (await error_of(communicator))["code"] == code
    assert await communicator.receive_output(3) == {"type": "websocket.close", "code": close}
    await communicator.disconnect(code=close, timeout=3)


async def new_room() -> Room:
    return await sync_to_async(services.room_create)()


@sync_to_async
def new_session() -> str:
    session = SessionStore()
    session.create()
    return session.session_key


async def host_and_guest(cookie: str = "") -> tuple[Room, tuple, tuple]:
    room = await new_room()
    host = await joined(room.pk, f"name=host&token={room.host_token}")
    guest = await joined(room.pk, "name=guest", cookie)
    await until_state(host[0], lambda s: len(s["participants"]) == 2)
    return room, host, guest


async def test_host_flags_lock_and_refusals_with_refs(layer: str) -> None:
    """Others get not_host; while locked an add is room_locked; refs name the request."""
    _, (host, _), (guest, _) = await host_and_guest()
    await guest.send_to(text_data=json.dumps({"action": "lock", "ref": 1}))
    assert await error_of(guest) == {
        "type": "error",
        "code": "not_host",
        "message": "Only the host can do that.",
        "ref": 1,
    }
    await host.send_to(text_data="lock")
    for communicator in (host, guest):
        state = await until_state(communicator, lambda s: s["room"]["locked"])
        assert [(p["name"], p["host"]) for p in state["participants"]] == [
            ("host", True),
            ("guest", False),
        ]
    await guest.send_to(text_data=json.dumps({"action": "add", "item": "pho", "ref": "add-1"}))
    error = await error_of(guest)
    assert (error["code"], error["ref"]) == ("room_locked", "add-1")
    await host.send_to(text_data="unlock")
    await until_state(guest, lambda s: not s["room"]["locked"])
    await guest.send_to(text_data="add:pho")
    await until_state(host, lambda s: [i["name"] for i in s["items"]] == ["pho"])
    await host.disconnect()
    await guest.disconnect()


async def test_kicked_is_told_closed_and_cannot_come_back(layer: str) -> None:
    """kick:ID: kicked + 4403 on its connection; its token and its cookie answer the same."""
    cookie = await new_session()
    room, (host, _), (guest, you) = await host_and_guest(cookie)
    await guest.send_to(text_data="add:glue")
    await guest.send_to(text_data="vote:glue")
    await until_state(host, lambda s: s["items"] and s["items"][0]["votes"] == 1)
    await host.send_to(text_data=json.dumps({"action": "kick", "participant": 999, "ref": "k"}))
    assert ((e := await error_of(host))["code"], e["ref"]) == ("unknown_participant", "k")
    await host.send_to(text_data=f"kick:{you['id']}")
    await refused_with(guest, "kicked", 4403)
    state = await until_state(host, lambda s: len(s["participants"]) == 1)
    assert state["items"][0]["votes"] == 0 and state["items"][0]["added_by"] == "guest"
    by_token = await connect(room.pk, f"token={you['token']}")
    await refused_with(by_token, "kicked", 4403)
    by_cookie = await connect(room.pk, "name=again", cookie)
    await refused_with(by_cookie, "kicked", 4403)
    await host.disconnect()


async def test_hand_over_and_headcount(layer: str) -> None:
    """host:ID moves the badge; in/out and {"action":"going"} change room.going for all."""
    room, (host, me), (guest, you) = await host_and_guest()
    room_id = room.pk
    await host.send_to(text_data=f"host:{you['id']}")
    state = await until_state(guest, lambda s: s["participants"][1]["host"])
    assert [p["host"] for p in state["participants"]] == [False, True]
    await host.send_to(text_data="lock")
    assert (await error_of(host))["code"] == "not_host"
    await guest.send_to(text_data="in")
    await until_state(host, lambda s: len(s["room"]["going"]) == 1)
    await host.send_to(text_data=json.dumps({"action": "going", "going": True}))
    state = await until_state(guest, lambda s: len(s["room"]["going"]) == 2)
    assert state["room"]["going"] == [
        {"id": you["id"], "name": "guest"},
        {"id": me["id"], "name": "host"},
    ]
    await guest.disconnect()
    state = await until_state(host, lambda s: len(s["participants"]) == 1)
    assert len(state["room"]["going"]) == 2  # online or not
    await host.send_to(text_data="out")
    state = await until_state(host, lambda s: len(s["room"]["going"]) == 1)
    assert state["room"]["going"] == [{"id": you["id"], "name": "guest"}]
    await host.send_to(text_data=json.dumps({"action": "going", "going": "yes"}))
    assert (await error_of(host))["code"] == "bad_message"
    back, again = await joined(room_id, f"token={you['token']}")  # the guest rejoins
    assert again["id"] == you["id"]
    state = await until_state(host, lambda s: len(s["participants"]) == 2)
    assert state["room"]["going"] == [{"id": you["id"], "name": "guest"}]
    await back.disconnect()
    await host.disconnect()


async def test_the_host_closes_the_room_for_everyone(layer: str) -> None:
    """close: everyone gets room_expired and 4410; the API answers 410."""
    room, (host, _), (guest, _) = await host_and_guest()
    await guest.send_to(text_data="close")
    assert (await error_of(guest))["code"] == "not_host"
    await host.send_to(text_data="close")
    await refused_with(host, "room_expired", 4410)
    await refused_with(guest, "room_expired", 4410)
    response = await sync_to_async(Client().get)(f"/api/rooms/{room.pk}/")
    assert response.status_code == 410


async def test_ballot_stuffing_is_capped(layer: str, settings) -> None:
    """Reconnecting without cookies makes new participants only up to the lifetime cap."""
    settings.ROOM_MAX_PARTICIPANTS_EVER = 3
    room = await new_room()
    first, _ = await joined(room.pk, "name=first")
    await first.send_to(text_data="add:pizza")
    await until_state(first, lambda s: s["items"])
    await first.send_to(text_data="vote:pizza")
    await until_state(first, lambda s: s["items"][0]["votes"] == 1)
    for n in range(3):
        stuffer = await connect(room.pk, f"name=s{n}")
        if n == 2:
            await refused_with(stuffer, "room_full", 4403)
            break
        assert (await receive(stuffer))["type"] == "welcome"
        await stuffer.send_to(text_data="vote:pizza")
        await until_state(stuffer, lambda s, n=n: s["items"][0]["votes"] == n + 2)
        await stuffer.disconnect()
    state = await until_state(first, lambda s: s["items"][0]["votes"] == 3)
    await first.send_to(text_data="extend")
    state = await until_state(first, lambda s: len(s["participants"]) == 1)
    assert state["items"][0]["votes"] == 3
    await first.disconnect()
