"""Reads: a room's state as the protocol shows it, and who is online."""

import re
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from .errors import ClientError
from .models import Mark, Participant, Room
from .protocol import ItemState, ParticipantInfo, StateEvent

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


# The whole state in one round trip: who is online, the items, the marks, one row each.
# Column 1 says which of the three a row is; `sort` orders rows within it. A new field
# of the state is a column here (NULL in the parts it does not belong to) and a line in
# room_state below.
_STATE_SQL = """
SELECT 0 AS part, ROW_NUMBER() OVER (ORDER BY p.joined_at, p.id) AS sort,
       p.id, p.name, NULL AS other_id, NULL AS other_name
  FROM rooms_participant p
 WHERE p.room_id = %(room)s
   AND EXISTS (SELECT 1 FROM rooms_connection c
                WHERE c.participant_id = p.id AND c.last_seen >= %(cutoff)s)
UNION ALL
SELECT 1, i.id, i.id, i.name, i.added_by_id, a.name
  FROM rooms_item i LEFT JOIN rooms_participant a ON a.id = i.added_by_id
 WHERE i.room_id = %(room)s
UNION ALL
SELECT 2, m.id, m.item_id, m.kind, m.participant_id, mp.name
  FROM rooms_mark m
  JOIN rooms_item i ON i.id = m.item_id
  JOIN rooms_participant mp ON mp.id = m.participant_id
 WHERE i.room_id = %(room)s
ORDER BY part, sort
"""


def room_state(*, room: Room) -> StateEvent:
    """The full `state` event of a room, as every client sees it (one query)."""
    cutoff = connection.ops.adapt_datetimefield_value(presence_cutoff())
    with connection.cursor() as cursor:
        cursor.execute(_STATE_SQL, {"room": room.pk, "cutoff": cutoff})
        rows = cursor.fetchall()
    participants: list[ParticipantInfo] = []
    items: dict[int, ItemState] = {}
    for part, _, pk, name, other_id, other_name in rows:
        if part == 0:
            participants.append({"id": pk, "name": name})
        elif part == 1:
            items[pk] = {
                "name": name,
                "added_by": other_name,
                "added_by_id": other_id,
                "votes": 0,
                "voters": [],
                "voter_ids": [],
                "vetoed_by": [],
                "vetoer_ids": [],
            }
        else:
            entry = items[pk]  # a mark: pk is its item, name its kind
            if name == Mark.Kind.VOTE:
                entry["voters"].append(other_name)
                entry["voter_ids"].append(other_id)
                entry["votes"] += 1
            else:
                entry["vetoed_by"].append(other_name)
                entry["vetoer_ids"].append(other_id)
    decision = None
    if room.decided_at is not None:
        decision = {
            "item": room.decision_item,
            "by": room.decision_by,
            "at": room.decided_at.isoformat(),
        }
    return {
        "type": "state",
        "version": room.version,
        "room": {"id": room.pk, "expires_at": room.expires_at.isoformat(), "decision": decision},
        "items": list(items.values()),
        "participants": participants,
    }


def rooms_open_versions(*, room_ids: list[str]) -> dict[str, int]:
    """The version of each of these rooms that is still open; gone or dead rooms are absent."""
    return dict(Room.objects.active().filter(pk__in=room_ids).values_list("pk", "version"))
