"""Commands with an `id` through the consumer: acknowledged, replayed, raced (in-memory layer)."""

import asyncio
import json

import pytest
from prometheus_client import REGISTRY

from rooms.models import CommandReceipt, Mark, Room
from tests.test_consumer import connect, new_room, receive, until_state

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("channel_layer_memory"),
]


async def until(communicator, kind: str, timeout: float = 3) -> dict:
    while True:
        event = await receive(communicator, timeout)
        if event["type"] == kind:
            return event


async def joined(room_id: str, query: str) -> tuple:
    """A connection that joined, and its welcome (`you.token` rejoins as the same person)."""
    communicator = await connect(room_id, query)
    welcome = await receive(communicator)
    assert welcome["type"] == "welcome"
    assert (await receive(communicator))["type"] == "state"
    return communicator, welcome["you"]["token"]


async def version_of(room: Room) -> int:
    return (await Room.objects.aget(pk=room.pk)).version


async def test_a_command_with_an_id_is_acknowledged_once_applied() -> None:
    """The ack names the id, the ref and the version whose state carries the change (which
    reaches everyone through the room's group, so it may come after the ack)."""
    room = await new_room()
    alice, _ = await joined(room.pk, "name=alice")
    await alice.send_to(
        text_data=json.dumps({"action": "add", "item": "pho", "id": "a-1", "ref": 7})
    )
    events = [await receive(alice), await receive(alice)]
    (ack,) = [e for e in events if e["type"] == "ack"]
    (state,) = [e for e in events if e["type"] == "state"]
    assert state["items"][0]["name"] == "pho"
    assert ack == {"type": "ack", "id": "a-1", "version": state["version"], "ref": 7}
    await alice.disconnect()


async def test_a_resend_after_a_reconnect_is_answered_as_the_first_time() -> None:
    """The same id from the same participant on a new connection (the first one dropped
    before its ack): the same ack, nothing applied again (a vote would be taken back)."""
    room = await new_room()
    alice, token = await joined(room.pk, "name=alice")
    await alice.send_to(text_data="add:pho")
    await until_state(alice, lambda s: s["items"])
    vote = json.dumps({"action": "vote", "item": "pho", "id": "v-1"})
    await alice.send_to(text_data=vote)
    first = await until(alice, "ack")
    await alice.disconnect()
    # The same participant again (no browser session here: its token).
    again = await connect(room.pk, f"token={token}")
    assert (await receive(again))["type"] == "welcome"
    state = await until_state(again, lambda s: True)
    assert state["items"][0]["votes"] == 1 and state["version"] > first["version"]
    before = await version_of(room)
    replayed = REGISTRY.get_sample_value("lunchsite_actions_replayed_total", {"action": "vote"})
    await again.send_to(text_data=vote)
    assert await until(again, "ack") == first
    after = REGISTRY.get_sample_value("lunchsite_actions_replayed_total", {"action": "vote"})
    assert after == (replayed or 0) + 1
    assert await version_of(room) == before
    assert await Mark.objects.acount() == 1
    await again.disconnect()


async def test_a_refusal_carries_the_id_and_is_replayed() -> None:
    room = await new_room()
    alice, _ = await joined(room.pk, "name=alice")
    frame = json.dumps({"action": "vote", "item": "ramen", "id": "v-2"})
    for _ in range(2):
        await alice.send_to(text_data=frame)
        error = await until(alice, "error")
        assert error["code"] == "unknown_item" and error["id"] == "v-2"
    assert await CommandReceipt.objects.acount() == 1
    await alice.disconnect()


@pytest.mark.parametrize("bad", ["", "a" * 65, "no spaces", "ü", 5, True, ["x"]])
async def test_a_malformed_id_is_invalid_id_and_nothing_is_applied(bad) -> None:
    room = await new_room()
    alice, _ = await joined(room.pk, "name=alice")
    before = await version_of(room)
    await alice.send_to(
        text_data=json.dumps({"action": "add", "item": "pho", "id": bad, "ref": "r"})
    )
    error = await until(alice, "error")
    assert error["code"] == "invalid_id" and error["ref"] == "r" and "id" not in error
    assert await version_of(room) == before
    await alice.disconnect()


async def test_two_connections_of_one_participant_send_the_same_id_at_once() -> None:
    """A tab and its reconnection both send the unacknowledged vote: applied once, both
    acknowledged with the same version."""
    room = await new_room()
    alice, token = await joined(room.pk, "name=alice")
    await alice.send_to(text_data="add:pho")
    await until_state(alice, lambda s: s["items"])
    second, _ = await joined(room.pk, f"token={token}")
    before = await version_of(room)
    vote = json.dumps({"action": "vote", "item": "pho", "id": "same"})
    await asyncio.gather(alice.send_to(text_data=vote), second.send_to(text_data=vote))
    acks = await asyncio.gather(until(alice, "ack"), until(second, "ack"))
    assert acks[0] == acks[1] == {"type": "ack", "id": "same", "version": before + 1}
    assert await version_of(room) == before + 1
    assert await Mark.objects.acount() == 1
    await alice.disconnect()
    await second.disconnect()
