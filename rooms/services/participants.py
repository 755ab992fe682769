"""A participant's own changes: renaming, and saying whether they are coming."""

import logging
from collections.abc import Sequence

from .. import text
from ..protocol import StateEvent
from .changes import Change, Check
from .items import tags_column
from .runner import change_run

log = logging.getLogger(__name__)

# The actor is one of this room's participants.
_IN_THIS_ROOM = (
    Check(
        "unknown_participant",
        "EXISTS (SELECT 1 FROM rooms_participant WHERE id = %(by)s AND room_id = rooms_room.id)",
    ),
)

_RENAME_SQL = Change.spelled_once(
    "UPDATE rooms_participant SET name = %(name)s"
    " WHERE id = %(by)s AND room_id IN (SELECT id FROM room) RETURNING id"
)


def participant_rename_change(*, name: str) -> Change:
    """The participant's new name (invalid_name if it is not one)."""
    return Change(_RENAME_SQL, {"name": text.participant_name(name)}, _IN_THIS_ROOM)


def participant_rename(*, room_id: str, participant_id: int, name: str) -> StateEvent:
    """Give the participant a new name in this room."""
    return change_run(room_id, participant_rename_change(name=name), by=participant_id)


# Said again, "going" keeps its first time: the headcount lists people in the order they said it.
_GOING_SQL = Change.spelled_once("""
UPDATE rooms_participant
   SET going_since = CASE WHEN %(going)s THEN COALESCE(going_since, %(now)s) END
 WHERE id = %(by)s AND room_id IN (SELECT id FROM room)
RETURNING id
""")


def participant_going_change(*, going: bool) -> Change:
    """Whether the participant is coming; the first time they said so stays."""
    return Change(_GOING_SQL, {"going": going}, _IN_THIS_ROOM)


def participant_going(*, room_id: str, participant_id: int, going: bool) -> StateEvent:
    """I am coming (or not): the headcount keeps the order in which people said it."""
    return change_run(room_id, participant_going_change(going=going), by=participant_id)


# `done` counts while it is later than the room's done_reset_at (an add, a decision).
_DONE_SQL = Change.spelled_once("""
UPDATE rooms_participant SET done_at = CASE WHEN %(done)s THEN %(now)s END
 WHERE id = %(by)s AND room_id IN (SELECT id FROM room)
RETURNING id
""")


def participant_done_change(*, done: bool) -> Change:
    """Whether the participant is done looking at the list."""
    return Change(_DONE_SQL, {"done": done}, _IN_THIS_ROOM)


def participant_done(*, room_id: str, participant_id: int, done: bool) -> StateEvent:
    """I am done (or not): once everyone online is, a deadline fires early
    (rooms/services/deadlines.py, after the change)."""
    return change_run(room_id, participant_done_change(done=done), by=participant_id)


# --- Can't eat -------------------------------------------------------------------

_AVOID_SQL = Change.spelled_once(
    "UPDATE rooms_participant SET avoids = %(avoids)s"
    " WHERE id = %(by)s AND room_id IN (SELECT id FROM room) RETURNING id"
)


def participant_avoid_change(*, tags: Sequence[str]) -> Change:
    """What the participant can't eat, replaced (none: cleared); invalid_tag past 5."""
    avoids = text.tag_names(list(tags), at_most=text.AVOIDS_PER_PARTICIPANT)
    return Change(_AVOID_SQL, {"avoids": tags_column(avoids)}, _IN_THIS_ROOM)


def participant_avoid(*, room_id: str, participant_id: int, tags: Sequence[str]) -> StateEvent:
    """What I can't eat: every draw skips the items tagged with it while I am here or coming."""
    return change_run(room_id, participant_avoid_change(tags=tags), by=participant_id)
