"""Deciding on time: the host's deadline, the early finish when everyone is done, and the
end of a runoff; each exactly once, whichever process gets there.

A deadline and a runoff's end are columns of the room (`deadline_at`, `runoff_ends_at`),
so they outlive any process. Every process polls for the ones that are due
(`rooms_due_settle`, about once a second, one probe of a partial index:
rooms/realtime/deadlines.py) and settles each in a transaction whose first statement claims
it: an UPDATE that clears the column where it is still set, so of several processes (and of
a poll and an early finish) exactly one gets the row, and the others find nothing to do.
A process that dies after its claim rolls it back, and the next poll, on any process,
claims it again. The claim bumps the room's version; it is not activity.

The early finishes are read from the state a change produced (`settle_needed`): everyone
online done while a deadline is set, or everyone online holding a runoff vote; then
`room_settle` claims and checks again under the lock.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from .. import selectors
from ..errors import ClientError
from ..models import Item, Room
from ..protocol import StateEvent
from . import statements
from .host import host_required
from .locking import room_bump, room_fields_save
from .picks import auto_decide, everyone_voted_among, runoff_decide, runoff_everyone_voted
from .states import state_publish

log = logging.getLogger(__name__)

DEADLINE_MIN_SECONDS = 30
DEADLINE_MAX_SECONDS = 3600
# The room stays open at least this long after its deadline, to show what was decided.
DEADLINE_KEEPS_ROOM_SECONDS = 60


# --- Setting it ------------------------------------------------------------------


def deadline_set(*, room_id: str, at: datetime | None, participant_id: int | None) -> StateEvent:
    """Set the room's deadline to `at` (None: no deadline); return the new state.

    `participant_id` None is the system (a scheduler): no host check; anyone else but the
    host is told not_host. It is activity, and the room stays open until at least a minute
    after `at`. An `at` already past is decided at the next poll.
    """
    with transaction.atomic():
        room = room_bump(room_id)
        if participant_id is not None:
            host_required(room, participant_id)
        room.deadline_at = at
        fields = ["deadline_at"]
        if at is not None:
            keep = at + timedelta(seconds=DEADLINE_KEEPS_ROOM_SECONDS)
            if keep > room.expires_at:
                room.expires_at = keep
                fields.append("expires_at")
        room_fields_save(room, *fields)
        log.info("deadline %s room=%s", "set" if at else "cleared", room.pk)
        return state_publish(room)


def room_deadline(*, room_id: str, participant_id: int, seconds: object) -> StateEvent:
    """The host's `deadline` action: decide in `seconds` (an integer, 30-3600) or, with None,
    not at all. A non-host is told not_host before anyone is told invalid_deadline."""
    if seconds is not None and not _deadline_seconds_valid(seconds):
        host_required(selectors.room_get_open(room_id=room_id), participant_id)
        raise ClientError("invalid_deadline")
    at = None
    if isinstance(seconds, int):
        at = timezone.now() + timedelta(seconds=seconds)
    return deadline_set(room_id=room_id, at=at, participant_id=participant_id)


def _deadline_seconds_valid(seconds: object) -> bool:
    # bool is an int in Python, not in JSON: `"seconds": true` is not a number of seconds.
    return (
        isinstance(seconds, int)
        and not isinstance(seconds, bool)
        and DEADLINE_MIN_SECONDS <= seconds <= DEADLINE_MAX_SECONDS
    )


# --- Claiming what is due ----------------------------------------------------------

# Clear the column where it is still set (and due, unless early), bump the version, lock the
# row: the claim. No row: another process (or an early finish) got there first.
_CLAIM_SQL = """
UPDATE rooms_room SET version = version + 1, {column} = NULL
 WHERE id = %(room)s AND {column} IS NOT NULL{due}
RETURNING {columns}
"""
_DUE_CONDITION = " AND {column} <= %(now)s"


def _claimed(room_id: str, column: str, *, early: bool) -> Room | None:
    """The room, locked, with `column` cleared and its version bumped; None if not ours."""
    due = "" if early else _DUE_CONDITION.format(column=column)
    sql = _CLAIM_SQL.format(column=column, due=due, columns=statements.columns(Room))
    rows = statements.execute(sql, {"room": room_id, "now": timezone.now()})
    if not rows:
        return None
    room = statements.row_to_model(Room, rows[0])
    if not room.is_open:
        log.info("%s cleared on a room no longer open room=%s", column, room_id)
        return None  # nothing to tell anyone: the column is cleared, so it is not polled again
    return room


def deadline_fire(*, room_id: str, early: bool = False) -> StateEvent | None:
    """The room's deadline has passed (or, `early`, everyone online is done): the server
    decides by itself (picks.auto_decide). None if another process did, or it no longer
    applies. While a runoff runs, the deadline just ends: the runoff decides."""
    with transaction.atomic():
        room = _claimed(room_id, "deadline_at", early=early)
        if room is None:
            return None
        state = selectors.room_state(room=room)
        if early and not _all_done(state):
            transaction.set_rollback(True)  # someone took it back meanwhile
            return None
        if room.runoff_ends_at is not None:
            return state_publish(room, state)
        log.info("deadline reached room=%s early=%s", room.pk, early)
        return auto_decide(room, state)


def runoff_end(*, room_id: str, early: bool = False) -> StateEvent | None:
    """The room's runoff is over (time is up or, `early`, everyone online voted): the most
    voted of its items wins. None if another process ended it."""
    with transaction.atomic():
        room = _claimed(room_id, "runoff_ends_at", early=early)
        if room is None:
            return None
        items = list(
            Item.objects.filter(room_id=room.pk, runoff=True).values_list("name", flat=True)
        )
        state = selectors.room_state(room=room)
        if early and not everyone_voted_among(state, items):
            transaction.set_rollback(True)  # someone left or took a vote back
            return None
        return runoff_decide(room, state, items)


def everyone_done(state: StateEvent) -> bool:
    """A deadline is set and everyone online, two at least, said they are done."""
    return bool(state["room"].get("deadline")) and _all_done(state)


def _all_done(state: StateEvent) -> bool:
    people = state["participants"]
    return len(people) >= 2 and all(p["done"] for p in people)


def settle_needed(state: StateEvent) -> bool:
    """The state a change produced says the room can be decided now: everyone is done before
    the deadline, or everyone voted in the runoff. Read from the state, so asking costs no
    statement."""
    return everyone_done(state) or runoff_everyone_voted(state)


def room_settle(*, room_id: str, state: StateEvent) -> StateEvent | None:
    """After a change whose state `settle_needed`: end the runoff or fire the deadline early."""
    if runoff_everyone_voted(state):
        return runoff_end(room_id=room_id, early=True)
    if everyone_done(state):
        return deadline_fire(room_id=room_id, early=True)
    return None


# --- The poll -----------------------------------------------------------------------

# At most 50 rooms per poll (the rest are the next poll's). Both conditions imply their
# column is set, so each is answered by its partial index.
_DUE_SQL = """
SELECT id, CASE WHEN runoff_ends_at <= %(now)s THEN 1 ELSE 0 END
  FROM rooms_room
 WHERE deadline_at <= %(now)s OR runoff_ends_at <= %(now)s
 LIMIT 50
"""


def rooms_due_settle() -> int:
    """Settle every room whose deadline or runoff is due (run by every process about once a
    second); return how many were claimed here. A room already settled by another process
    is skipped at its claim."""
    settled = 0
    for room_id, runoff_due in statements.execute(_DUE_SQL, {"now": timezone.now()}):
        try:
            settle = runoff_end if runoff_due else deadline_fire
            done = settle(room_id=room_id)
        except ClientError as error:  # purged meanwhile
            log.info("due room not settled room=%s: %s", room_id, error.code)
            continue
        settled += done is not None
    return settled
