"""Items and marks: add, remove, vote and veto; renaming a participant."""

import logging

from django.conf import settings
from django.db import transaction

from .. import text
from ..errors import ClientError
from ..models import Item, Mark
from ..protocol import StateEvent
from ._core import Change, _broadcast_applied, _bump_and_apply

log = logging.getLogger(__name__)


_RENAME_SQL = Change.spelled_once(
    "UPDATE rooms_participant SET name = %(name)s"
    " WHERE id = %(by)s AND room_id IN (SELECT id FROM room) RETURNING id"
)


def participant_rename_change(*, name: str) -> Change:
    return Change(_RENAME_SQL, {"name": text.participant_name(name)})


def participant_rename(*, room_id: str, participant_id: int, name: str) -> StateEvent:
    """Give the participant a new name in this room."""
    change = participant_rename_change(name=name)
    with transaction.atomic():
        applied = _bump_and_apply(room_id, change, by=participant_id)
        if not applied.changed:
            raise ClientError("unknown_participant")  # not one of this room's
        return _broadcast_applied(applied)


# --- Items and marks -------------------------------------------------------------

# The cap and the key's uniqueness are checked by the statement that inserts, after the
# room lock: concurrent adds to one room wait for each other, and the constraint holds.
_ITEM_ADD_SQL = Change.spelled_once("""
INSERT INTO rooms_item (room_id, name, key, added_by_id, added_at)
SELECT room.id, %(name)s, %(key)s, %(by)s, %(now)s FROM room
 WHERE (SELECT COUNT(*) FROM rooms_item WHERE room_id = room.id) < %(max)s
ON CONFLICT DO NOTHING
RETURNING id
""")


def item_add_change(*, name: str) -> Change:
    item_name = text.item_name(name)
    params = {"name": item_name, "key": text.item_key(item_name), "max": settings.ROOM_MAX_ITEMS}
    return Change(_ITEM_ADD_SQL, params, room_allows="NOT locked")


def item_add(*, room_id: str, participant_id: int, name: str) -> StateEvent:
    """Put a new item on the room's list."""
    change = item_add_change(name=name)
    with transaction.atomic():
        applied = _bump_and_apply(room_id, change, by=participant_id)
        if applied.room.locked:
            raise ClientError("room_locked")
        if not applied.changed:
            if Item.objects.filter(room_id=room_id, key=change.params["key"]).exists():
                raise ClientError("duplicate_item")
            raise ClientError("too_many_items")
        return _broadcast_applied(applied)


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
    # The locked list is the host's to trim.
    key = text.item_key(name)
    return Change(_ITEM_REMOVE_SQL, {"key": key}, room_allows="NOT locked OR host_id = %(by)s")


def item_remove(*, room_id: str, participant_id: int, name: str) -> StateEvent:
    """Take an item, and every vote and veto of it, off the list."""
    change = item_remove_change(name=name)
    key = change.params["key"]
    with transaction.atomic():
        applied = _bump_and_apply(room_id, change, by=participant_id)
        room = applied.room
        if room.locked and room.host_id != participant_id:
            raise ClientError("room_locked")
        if not key or not applied.changed:
            raise ClientError("unknown_item")
        return _broadcast_applied(applied)


_MARK_TOGGLE_SQL = {
    # PostgreSQL: delete the mark, or add it if there was none, in one statement; a row for
    # a mark taken back or added, none for an unknown item.
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
        "change AS (SELECT id FROM gone UNION ALL SELECT id FROM added)",
    ),
    # SQLite has no data-modifying WITH: the same in two statements. changes() is the number
    # of rows the connection's last statement (the DELETE) removed; the mark is added only
    # if there was none to take back.
    "sqlite": (
        """
        DELETE FROM rooms_mark
         WHERE item_id = (SELECT id FROM rooms_item WHERE room_id = %(room)s AND key = %(key)s)
           AND participant_id = %(by)s AND kind = %(kind)s
        RETURNING id
        """,
        """
        INSERT INTO rooms_mark (item_id, participant_id, kind, created_at)
        SELECT id, %(by)s, %(kind)s, %(now)s FROM rooms_item
         WHERE room_id = %(room)s AND key = %(key)s AND changes() = 0
        ON CONFLICT DO NOTHING
        RETURNING id
        """,
    ),
}


def mark_toggle_change(*, name: str, kind: Mark.Kind) -> Change:
    return Change(_MARK_TOGGLE_SQL, {"key": text.item_key(name), "kind": str(kind)})


def mark_toggle(*, room_id: str, participant_id: int, name: str, kind: Mark.Kind) -> StateEvent:
    """Toggle the participant's vote for (or veto of) an item."""
    change = mark_toggle_change(name=name, kind=kind)
    with transaction.atomic():
        applied = _bump_and_apply(room_id, change, by=participant_id)
        if not applied.changed:
            raise ClientError("unknown_item")
        return _broadcast_applied(applied)
