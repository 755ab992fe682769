"""Items and marks: add, remove, vote and veto. Each is a Change whose checks are its rules."""

import json
import logging
from collections.abc import Sequence

from django.conf import settings

from .. import text
from ..models import Mark
from ..protocol import StateEvent
from .changes import Change, Check
from .picks import RUNOFF_NOT_RUNNING
from .runner import change_run

log = logging.getLogger(__name__)

# The item named by %(key)s is on this room's list.
_ITEM_THERE = "EXISTS (SELECT 1 FROM rooms_item WHERE room_id = rooms_room.id AND key = %(key)s)"

# --- Add -------------------------------------------------------------------------

# Checked after the room's lock, so concurrent adds to one room wait for each other: the cap
# and the key's uniqueness hold (the constraint on the key backs the check up).
_ITEM_ADD_CHECKS = (
    RUNOFF_NOT_RUNNING,
    Check("room_locked", "NOT rooms_room.locked"),
    Check("duplicate_item", f"NOT {_ITEM_THERE}"),
    Check(
        "too_many_items",
        "(SELECT COUNT(*) FROM rooms_item WHERE room_id = rooms_room.id) < %(max)s",
    ),
)
_ITEM_ADD_SQL = Change.spelled_once("""
INSERT INTO rooms_item (room_id, name, key, added_by_id, added_at, tags)
SELECT room.id, %(name)s, %(key)s, %(by)s, %(now)s, %(tags)s FROM room
RETURNING id
""")


def tags_column(tags: Sequence[str]) -> str:
    """Tags (or avoids) as their column keeps them: a JSON array of strings."""
    return json.dumps(list(tags), ensure_ascii=False)


def item_add_change(*, name: str, tags: Sequence[str] = ()) -> Change:
    """A new item on the list (with its tags), unless the list is locked, has it already or
    is full. The tags go in with it: no statement more than an add without them."""
    item_name = text.item_name(name)  # empty_item, item_too_long
    tag_names = text.tag_names(list(tags), at_most=text.TAGS_PER_ITEM)  # invalid_tag
    params = {
        "name": item_name,
        "key": text.item_key(item_name),
        "max": settings.ROOM_MAX_ITEMS,
        "tags": tags_column(tag_names),
    }
    # Something new to look at: everyone's `done` lapses (written with the room's bump).
    return Change(_ITEM_ADD_SQL, params, _ITEM_ADD_CHECKS, bump=_DONE_RESET)


_DONE_RESET = "done_reset_at = %(now)s"


def item_add(
    *, room_id: str, participant_id: int, name: str, tags: Sequence[str] = ()
) -> StateEvent:
    """Put a new item on the room's list, with its tags."""
    return change_run(room_id, item_add_change(name=name, tags=tags), by=participant_id)


# --- Tag -------------------------------------------------------------------------

_ITEM_TAG_CHECKS = (Check("unknown_item", _ITEM_THERE),)
_ITEM_TAG_SQL = Change.spelled_once(
    "UPDATE rooms_item SET tags = %(tags)s"
    " WHERE room_id IN (SELECT id FROM room) AND key = %(key)s RETURNING id"
)


def item_tag_change(*, name: str, tags: Sequence[str]) -> Change:
    """The item's tags replaced (none: cleared), if it is on the list."""
    tag_names = text.tag_names(list(tags), at_most=text.TAGS_PER_ITEM)  # invalid_tag
    params = {"key": text.item_key(name), "tags": tags_column(tag_names)}
    return Change(_ITEM_TAG_SQL, params, _ITEM_TAG_CHECKS)


def item_tag(*, room_id: str, participant_id: int, name: str, tags: Sequence[str]) -> StateEvent:
    """Replace an item's tags (anyone may: the list is shared)."""
    return change_run(room_id, item_tag_change(name=name, tags=tags), by=participant_id)


# --- Remove ----------------------------------------------------------------------

_ITEM_REMOVE_CHECKS = (
    RUNOFF_NOT_RUNNING,
    # The locked list is the host's to trim.
    Check("room_locked", "NOT rooms_room.locked OR rooms_room.host_id = %(by)s"),
    Check("unknown_item", _ITEM_THERE),
)
_ITEM_REMOVE_SQL = {
    # PostgreSQL: the item and its marks in one statement.
    "postgresql": (
        """doomed AS (SELECT id FROM rooms_item
                       WHERE room_id IN (SELECT id FROM room) AND key = %(key)s)""",
        "marks AS (DELETE FROM rooms_mark WHERE item_id IN (SELECT id FROM doomed))",
        "change AS (DELETE FROM rooms_item WHERE id IN (SELECT id FROM doomed) RETURNING id)",
    ),
    "sqlite": (
        """
        DELETE FROM rooms_mark WHERE item_id IN
          (SELECT id FROM rooms_item WHERE room_id = %(room)s AND key = %(key)s)
        """,
        "DELETE FROM rooms_item WHERE room_id = %(room)s AND key = %(key)s RETURNING id",
    ),
}


def item_remove_change(*, name: str) -> Change:
    """The item and every vote and veto of it off the list, if it is there and not locked."""
    return Change(_ITEM_REMOVE_SQL, {"key": text.item_key(name)}, _ITEM_REMOVE_CHECKS)


def item_remove(*, room_id: str, participant_id: int, name: str) -> StateEvent:
    """Take an item, and every vote and veto of it, off the list."""
    return change_run(room_id, item_remove_change(name=name), by=participant_id)


# --- Vote and veto ---------------------------------------------------------------

_MARK_TOGGLE_CHECKS = (
    Check("unknown_item", _ITEM_THERE),
    # While a runoff runs, a vote is for one of its items (a veto for anything).
    Check(
        "not_in_runoff",
        "rooms_room.runoff_ends_at IS NULL OR %(kind)s <> 'vote' OR EXISTS (SELECT 1"
        " FROM rooms_item WHERE room_id = rooms_room.id AND key = %(key)s AND runoff)",
    ),
)
# In a runoff a participant holds one vote: a vote for another of its items moves it (the
# `moved` part, the second half of SQLite's DELETE). Only a runoff's items are flagged, so
# outside one that matches nothing.
_MARK_TOGGLE_SQL = {
    # PostgreSQL: delete the mark, or add it if there was none, in one statement (and, in a
    # runoff, the participant's vote for another of its items once this one is added).
    "postgresql": (
        """item AS (SELECT id FROM rooms_item
                     WHERE room_id IN (SELECT id FROM room) AND key = %(key)s)""",
        """gone AS (DELETE FROM rooms_mark
                     WHERE item_id IN (SELECT id FROM item)
                       AND participant_id = %(by)s AND kind = %(kind)s
                    RETURNING id)""",
        """added AS (INSERT INTO rooms_mark (item_id, participant_id, kind, created_at)
                     SELECT id, %(by)s, %(kind)s, %(now)s FROM item
                      WHERE NOT EXISTS (SELECT 1 FROM gone)
                     ON CONFLICT DO NOTHING
                     RETURNING id)""",
        """moved AS (DELETE FROM rooms_mark
                     WHERE participant_id = %(by)s AND EXISTS (SELECT 1 FROM added)
                       AND %(kind)s = 'vote'
                       AND item_id IN (SELECT id FROM rooms_item
                                        WHERE room_id IN (SELECT id FROM room)
                                          AND runoff AND key <> %(key)s))""",
    ),
    # SQLite has no data-modifying WITH: the same in two statements. The mark is added
    # unless the participant has it; changes() is the number of rows that INSERT added, so
    # the DELETE takes the mark back only if there was one already (else, in a runoff, the
    # participant's vote for another of its items).
    "sqlite": (
        """
        INSERT INTO rooms_mark (item_id, participant_id, kind, created_at)
        SELECT id, %(by)s, %(kind)s, %(now)s FROM rooms_item
         WHERE room_id = %(room)s AND key = %(key)s
        ON CONFLICT DO NOTHING
        RETURNING id
        """,
        """
        DELETE FROM rooms_mark
         WHERE participant_id = %(by)s AND kind = %(kind)s
           AND (item_id = (SELECT id FROM rooms_item WHERE room_id = %(room)s AND key = %(key)s)
                AND changes() = 0
                OR changes() = 1 AND %(kind)s = 'vote'
                AND item_id IN (SELECT id FROM rooms_item
                                 WHERE room_id = %(room)s AND runoff AND key <> %(key)s))
        RETURNING id
        """,
    ),
}


def mark_toggle_change(*, name: str, kind: Mark.Kind) -> Change:
    """The participant's vote for (or veto of) an item taken back, or given if there was none."""
    return Change(
        _MARK_TOGGLE_SQL, {"key": text.item_key(name), "kind": str(kind)}, _MARK_TOGGLE_CHECKS
    )


def mark_toggle(*, room_id: str, participant_id: int, name: str, kind: Mark.Kind) -> StateEvent:
    """Toggle the participant's vote for (or veto of) an item."""
    return change_run(room_id, mark_toggle_change(name=name, kind=kind), by=participant_id)
