"""What every service shares: the room lock and bump, raw SQL, the state broadcast."""

import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.utils import timezone
from psycopg.pq import ExecStatus, TransactionStatus

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
    rows = _execute(*_bump_statement(room_id, activity=activity, by=by))
    return _bumped_room(rows, room_id=room_id, by=by)


def _bump_statement(
    room_id: str, *, activity: bool, by: int | None, also: str = ""
) -> tuple[str, dict]:
    """The UPDATE that locks, checks and bumps the room (`_lock_and_bump`), with its parameters;
    `also` adds columns to what it returns, after the room's own."""
    if not selectors.ROOM_ID_SHAPE.fullmatch(room_id):
        raise ClientError("room_not_found")
    now = timezone.now()
    params = {"room": room_id, "now": now, "by": by}
    expiry = ""
    if activity:
        params["expires"] = now + timedelta(seconds=settings.ROOM_TTL_SECONDS)
        expiry = ", expires_at = %(expires)s"
    not_kicked = _NOT_KICKED_SQL if by is not None else ""
    columns = _room_columns() + (f", {also}" if also else "")
    return _BUMP_SQL.format(expiry=expiry, not_kicked=not_kicked, columns=columns), params


def _bumped_room(rows: list[tuple], *, room_id: str, by: int | None) -> Room:
    """The room the bump returned, or the ClientError that says why it returned none."""
    if rows:
        return _from_row(Room, rows[0])
    selectors.room_get_open(room_id=room_id)  # room_not_found or room_expired
    if by is not None and Participant.objects.filter(pk=by, kicked_at__isnull=False).exists():
        raise ClientError("kicked")
    raise ClientError("room_expired")  # it expired between the two reads


@dataclass(frozen=True)
class _Applied:
    """A change sent together with the room's bump and state read (`_bump_and_apply`)."""

    room: Room  # locked and bumped
    changed: list[list[tuple]]  # the rows each of the change's statements returned
    state_rows: list[tuple]  # the state read's, after the change


def _bump_and_apply(room_id: str, *statements: tuple[str, dict], by: int | None) -> _Applied:
    """Lock and bump the room, run the change's statements, read the new state: one round trip.

    The three go out together (`_sent_together`), so every statement runs before any rule
    is checked: the caller checks what came back (the room, the change's rows) and raises
    ClientError, which rolls the change back with the bump, exactly as if it had never been
    tried. Each statement still runs after the room's lock, with a snapshot of its own.

    The room's lunch group is known only once the bump answers, so the bump returns the
    group's slug and name too and the state read is sent without its group part: looking
    the group up through rooms_room inside the read would scan that table
    (tests/test_state_plan.py).
    """
    with _sent_together() as send:
        bumped = send(*_bump_statement(room_id, activity=True, by=by, also=_GROUP_COLUMNS))
        changed = [send(sql, params) for sql, params in statements]
        state = send(*selectors.room_state_query(room_id=room_id, group_id=None))
    room = _bumped_room(bumped.rows, room_id=room_id, by=by)  # the room's columns come first
    state_rows = state.rows
    slug, name = bumped.rows[0][-2:]
    if slug is not None:
        state_rows = [*state_rows, selectors.room_state_group_row(slug=slug, name=name)]
    return _Applied(room=room, changed=[c.rows for c in changed], state_rows=state_rows)


# The room's lunch group, by key, for `_bump_and_apply`: slug and name (NULL without one).
_GROUP_COLUMNS = (
    "(SELECT g.slug FROM rooms_group g WHERE g.id = rooms_room.group_id),"
    " (SELECT g.name FROM rooms_group g WHERE g.id = rooms_room.group_id)"
)


def _broadcast_applied(applied: _Applied) -> StateEvent:
    """The state `_bump_and_apply` read, sent after the commit; return it."""
    state = selectors.room_state_from_rows(room=applied.room, rows=applied.state_rows)
    broadcast.state_on_commit(group=applied.room.group_name, state=state)
    return state


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
    with connection.cursor() as cursor:
        cursor.execute(sql, _adapted(params))
        return cursor.fetchall() if cursor.description else []


def _adapted(params: dict) -> dict:
    for name, value in params.items():
        if isinstance(value, datetime):
            params[name] = connection.ops.adapt_datetimefield_value(value)
    return params


class _Sent:
    """A statement sent with others; `rows` (RETURNING or SELECT), once they have all run."""

    rows: list[tuple]


@contextmanager
def _sent_together() -> Iterator[Callable[[str, dict], _Sent]]:
    """Send statements of the open transaction together; their rows are there when the block ends.

    On PostgreSQL they go out in pipeline mode: the BEGIN, every statement and a Sync are
    sent without waiting for any answer, and the answers come back together. One after
    another, each statement was a round trip of its own, and under load each waited for the
    server's process and then for the GIL (docs/performance.md). PostgreSQL still runs them
    one after another, each with its own snapshot, so nothing reads differently. A statement
    that fails raises here, as Django's DatabaseError, once all have been answered (the
    server skips the ones after it); the transaction is then left to roll back. SQLite, in
    process, runs each at once.
    """
    pipelined = connection.vendor == "postgresql"
    sent: list[tuple[_Sent, object]] = []

    def send(sql: str, params: dict) -> _Sent:
        statement = _Sent()
        if not pipelined:
            statement.rows = _execute(sql, params)
            return statement
        cursor = cursors.enter_context(connection.cursor())
        cursor.execute(sql, _adapted(params))
        sent.append((statement, cursor))
        return statement

    with ExitStack() as cursors:
        if not pipelined:
            yield send
            return
        connection.ensure_connection()
        raw = connection.connection
        with connection.wrap_database_errors:
            opening = _begin_with_the_statements(raw)
            # Leaving the pipeline sends a Sync and reads every answer: the one round trip.
            with raw.pipeline():
                if opening:
                    raw.execute(opening, prepare=False)
                yield send
        for statement, cursor in sent:
            # pgresult, not description: psycopg builds description's columns anew on each read.
            returned = cursor.pgresult.status == ExecStatus.TUPLES_OK
            statement.rows = cursor.fetchall() if returned else []


def _save(room: Room, *fields: str) -> None:
    """Write these fields of a room locked by `_lock_and_bump` (its version is written)."""
    Room.objects.filter(pk=room.pk).update(**{f: getattr(room, f) for f in fields})


def _begin_with_the_statements(raw: psycopg.Connection) -> str | None:
    """The BEGIN to send as the pipeline's first statement, if the transaction is not open yet.

    psycopg opens a transaction with a BEGIN of its own and, in pipeline mode, waits for
    its answer before sending anything after it: a round trip of its own. So the
    connection is switched to autocommit for the rest of this transaction, and our BEGIN
    goes out with the statements. psycopg's COMMIT and ROLLBACK look at the server's
    transaction status, not at autocommit, so Django's atomic block ends the transaction
    as usual, and then sets autocommit back as it always does.
    """
    if connection.get_autocommit() or raw.pgconn.transaction_status != TransactionStatus.IDLE:
        return None  # outside atomic (nothing to open), or already open
    raw.autocommit = True
    level = raw.isolation_level
    return "BEGIN" if level is None else f"BEGIN ISOLATION LEVEL {level.name.replace('_', ' ')}"
