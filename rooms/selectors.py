"""Reads: a room's state as the protocol shows it, and who is online."""

import re
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from . import groups
from .errors import ClientError
from .models import Connection, Mark, Participant, Room
from .protocol import ItemState, StateEvent

ROOM_ID_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,32}")


def presence_cutoff(now: datetime | None = None) -> datetime:
    """Connections not seen since this moment belong to a dead worker."""
    now = now or timezone.now()
    return now - timedelta(seconds=settings.ROOM_PRESENCE_TIMEOUT_SECONDS)


def participants_online(*, room: Room) -> QuerySet[Participant]:
    return Participant.objects.filter(
        room=room, connections__last_seen__gte=presence_cutoff()
    ).distinct()


def room_get(*, room_id: str, for_update: bool = False) -> Room:
    """The room with this id, whatever its status, or ClientError(room_not_found)."""
    if not ROOM_ID_SHAPE.fullmatch(room_id):
        # Never hand the database text it may choke on (PostgreSQL refuses NUL); a
        # malformed id answers exactly like an unknown one.
        raise ClientError("room_not_found")
    rooms = Room.objects.select_for_update() if for_update else Room.objects
    try:
        return rooms.get(pk=room_id)
    except Room.DoesNotExist:
        raise ClientError("room_not_found") from None


def room_get_open(*, room_id: str, for_update: bool = False) -> Room:
    """The room if it is still active, else ClientError(room_not_found / room_expired)."""
    room = room_get(room_id=room_id, for_update=for_update)
    if not room.is_open:
        raise ClientError("room_expired")
    return room


def room_state(*, room: Room) -> StateEvent:
    """The full `state` event of a room, as every client sees it."""
    # Plain rows, not model instances: this runs on every change of every room.
    items: dict[int, ItemState] = {}
    rows = room.items.values_list("pk", "name", "added_by_id", "added_by__name")
    for pk, name, added_by_id, added_by in rows:
        items[pk] = {
            "name": name,
            "added_by": added_by,
            "added_by_id": added_by_id,
            "votes": 0,
            "voters": [],
            "voter_ids": [],
            "vetoed_by": [],
            "vetoer_ids": [],
        }
    marks = Mark.objects.filter(item__room=room).values_list(
        "item_id", "kind", "participant_id", "participant__name"
    )
    for item_id, kind, participant_id, name in marks:
        entry = items[item_id]
        if kind == Mark.Kind.VOTE:
            entry["voters"].append(name)
            entry["voter_ids"].append(participant_id)
            entry["votes"] += 1
        else:
            entry["vetoed_by"].append(name)
            entry["vetoer_ids"].append(participant_id)
    decision = None
    if room.decided_at is not None:
        decision = {
            "item": room.decision_item,
            "by": room.decision_by,
            "at": room.decided_at.isoformat(),
        }
    # One query for both lists: who is online, and who said they are coming (online or not).
    fresh = Connection.objects.filter(participant=OuterRef("pk"), last_seen__gte=presence_cutoff())
    people = list(
        room.participants.annotate(online=Exists(fresh))
        .filter(Q(online=True) | Q(going_since__isnull=False, kicked_at__isnull=True))
        .values_list("pk", "name", "online", "going_since")
    )
    going = sorted((since, pk, name) for pk, name, _, since in people if since is not None)
    return {
        "type": "state",
        "version": room.version,
        "room": {
            "id": room.pk,
            "expires_at": room.expires_at.isoformat(),
            "decision": decision,
            "locked": room.locked,
            "going": [{"id": pk, "name": name} for _, pk, name in going],
            "group": groups.group_ref(group_id=room.group_id),
        },
        "items": list(items.values()),
        "participants": [
            {"id": pk, "name": name, "host": pk == room.host_id}
            for pk, name, online, _ in people
            if online
        ],
    }


def rooms_host_overdue(*, room_ids: list[str]) -> list[str]:
    """Which of these open rooms' hosts have had no connection for ROOM_HOST_GRACE_SECONDS."""
    cutoff = timezone.now() - timedelta(seconds=settings.ROOM_HOST_GRACE_SECONDS)
    rooms = Room.objects.active().filter(pk__in=room_ids, host_absent_since__lte=cutoff)
    return list(rooms.values_list("pk", flat=True))


def rooms_open_versions(*, room_ids: list[str]) -> dict[str, int]:
    """The version of each of these rooms that is still open; gone or dead rooms are absent."""
    return dict(Room.objects.active().filter(pk__in=room_ids).values_list("pk", "version"))
