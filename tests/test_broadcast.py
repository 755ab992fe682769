"""Broadcasts leave after the commit, from the event loop; outages are ServerBusy, not refusals."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import OperationalError, transaction

from rooms import broadcast, database, services
from rooms.errors import ClientError, ServerBusy
from rooms.models import Room

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _memory_layer(channel_layer_memory: None) -> None:
    """The in-memory layer, so a test can listen on a room's group."""


async def listen(room: Room) -> str:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(room.channel_group, channel)
    return channel


async def test_a_change_reaches_the_group_with_its_version(monkeypatch) -> None:
    """An add through database.call publishes one state, of the version the call returned."""
    room = await sync_to_async(services.room_create)()
    participant, _ = await database.call(
        services.participant_join, room_id=room.pk, channel_name="c1", name="minji"
    )
    channel = await listen(room)
    state = await database.call(
        services.item_add, room_id=room.pk, participant_id=participant.pk, name="pho"
    )
    message = await get_channel_layer().receive(channel)
    if message["presence"]:  # the join's state, held briefly, went out after we listened
        message = await get_channel_layer().receive(channel)
    assert message["type"] == "room.event" and message["is_state"]
    assert message["version"] == state["version"] and '"pho"' in message["text"]


async def test_a_refused_change_publishes_nothing() -> None:
    """A rule that says no rolls back, and no state leaves for the group."""
    room = await sync_to_async(services.room_create)()
    participant, _ = await database.call(
        services.participant_join, room_id=room.pk, channel_name="c1", name="minji"
    )
    await database.call(
        services.item_add, room_id=room.pk, participant_id=participant.pk, name="pho"
    )
    channel = await listen(room)
    with pytest.raises(ClientError):
        await database.call(
            services.item_add, room_id=room.pk, participant_id=participant.pk, name="PHO"
        )
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(get_channel_layer().receive(channel), timeout=0.3)


def test_messages_wait_for_the_commit() -> None:
    """Inside `collecting`, nothing is collected until the transaction commits."""
    room = services.room_create()
    with broadcast.collecting() as outbox:
        with transaction.atomic():
            services.room_extend(room_id=room.pk)
            assert outbox == []
        assert [m["type"] for _, m in outbox] == ["room.event"]


async def test_a_database_outage_is_server_busy(monkeypatch) -> None:
    """A database that keeps failing ends in ServerBusy, never a ClientError."""
    monkeypatch.setattr(database, "RETRY_DELAY_SECONDS", 0)
    calls = []

    def failing_service() -> None:
        calls.append(1)
        raise OperationalError("server closed the connection unexpectedly")

    with pytest.raises(ServerBusy):
        await database.call(failing_service)
    assert len(calls) == database.ATTEMPTS


def presence_state(version: int, *, presence: bool = True) -> broadcast.RoomEvent:
    return {
        "type": "room.event",
        "text": f'{{"type":"state","version":{version}}}',
        "version": version,
        "is_state": True,
        "presence": presence,
    }


async def received_versions(channel: str) -> list[int]:
    """The versions a listener gets until nothing more comes for 0.4 s."""
    versions = []
    while True:
        try:
            message = await asyncio.wait_for(get_channel_layer().receive(channel), timeout=0.4)
        except TimeoutError:
            return versions
        versions.append(message["version"])


@pytest.mark.parametrize(
    ("published", "received"),
    [
        # Five joins within the window, published in any order: one state, the newest.
        ([(3, True), (1, True), (5, True), (4, True), (2, True)], [5]),
        # A change newer than the held presence state: it replaces it.
        ([(7, True), (8, False)], [8]),
        # A change older than the held presence state: the held one still goes out.
        ([(9, True), (8, False)], [8, 9]),
    ],
    ids=["joins-coalesce", "newer-change-replaces", "older-change-keeps"],
)
async def test_presence_states_are_coalesced(settings, published, received) -> None:
    """Presence states wait ROOM_PRESENCE_COALESCE_SECONDS; only the newest needed goes out."""
    settings.ROOM_PRESENCE_COALESCE_SECONDS = 0.2
    room = await sync_to_async(services.room_create)()
    channel = await listen(room)
    for version, presence in published:
        await broadcast.publish([(room.channel_group, presence_state(version, presence=presence))])
    assert await received_versions(channel) == received


async def test_every_joiner_is_in_its_own_first_state() -> None:
    """Joins in quick succession: each joiner's own state lists it (coalescing or not)."""
    room = await sync_to_async(services.room_create)()
    for n in range(5):
        participant, state = await database.call(
            services.participant_join, room_id=room.pk, channel_name=f"c{n}", name=f"p{n}"
        )
        assert participant.pk in [p["id"] for p in state["participants"]]
        assert len(state["participants"]) == n + 1
