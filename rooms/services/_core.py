"""What every service shares: the room lock and bump, raw SQL, the state broadcast."""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.utils import timezone

from .. import broadcast, selectors
from ..errors import ClientError
from ..models import Participant, Room
from ..protocol import PickedEvent, StateEvent

log = logging.getLogger(__name__)


_BUMP_SQL = """
UPDATE rooms_room SET version = version + 1{expiry}
 WHERE id = %(room)s AND closed_at IS NULL AND expires_at > %(now)s{not_kicked}
RETURNING {columns}
"""
# The acting participant was not removed by the host: a kicked connection whose `kicked`
# was lost (Redis) is refused here, in the same statement, until its heartbeat hangs it up.
_NOT_KICKED_SQL = """
   AND NOT EXISTS (SELECT 1 FROM rooms_participant WHERE id = %(by)s AND kicked_at IS NOT NULL)"""


def _lock_and_bump(room_id: str, *, activity: bool = True, by: int | None = None) -> Room:
    """Lock the room, check that it is open (and that `by` was not kicked), bump its version.

    One statement. User activity also moves the expiry. Later statements of the transaction
    read with a fresh snapshot, after any change that held the lock before us had committed.
    """
    if not selectors.ROOM_ID_SHAPE.fullmatch(room_id):
        raise ClientError("room_not_found")
    now = timezone.now()
    params = {"room": room_id, "now": now, "by": by}
    expiry = ""
    if activity:
        params["expires"] = now + timedelta(seconds=settings.ROOM_TTL_SECONDS)
        expiry = ", expires_at = %(expires)s"
    not_kicked = _NOT_KICKED_SQL if by is not None else ""
    sql = _BUMP_SQL.format(expiry=expiry, not_kicked=not_kicked, columns=_room_columns())
    room = _room_returned(sql, params)
    if room is None:
        selectors.room_get_open(room_id=room_id)  # room_not_found or room_expired
        if by is not None and Participant.objects.filter(pk=by, kicked_at__isnull=False).exists():
            raise ClientError("kicked")
        raise ClientError("room_expired")  # it expired between the two reads
    return room


def _room_columns() -> str:
    return _columns(Room)


def _columns(model, prefix: str = "") -> str:
    """The model's columns, in field order, for a RETURNING or SELECT list of ours."""
    return ", ".join(prefix + field.column for field in model._meta.concrete_fields)


def _room_returned(sql: str, params: dict) -> Room | None:
    """The Room a statement `RETURNING _room_columns()` returned, or None."""
    rows = _execute(sql, params)
    return _from_row(Room, rows[0]) if rows else None


def _from_row(model, row: tuple):
    """A model instance from a row of `_columns(model)` (and anything after them), as the
    ORM builds one (Model.from_db, the backend's converters) but without a queryset: on
    every change, a queryset's compiling cost more than its statement."""
    db = connections[DEFAULT_DB_ALIAS]
    fields = model._meta.concrete_fields
    values = list(row[: len(fields)])
    for index, field, converters in _converters(model, db):
        for converter in converters:
            values[index] = converter(values[index], field, db)
    return model.from_db(db.alias, [field.attname for field in fields], values)


_converters_by_model: dict[tuple, list] = {}


def _converters(model, db) -> list:
    """(column index, field, converters) for each of the model's columns the backend converts."""
    key = (model, db.vendor)
    if key not in _converters_by_model:
        found = []
        for index, field in enumerate(model._meta.concrete_fields):
            column = field.get_col(model._meta.db_table)
            converters = db.ops.get_db_converters(column) + field.get_db_converters(db)
            if converters:
                found.append((index, field, converters))
        _converters_by_model[key] = found
    return _converters_by_model[key]


def _broadcast_state(
    room: Room, *, before: tuple[PickedEvent, ...] = (), presence: bool = False
) -> StateEvent:
    """Read the room's new state and have it sent after the commit; return it."""
    state = selectors.room_state(room=room)
    broadcast.state_on_commit(group=room.group_name, state=state, before=before, presence=presence)
    return state


def _commit_change(
    room: Room,
    *,
    activity: bool = True,
    changed_fields: tuple[str, ...] = (),
    before: tuple[PickedEvent, ...] = (),
    presence: bool = False,
) -> StateEvent:
    """After `_lock_open_room`: bump the version (and the expiry, for user activity), save the
    changed fields and broadcast; return the state. For the services that lock first and
    then find out whether anything changes (the background ones); the others bump as they
    lock (`_lock_and_bump`)."""
    room.version += 1
    fields = ["version", *changed_fields]
    if activity:
        room.expires_at = timezone.now() + timedelta(seconds=settings.ROOM_TTL_SECONDS)
        fields.append("expires_at")
    room.save(update_fields=fields)
    state = selectors.room_state(room=room)
    broadcast.state_on_commit(group=room.group_name, state=state, before=before, presence=presence)
    return state


def _lock_open_room(room_id: str) -> Room:
    """The room, locked for this transaction, if it is still open (no version bump)."""
    return selectors.room_get_open(room_id=room_id, for_update=True)


def _execute(sql: str, params: dict) -> list[tuple]:
    """Run one statement of ours; its rows (RETURNING), if any."""
    for name, value in params.items():
        if isinstance(value, datetime):
            params[name] = connection.ops.adapt_datetimefield_value(value)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def _save(room: Room, *fields: str) -> None:
    """Write these fields of a room locked by `_lock_and_bump` (its version is written)."""
    Room.objects.filter(pk=room.pk).update(**{f: getattr(room, f) for f in fields})
