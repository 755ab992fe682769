"""Locking a room for a change: the row lock, the open check and the version bump.

Every change takes the room's row lock first, so changes to one room run one after another
and each reads what the one before it committed. The everyday changes send it with their
change (rooms/services/runner.py); the others lock here: `room_bump` locks, checks and bumps
in one statement (join and the host's actions), `room_hold` locks a room that may not change
(the background work) and `room_bump_held` bumps it once something did.
"""

import functools
from typing import Any

from django.db import connection
from django.utils import timezone

from .. import selectors
from ..errors import ClientError
from ..models import ROOM_OPEN_SQL, Room, room_expiry
from ..protocol import BeforeEvent, StateEvent
from . import statements
from .changes import ROOM_OPEN, Check, verdict_read, verdict_sql
from .states import state_publish

# The room's lock, open check and bump in one UPDATE, whose RETURNING says which check failed
# (`{verdict}`, changes.verdict_sql) on the row as bumped. An activity moves the expiry only of
# an open room, so "open" reads the same after the bump as before it. A refusal bumped the
# version: the caller's atomic block rolls it back when the ClientError leaves it.
_BUMP_SQL = """
UPDATE rooms_room
   SET version = version + 1{expiry}
 WHERE id = %(room)s
RETURNING {verdict}, {columns}
"""
_VERDICT_OF_THE_ROW_SQL = "(SELECT {verdict} FROM rooms_room WHERE rooms_room.id = %(room)s)"
# An activity never shortens a room's life: a deadline keeps it open until the deadline plus
# a minute (rooms/services/deadlines.py), whatever is done meanwhile.
EXPIRY_LATER_SQL = "CASE WHEN expires_at > %(expires)s THEN expires_at ELSE %(expires)s END"
_EXPIRY_SQL = (
    f",\n       expires_at = CASE WHEN {ROOM_OPEN_SQL} THEN {EXPIRY_LATER_SQL} ELSE expires_at END"
)


def bump_params(room_id: str) -> dict[str, Any]:
    """The parameters of a room's bump: its id (refused unless it has the shape of one), the
    time its checks are judged at, its new expiry, and nobody acting (`by`) yet."""
    if not selectors.ROOM_ID_SHAPE.fullmatch(room_id):
        # Never hand the database text it may choke on: a malformed id is an unknown one.
        raise ClientError("room_not_found")
    now = timezone.now()
    return {"room": room_id, "now": now, "expires": room_expiry(now), "by": None}


@functools.lru_cache(maxsize=64)
def bump_sql(
    checks: tuple[Check, ...],
    *,
    vendor: str,
    activity: bool = True,
    also: str = "",
    sets: str = "",
) -> str:
    """The UPDATE that locks, checks and bumps the room; `checks` say why a room may not
    change, `also` adds columns to what it returns, after the room's own, `sets` more
    assignments (a Change's `bump`). Made once each."""
    returned = statements.columns(Room) + (f", {also}" if also else "")
    expiry = (_EXPIRY_SQL if activity else "") + (f",\n       {sets}" if sets else "")
    verdict = verdict_sql(checks)
    if vendor == "sqlite":
        # SQLite (3.40) answers `column IS NULL` wrongly in an UPDATE's RETURNING (0 for the
        # NULL closed_at of an open room); a subquery reads the row, as updated, correctly.
        verdict = _VERDICT_OF_THE_ROW_SQL.format(verdict=verdict)
    return _BUMP_SQL.format(expiry=expiry, verdict=verdict, columns=returned)


def room_bump(room_id: str) -> Room:
    """Lock the room, check that it is open and bump its version (and expiry): one statement.

    Later statements of the transaction read with a fresh snapshot, after any change that
    held the lock before us had committed."""
    sql = bump_sql((ROOM_OPEN,), vendor=connection.vendor)
    rows = statements.execute(sql, bump_params(room_id))
    return statements.row_to_model(Room, verdict_read(rows))


def room_hold(room_id: str) -> Room:
    """The room, locked for this transaction, if it is still open (no version bump)."""
    return selectors.room_get_open(room_id=room_id, for_update=True)


def room_bump_held(
    room: Room,
    *,
    activity: bool = True,
    changed_fields: tuple[str, ...] = (),
    before: tuple[BeforeEvent, ...] = (),
    presence: bool = False,
) -> StateEvent:
    """After `room_hold`: bump the version (and the expiry, for user activity), save the
    changed fields and publish the state; return it. For the services that lock first and
    then find out whether anything changes (the background ones)."""
    room.version += 1
    fields = ["version", *changed_fields]
    if activity:
        room.expires_at = max(room.expires_at, room_expiry())  # EXPIRY_LATER_SQL
        fields.append("expires_at")
    room.save(update_fields=fields)
    return state_publish(room, before=before, presence=presence)


def room_fields_save(room: Room, *fields: str) -> None:
    """Write these fields of a room locked by `room_bump` (its version is written)."""
    Room.objects.filter(pk=room.pk).update(**{f: getattr(room, f) for f in fields})
