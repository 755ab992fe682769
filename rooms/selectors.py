"""Reads: a room's state as the protocol shows it, and who is online."""

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from . import text
from .errors import ClientError
from .models import Mark, Participant, Room
from .protocol import (
    BillState,
    GroupInfo,
    ItemState,
    OrderState,
    ParticipantInfo,
    Person,
    ShareState,
    StateEvent,
)
from .summary import order_tally, room_summary

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


# The whole state in one round trip, one row per thing shown. `part` says which list a row
# belongs to and `sort` orders the rows within it; the other columns mean what each part's
# comment says (NULL where a part has nothing). A new field of the state is a column or a
# part here and a line in room_state below.
#
# Every part starts from the room's own rows (by the room_id indexes) and reaches the rest
# one row at a time by primary or foreign key, so a read costs the same however many other
# rooms the tables hold. Written as joins, PostgreSQL's planner, once it has statistics of
# small tables, hashes whole tables instead (every participant for the adders' names, every
# mark, every connection), and a prepared statement keeps that plan: with 100 rooms a read
# took 2-3x as long (docs/performance.md). So: scalar subqueries for names and presence, and
# on PostgreSQL a LATERAL subquery that it cannot flatten back into a join for the marks.
_ONLINE, _ITEM, _MARK, _GOING, _GROUP, _ORDER, _SHARE = range(7)  # `part`, as in the SQL
_NO_TAGS = "[]"  # the tags and avoids columns' default (models.py): nothing to parse
# `at`: when someone online said they are done, or when an item of the runoff was added.
# `tags`: an item's tags, or the avoids of someone online or coming (JSON text, models.py).
_STATE_SQL = """
-- who is online: id, name, -, -, when they said they are done (NULL: not done), what they avoid
SELECT 0 AS part, ROW_NUMBER() OVER (ORDER BY p.joined_at, p.id) AS sort,
       p.id, p.name, NULL AS other_id, NULL AS other_name, p.done_at AS at, p.avoids AS tags
  FROM rooms_participant p
 WHERE p.room_id = %(room)s
   AND (SELECT MAX(c.last_seen) FROM rooms_connection c WHERE c.participant_id = p.id)
       >= %(cutoff)s
UNION ALL
-- the items: id, name, who added it (id, name), when it was added if it is in the runoff,
-- its tags
SELECT 1, i.id, i.id, i.name, i.added_by_id,
       (SELECT a.name FROM rooms_participant a WHERE a.id = i.added_by_id),
       CASE WHEN i.runoff THEN i.added_at END, i.tags
  FROM rooms_item i
 WHERE i.room_id = %(room)s
UNION ALL
-- the votes and vetoes: item id, kind, who (id, name)
SELECT 2, m.id, m.item_id, m.kind, m.participant_id,
       (SELECT mp.name FROM rooms_participant mp WHERE mp.id = m.participant_id), NULL, NULL
  FROM rooms_item i
  {marks_of_item}
 WHERE i.room_id = %(room)s
UNION ALL
-- who said they are coming, online or not, in the order they said it: id, name, avoids
SELECT 3, ROW_NUMBER() OVER (ORDER BY g.going_since, g.id), g.id, g.name, NULL, NULL, NULL,
       g.avoids
  FROM rooms_participant g
 WHERE g.room_id = %(room)s AND g.going_since IS NOT NULL AND g.kicked_at IS NULL
UNION ALL
-- the room's lunch group, if it has one: id, slug, -, name
SELECT 4, 0, t.id, t.slug, NULL, t.name, NULL, NULL FROM rooms_group t WHERE t.id = %(group)s
UNION ALL
-- the orders, in the order first given: who (id, name), -, what
SELECT 5, o.id, o.participant_id,
       (SELECT op.name FROM rooms_participant op WHERE op.id = o.participant_id), NULL, o.text,
       NULL, NULL
  FROM rooms_order o
 WHERE o.room_id = %(room)s
UNION ALL
-- the bill's shares: who (id, name), the amount, 'paid' once sent
SELECT 6, s.id, s.participant_id,
       (SELECT sp.name FROM rooms_participant sp WHERE sp.id = s.participant_id), s.amount,
       CASE WHEN s.paid THEN 'paid' END, NULL, NULL
  FROM rooms_share s
 WHERE s.room_id = %(room)s
ORDER BY part, sort
"""
_STATE_SQL_BY_VENDOR = {
    # OFFSET 0 keeps the subquery apart: one index scan of rooms_mark per item.
    "postgresql": _STATE_SQL.format(
        marks_of_item="CROSS JOIN LATERAL"
        " (SELECT id, item_id, kind, participant_id FROM rooms_mark"
        "   WHERE item_id = i.id OFFSET 0) m"
    ),
    # SQLite has no LATERAL, and its planner walks a join by the indexes anyway.
    "sqlite": _STATE_SQL.format(marks_of_item="JOIN rooms_mark m ON m.item_id = i.id"),
}


def room_state(*, room: Room) -> StateEvent:
    """The full `state` event of a room, as every client sees it (one query)."""
    sql, params = room_state_query(room_id=room.pk, group_id=room.group_id)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return room_state_from_rows(room=room, rows=cursor.fetchall())


def room_state_query(
    *, room_id: str, group_id: int | None, vendor: str | None = None
) -> tuple[str, dict]:
    """The state read's statement and parameters, for a caller that sends it with others.

    `vendor` "postgresql" spells it for psycopg without touching Django's connection (the
    event loop's everyday changes, rooms/everyday.py)."""
    cutoff = presence_cutoff()
    # A datetime for psycopg; Django's adapted form (text on SQLite) through its connection.
    adapted: datetime | str | None = cutoff
    if vendor is None:
        vendor = connection.vendor
        adapted = connection.ops.adapt_datetimefield_value(cutoff)
    params = {"room": room_id, "cutoff": adapted, "group": group_id}
    return _STATE_SQL_BY_VENDOR[vendor], params


def room_state_group_row(*, slug: str, name: str) -> tuple:
    """The state read's row for the room's group, for a caller that found the group itself."""
    return (_GROUP, 0, None, slug, None, name, None, None)


def room_state_from_rows(*, room: Room, rows: list[tuple]) -> StateEvent:
    """The `state` event of `room` from the rows its state read returned: everything, votes
    included (`state_shown` is what a blind room shows)."""
    participants: list[ParticipantInfo] = []
    items: dict[int, ItemState] = {}
    going: list[Person] = []
    # Who can't eat what, among those online and those coming: (id, name, avoids).
    avoiding: dict[int, tuple[str, list[str]]] = {}
    group: GroupInfo | None = None
    orders: list[OrderState] = []
    shares: list[ShareState] = []
    runoff: list[str] = []
    for part, _, pk, name, other_id, other_name, at, tags in rows:
        if part == _ONLINE:
            done = at is not None and _done_counts(_as_datetime(at), room.done_reset_at)
            avoids = json.loads(tags) if tags != _NO_TAGS else []
            participants.append(
                {
                    "id": pk,
                    "name": name,
                    "host": pk == room.host_id,
                    "done": done,
                    "avoids": avoids,
                }
            )
            if avoids:
                avoiding[pk] = (name, avoids)
        elif part == _ITEM:
            if at is not None:
                runoff.append(name)
            items[pk] = {
                "name": name,
                "added_by": other_name,
                "added_by_id": other_id,
                "votes": 0,
                "voters": [],
                "voter_ids": [],
                "vetoed_by": [],
                "vetoer_ids": [],
                "tags": json.loads(tags) if tags != _NO_TAGS else [],
                "avoided_by": [],
                "avoider_ids": [],
            }
        elif part == _MARK:
            entry = items[pk]  # pk is the mark's item, name its kind
            if name == Mark.Kind.VOTE:
                entry["voters"].append(other_name)
                entry["voter_ids"].append(other_id)
                entry["votes"] += 1  # type: ignore[operator]  # an int until state_shown
            else:
                entry["vetoed_by"].append(other_name)
                entry["vetoer_ids"].append(other_id)
        elif part == _GOING:
            going.append({"id": pk, "name": name})
            if tags != _NO_TAGS and pk not in avoiding:
                avoiding[pk] = (name, json.loads(tags))
        elif part == _ORDER:
            orders.append({"id": pk, "name": name, "text": other_name})
        elif part == _SHARE:
            shares.append({"id": pk, "name": name, "amount": other_id, "paid": bool(other_name)})
        else:
            group = {"slug": name, "name": other_name}
    if avoiding:
        _avoiders_mark(list(items.values()), avoiding)
    state: StateEvent = {
        "type": "state",
        "version": room.version,
        "room": {
            "id": room.pk,
            "expires_at": room.expires_at.isoformat(),
            "decision": room.decision,
            "locked": room.locked,
            "going": going,
            "group": group,
            "orders": orders,
            "order_tally": order_tally(orders),
            "bill": _bill(room, shares),
            "summary": None,
            "deadline": None if room.deadline_at is None else {"at": room.deadline_at.isoformat()},
            "runoff": (
                None
                if room.runoff_ends_at is None
                else {"items": runoff, "ends_at": room.runoff_ends_at.isoformat()}
            ),
            "blind": room.blind,
        },
        "items": list(items.values()),
        "participants": participants,
    }
    if room.decided_at is not None:
        state["room"]["summary"] = room_summary(state, language=room_language(room))
    return state


def room_state_from_state(*, room: Room, state: StateEvent) -> StateEvent:
    """A state read earlier in the transaction, after the room decided (picks.py): the
    decision, no deadline, nobody done, no orders and no bill (a decision ends or clears
    them all), and its summary."""
    info = state["room"]
    info["decision"], info["orders"], info["order_tally"], info["bill"] = (
        room.decision,
        [],
        [],
        None,
    )
    info["deadline"] = None
    for participant in state["participants"]:
        participant["done"] = False
    state["room"]["summary"] = room_summary(state, language=room_language(room))
    return state


def _bill(room: Room, shares: list[ShareState]) -> BillState | None:
    if room.bill_total is None:
        return None
    payer = next((s["name"] for s in shares if s["id"] == room.bill_paid_by_id), "")
    return {
        "total": room.bill_total,
        "currency": settings.ROOM_CURRENCY,
        "unit": settings.ROOM_BILL_UNIT,
        "paid_by": {"id": room.bill_paid_by_id or 0, "name": payer},
        "shares": shares,
    }


def room_language(room: Room) -> str:
    """The language the room's summary is written in (its creator's page's or its group's)."""
    return room.language or settings.LANGUAGE_CODE


def _done_counts(done_at: datetime, reset_at: datetime | None) -> bool:
    """A participant's `done` holds until an add or a decision resets everyone's
    (Room.done_reset_at). Judged here, from the room's row every change returns: a look at
    rooms_room inside the state read would scan that table (tests/test_state_plan.py)."""
    return reset_at is None or done_at > reset_at


def _as_datetime(value: datetime | str) -> datetime:
    """A time from our own SQL: psycopg gives an aware datetime, SQLite a naive one in UTC (or
    the text Django stored, where it cannot tell the column's type)."""
    parsed = value if isinstance(value, datetime) else parse_datetime(value)
    if parsed is None:
        raise ValueError(f"not a time: {value!r}")
    return parsed if timezone.is_aware(parsed) else parsed.replace(tzinfo=UTC)


def _avoiders_mark(items: list[ItemState], avoiding: dict[int, tuple[str, list[str]]]) -> None:
    """The can't-eat rule: an item carrying a tag someone avoids (compared as items are) is
    avoided by them. Every draw skips such an item (services/picks.py, pick_candidates)."""
    keys = {pk: {text.item_key(tag) for tag in avoids} for pk, (_, avoids) in avoiding.items()}
    for item in items:
        if not item["tags"]:
            continue
        tags = {text.item_key(tag) for tag in item["tags"]}
        for pk, avoided in keys.items():
            if avoided & tags:
                item["avoided_by"].append(avoiding[pk][0])
                item["avoider_ids"].append(pk)


# --- What a state shows ------------------------------------------------------------


@dataclass(frozen=True)
class Shown:
    """A state as it may be sent to anyone, and, in a blind room, each one's own votes."""

    state: StateEvent
    # Blind and undecided: the names each participant voted for, by its id (as text, the
    # channel layer's map keys); None when the state shows the votes itself.
    mine: dict[str, list[str]] | None = None


def votes_hidden(state: StateEvent) -> bool:
    """Blind votes stay hidden until the room decides (whatever the votes came from)."""
    return state["room"]["blind"] and state["room"]["decision"] is None


def state_shown(state: StateEvent) -> Shown:
    """The one redaction: what a (full) state may show anyone. In a blind undecided room no
    item says who voted for it or how many (`votes` null, `voters` and `voter_ids` empty);
    vetoes and everything else stay. The full state is never changed."""
    if not votes_hidden(state):
        return Shown(state)
    mine: dict[str, list[str]] = {}
    items: list[ItemState] = []
    for item in state["items"]:
        for voter in item["voter_ids"]:
            mine.setdefault(str(voter), []).append(item["name"])
        items.append({**item, "votes": None, "voters": [], "voter_ids": []})
    return Shown({**state, "items": items}, mine)


def votes_of(state: StateEvent, participant_id: int) -> list[str]:
    """The items a participant voted for, from a full state (its `welcome`)."""
    return [item["name"] for item in state["items"] if participant_id in item["voter_ids"]]


def rooms_host_overdue(*, room_ids: list[str]) -> list[str]:
    """Which of these open rooms' hosts have had no connection for ROOM_HOST_GRACE_SECONDS."""
    cutoff = timezone.now() - timedelta(seconds=settings.ROOM_HOST_GRACE_SECONDS)
    rooms = Room.objects.active().filter(pk__any_of=room_ids, host_absent_since__lte=cutoff)
    return list(rooms.values_list("pk", flat=True))


def rooms_open_versions(*, room_ids: list[str]) -> dict[str, int]:
    """The version of each of these rooms that is still open; gone or dead rooms are absent."""
    return dict(Room.objects.active().filter(pk__any_of=room_ids).values_list("pk", "version"))
