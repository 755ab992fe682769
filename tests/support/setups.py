"""Set-ups through the services that several test modules share."""

from __future__ import annotations

from datetime import timedelta
from itertools import count

from django.utils import timezone

from groups import services as group_services
from groups.models import Group
from rooms import services, text
from rooms.models import Participant, Room

_channels = count()


def join(room: Room, name: str = "", *, token: str = "", session_key: str = "") -> Participant:
    """Join `room` as the consumer would, on a channel name of its own."""
    participant, _ = services.participant_join(
        room_id=room.pk,
        channel_name=f"test.channel.{next(_channels)}",
        session_key=session_key,
        name=name,
        token=token,
    )
    return participant


def group_with_history(
    name: str, *, item: str, by: str, days_ago: int, language: str = "en"
) -> tuple[Group, Room]:
    """A group that decided `item` (by `by`) `days_ago` days ago, and its open room for today."""
    group = group_services.group_create(name=name, language=language)
    at = timezone.now() - timedelta(days=days_ago)
    Room.objects.create(
        group=group,
        expires_at=at + timedelta(minutes=10),
        decision_item=item,
        decision_by=by,
        decided_at=at,
        decision_key=text.item_key(item),
    )
    room, _ = group_services.group_room_open(group=group)
    return group, room
