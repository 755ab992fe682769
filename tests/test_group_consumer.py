"""A group's room over the WebSocket: the state names the group, pick avoids what it just had."""

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from groups import services as group_services
from groups.models import Group
from lunchsite.asgi import application
from rooms.models import Room
from tests.support import setups

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("channel_layer_memory"),
]


@sync_to_async
def group_with_history() -> tuple[Group, Room]:
    """A group that had kimchi stew yesterday, and its room for today."""
    return setups.group_with_history("Team Kimchi", item="Kimchi stew", by="joon", days_ago=1)


async def joined(room_id: str, name: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, f"/ws/rooms/{room_id}/?name={name}")
    connected, _ = await communicator.connect()
    assert connected
    assert json.loads(await communicator.receive_from(3))["type"] == "welcome"
    return communicator


async def next_of(communicator: WebsocketCommunicator, kind: str) -> dict:
    while True:
        event = json.loads(await communicator.receive_from(3))
        if event["type"] == kind:
            return event


async def test_state_names_the_group() -> None:
    """state.room.group is the group's slug and name."""
    group, room = await group_with_history()
    minji = await joined(room.pk, "minji")
    state = await next_of(minji, "state")
    assert state["room"]["group"] == {"slug": group.slug, "name": "Team Kimchi"}
    await minji.disconnect()


async def test_pick_fresh_skips_yesterdays_lunch_for_everyone() -> None:
    """`pick:fresh` never lands on yesterday's decision; both clients get the same pick."""
    _, room = await group_with_history()
    minji = await joined(room.pk, "minji")
    joon = await joined(room.pk, "joon")
    for item in ["kimchi stew", "bibimbap"]:
        await minji.send_to(text_data=f"add:{item}")
        await minji.send_to(text_data=f"vote:{item}")
    await minji.send_to(text_data="pick:fresh")
    for communicator in (minji, joon):
        picked = await next_of(communicator, "picked")
        assert picked["item"] == "bibimbap"
    await minji.disconnect()
    await joon.disconnect()


async def test_json_avoid_recent_with_only_recent_items_is_refused() -> None:
    """{"action":"pick","avoid_recent":true} with only recent items answers nothing_to_pick."""
    _, room = await group_with_history()
    minji = await joined(room.pk, "minji")
    await minji.send_to(text_data="add:KIMCHI STEW")
    await next_of(minji, "state")
    await minji.send_to(
        text_data=json.dumps({"action": "pick", "mode": "weighted", "avoid_recent": True})
    )
    error = await next_of(minji, "error")
    assert error["code"] == "nothing_to_pick"
    await minji.send_to(text_data="pick:weighted")  # without the flag it may repeat
    assert (await next_of(minji, "picked"))["item"] == "KIMCHI STEW"
    await minji.disconnect()


async def test_renaming_the_group_reaches_todays_room() -> None:
    """A new group name shows in the open room's state at once."""
    group, room = await group_with_history()
    minji = await joined(room.pk, "minji")
    await next_of(minji, "state")
    await sync_to_async(group_services.group_update)(group=group, name="Team Pho")
    state = await next_of(minji, "state")
    assert state["room"]["group"]["name"] == "Team Pho"
    await minji.disconnect()
