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
    await layer.group_add(room.group_name, channel)
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
