"""Blind votes and can't eat over the WebSocket (issue 29): `mine` to every connection of a
voter, welcome.you.votes, the refusals' codes. On the in-memory layer (SQLite) and on Redis
(PostgreSQL), as the other consumer tests."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from lunchsite.asgi import application
from rooms import commands, services
from rooms.consumers import RoomConsumer
from rooms.models import Room
from rooms.protocol import parse_frame
from tests.support.setups import join

pytestmark = pytest.mark.django_db(transaction=True)


async def connect(room_id: str, query: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, f"/ws/rooms/{room_id}/?{query}")
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def receive(communicator: WebsocketCommunicator, timeout: float = 3) -> dict:
    return json.loads(await communicator.receive_from(timeout))


async def joined(room_id: str, query: str) -> tuple[WebsocketCommunicator, dict, dict]:
    """A connection, its welcome's `you` and its first state."""
    communicator = await connect(room_id, query)
    welcome = await receive(communicator)
    assert welcome["type"] == "welcome", welcome
    state = await receive(communicator)
    assert state["type"] == "state", state
    return communicator, welcome["you"], state


async def next_of(communicator: WebsocketCommunicator, kind: str) -> dict:
    while (event := await receive(communicator))["type"] != kind:
        pass
    return event


async def until_state(communicator: WebsocketCommunicator, predicate) -> dict:
    while True:
        event = await next_of(communicator, "state")
        if predicate(event):
            return event


async def settled(communicator: WebsocketCommunicator, version: int) -> list[dict]:
    """Everything this connection is sent up to the state of `version`, and whatever
    follows it within a moment (a `mine`, or nothing)."""
    events = []
    while True:
        event = await receive(communicator)
        events.append(event)
        if event["type"] == "state" and event["version"] >= version:
            break
    while not await communicator.receive_nothing(timeout=0.3):
        events.append(await receive(communicator))
    return events


def hidden(state: dict) -> bool:
    return all(
        (item["votes"], item["voters"], item["voter_ids"]) == (None, [], [])
        for item in state["items"]
    )


async def close_all(*communicators: WebsocketCommunicator) -> None:
    for communicator in communicators:
        await communicator.disconnect()


async def test_mine_goes_to_every_connection_of_the_voter_and_nobody_else(layer: str) -> None:
    """Two tabs of the guest (one token), the host: in a blind room the guest's vote gives
    everyone a state without votes, and both of the guest's tabs its own votes."""
    room: Room = await sync_to_async(services.room_create)()
    host, _, _ = await joined(room.pk, f"name=host&token={room.host_token}")
    tab1, guest, _ = await joined(room.pk, "name=guest")
    tab2, again, _ = await joined(room.pk, f"token={guest['token']}")
    assert again["id"] == guest["id"]
    await host.send_to(text_data="add:pho")
    await host.send_to(text_data="blind")
    blind = await until_state(host, lambda s: s["room"]["blind"])
    # Turning blind tells everyone its own votes (none yet): the states stop showing them.
    assert await receive(host) == {"type": "mine", "votes": []}
    for tab in (tab1, tab2):
        events = await settled(tab, blind["version"])
        assert events[-1] == {"type": "mine", "votes": []}
    await tab1.send_to(text_data="vote:pho")
    voted = await until_state(host, lambda s: s["version"] > blind["version"])
    assert hidden(voted)
    assert await host.receive_nothing(timeout=0.3)  # no `mine` for someone else's vote
    for tab in (tab1, tab2):
        events = await settled(tab, voted["version"])
        assert hidden(events[-2])
        assert events[-1] == {"type": "mine", "votes": ["pho"]}
    await host.send_to(text_data="add:ramen")  # a change that is not the guest's votes
    added = await until_state(host, lambda s: len(s["items"]) == 2)
    for tab in (tab1, tab2):
        events = await settled(tab, added["version"])
        assert [e["type"] for e in events][-1] == "state"  # no `mine`: its votes did not change
    await close_all(host, tab1, tab2)


async def test_welcome_says_my_votes_and_the_decision_reveals_them(layer: str) -> None:
    room: Room = await sync_to_async(services.room_create)()
    host, _, _ = await joined(room.pk, f"name=host&token={room.host_token}")
    guest, you, _ = await joined(room.pk, "name=guest")
    for frame in ("add:pho", "add:ramen", "blind"):
        await host.send_to(text_data=frame)
    await until_state(guest, lambda s: s["room"]["blind"] and len(s["items"]) == 2)
    await guest.send_to(text_data="vote:ramen")
    while (await next_of(guest, "mine"))["votes"] != ["ramen"]:
        pass
    again, you_again, state = await joined(room.pk, f"token={you['token']}")
    assert you_again["votes"] == ["ramen"]
    assert state["room"]["blind"] and hidden(state)
    await host.send_to(text_data="pick")
    picked = await next_of(again, "picked")
    assert picked["item"] == "ramen"
    decided = await next_of(again, "state")
    ramen = decided["items"][1]
    assert (ramen["votes"], ramen["voters"], ramen["voter_ids"]) == (1, ["guest"], [you["id"]])
    await close_all(host, guest, again)


async def test_tags_avoids_and_their_refusals_over_the_socket(layer: str) -> None:
    room: Room = await sync_to_async(services.room_create)()
    host, _, _ = await joined(room.pk, f"name=host&token={room.host_token}")
    guest, you, _ = await joined(room.pk, "name=guest")
    await guest.send_to(text_data="add:짬뽕 #해산물 #매운")
    state = await until_state(guest, lambda s: s["items"])
    assert state["items"][0]["tags"] == ["해산물", "매운"]
    await guest.send_to(text_data="avoid:해산물")
    state = await until_state(guest, lambda s: s["items"][0]["avoided_by"])
    assert state["items"][0]["avoider_ids"] == [you["id"]]
    assert [p["avoids"] for p in state["participants"]] == [[], ["해산물"]]
    await host.send_to(text_data="pick")
    assert (await next_of(host, "error"))["code"] == "nothing_to_pick"
    await guest.send_to(text_data='{"action":"avoid","tags":["a","b","c","d","e","f"],"ref":3}')
    assert await next_of(guest, "error") == {
        "type": "error",
        "code": "invalid_tag",
        "message": "A tag is 1 to 12 characters; an item has at most 3, and you avoid at most 5.",
        "ref": 3,
    }
    await guest.send_to(text_data="tag:짬뽕 #" + "x" * 13)
    assert (await next_of(guest, "error"))["code"] == "invalid_tag"
    await guest.send_to(text_data="blind")
    assert (await next_of(guest, "error"))["code"] == "not_host"
    await guest.send_to(text_data='{"action":"blind","blind":"yes"}')
    assert (await next_of(guest, "error"))["code"] == "bad_message"
    await close_all(host, guest)


async def test_a_state_sent_straight_to_a_connection_is_shown_redacted(layer: str) -> None:
    """The join's state and the resync's (rooms/realtime/liveness.py) reach a connection
    through send_state, not the room's group: it too hides a blind room's votes, then says
    the connection's own."""
    room: Room = await sync_to_async(services.room_create)()
    voter = await sync_to_async(join)(room, "voter")

    def run(frame: str) -> dict:
        command = parse_frame(frame)
        return commands.command_run(room_id=room.pk, participant_id=voter.pk, command=command)

    await sync_to_async(run)("add:pho")
    await sync_to_async(run)("vote:pho")
    full = await sync_to_async(run)("blind")
    sent: list[dict] = []
    consumer = RoomConsumer()
    consumer.participant_id, consumer.version, consumer.mine = voter.pk, -1, None

    async def capture(text_data: str) -> None:
        sent.append(json.loads(text_data))

    consumer.send = capture  # type: ignore[method-assign]
    await consumer.send_state(full)
    assert [event["type"] for event in sent] == ["state", "mine"]
    assert hidden(sent[0]) and full["items"][0]["votes"] == 1
    assert sent[1] == {"type": "mine", "votes": ["pho"]}
    await consumer.send_state(full)  # not newer: nothing
    assert len(sent) == 2
