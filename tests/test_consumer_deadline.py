"""Deciding on time over the WebSocket (issue 29): codes with their refs, what everyone is
sent, and the process's clock. On PostgreSQL a vote and `done` go from the event loop
(rooms/everyday.py), whose early finish is sent to a database thread."""

import asyncio
import json
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from lunchsite.asgi import application
from rooms import services
from rooms.models import Room
from rooms.realtime import deadlines as clock

pytestmark = pytest.mark.django_db(transaction=True)


async def joined(room_id: str, name: str) -> tuple[WebsocketCommunicator, dict]:
    communicator = WebsocketCommunicator(application, f"/ws/rooms/{room_id}/?name={name}")
    connected, _ = await communicator.connect()
    assert connected
    welcome = await receive(communicator)
    assert (await receive(communicator))["type"] == "state"
    return communicator, welcome["you"]


async def receive(communicator: WebsocketCommunicator, timeout: float = 3) -> dict:
    return json.loads(await communicator.receive_from(timeout))


async def next_of(communicator: WebsocketCommunicator, kind: str, timeout: float = 3) -> dict:
    while (event := await receive(communicator, timeout))["type"] != kind:
        pass
    return event


async def until_state(communicator, predicate, timeout: float = 3) -> dict:
    while True:
        event = await next_of(communicator, "state", timeout)
        if predicate(event):
            return event


async def host_and_guest() -> tuple[Room, WebsocketCommunicator, WebsocketCommunicator]:
    room = await sync_to_async(services.room_create)()
    host, _ = await joined(room.pk, "host")
    guest, _ = await joined(room.pk, "guest")
    await until_state(host, lambda s: len(s["participants"]) == 2)
    return room, host, guest


async def test_deadline_codes_carry_their_ref(layer: str) -> None:
    _, host, guest = await host_and_guest()
    try:
        await guest.send_to(text_data='{"action":"deadline","seconds":"60","ref":"d1"}')
        error = await next_of(guest, "error")
        assert (error["code"], error["ref"]) == ("not_host", "d1")
        await host.send_to(text_data='{"action":"deadline","seconds":30.5,"ref":7}')
        error = await next_of(host, "error")
        assert (error["code"], error["ref"]) == ("invalid_deadline", 7)
        await host.send_to(text_data="deadline:120")
        state = await until_state(guest, lambda s: s["room"]["deadline"] is not None)
        assert state["room"]["deadline"]["at"].startswith(str(timezone.now().year))
        await host.send_to(text_data="deadline:off")
        await until_state(guest, lambda s: s["room"]["deadline"] is None)
    finally:
        await host.disconnect()
        await guest.disconnect()


async def test_everyone_done_decides_for_everyone(layer: str) -> None:
    _, host, guest = await host_and_guest()
    try:
        await host.send_to(text_data="add:bibimbap")
        await host.send_to(text_data="deadline:600")
        await until_state(guest, lambda s: s["room"]["deadline"] and s["items"])
        await host.send_to(text_data="done")
        state = await until_state(guest, lambda s: s["participants"][0]["done"])
        assert [p["done"] for p in state["participants"]] == [True, False]
        await guest.send_to(text_data='{"action":"done","done":true}')
        for communicator in (host, guest):
            picked = await next_of(communicator, "picked")
            assert picked == {
                "type": "picked",
                "item": "bibimbap",
                "by": None,
                "mode": "top",
                "auto": True,
            }
            state = await next_of(communicator, "state")
            assert state["room"]["decision"]["auto"] and state["room"]["deadline"] is None
            assert not any(p["done"] for p in state["participants"])
    finally:
        await host.disconnect()
        await guest.disconnect()


async def test_a_runoff_over_the_socket(layer: str) -> None:
    _, host, guest = await host_and_guest()
    try:
        for frame in ("add:pho", "add:ramen", "add:curry", "vote:pho"):
            await host.send_to(text_data=frame)
        await until_state(guest, lambda s: len(s["items"]) == 3)
        await guest.send_to(text_data="vote:ramen")
        await until_state(host, lambda s: [i["votes"] for i in s["items"]] == [1, 1, 0])
        await guest.send_to(text_data='{"action":"pick","on_tie":"runoff"}')
        for communicator in (host, guest):
            runoff = await next_of(communicator, "runoff")
            assert runoff["items"] == ["pho", "ramen"]
            state = await next_of(communicator, "state")
            assert state["room"]["runoff"]["items"] == ["pho", "ramen"]
        await host.send_to(text_data='{"action":"vote","item":"curry","ref":"v"}')
        error = await next_of(host, "error")
        assert (error["code"], error["ref"]) == ("not_in_runoff", "v")
        await host.send_to(text_data="add:udon")
        assert (await next_of(host, "error"))["code"] == "runoff_in_progress"
        await host.send_to(text_data="vote:ramen")
        await until_state(guest, lambda s: s["items"][1]["votes"] == 1)
        await guest.send_to(text_data="vote:ramen")
        for communicator in (host, guest):
            picked = await next_of(communicator, "picked")
            assert (picked["item"], picked["runoff"], picked["by"]) == ("ramen", True, None)
            state = await next_of(communicator, "state")
            assert state["room"]["runoff"] is None and state["room"]["decision"]["item"] == "ramen"
    finally:
        await host.disconnect()
        await guest.disconnect()


async def test_the_clock_decides_a_due_deadline(layer: str, settings) -> None:
    """The process's clock (rooms/realtime/deadlines.py) finds the due deadline by itself."""
    settings.ROOM_DEADLINE_POLL_SECONDS = 0.05
    room, host, guest = await host_and_guest()
    ticking = asyncio.create_task(clock.run())
    try:
        await host.send_to(text_data="add:naengmyeon")
        await until_state(guest, lambda s: s["items"])
        await sync_to_async(services_deadline_set_past)(room.pk)
        for communicator in (host, guest):
            picked = await next_of(communicator, "picked")
            assert picked["auto"] and picked["item"] == "naengmyeon"
        await next_of(host, "state")  # the decision's
        await asyncio.sleep(0.3)  # more rounds: nothing more is sent
        assert await host.receive_nothing(0.2)
    finally:
        ticking.cancel()
        await asyncio.gather(ticking, return_exceptions=True)
        await host.disconnect()
        await guest.disconnect()


def services_deadline_set_past(room_id: str) -> None:
    from rooms.services.deadlines import deadline_set

    deadline_set(room_id=room_id, at=timezone.now() - timedelta(seconds=1), participant_id=None)
