"""What every service shares: the room lock and bump, raw SQL, the state broadcast."""

import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import psycopg
from django.conf import settings
from django.db import connection
from django.db.backends.utils import CursorWrapper
from django.utils import timezone
from psycopg.pq import ExecStatus, TransactionStatus

from .. import backend, broadcast, selectors
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
class Change:
    """What an action writes, as SQL that reads `room`: the room's id, if the room is open, the
    actor was not kicked and `room_allows` (SQL on rooms_room's columns) holds.

    `sql` gives each database's spelling. PostgreSQL: WITH parts, the last named `change`,
    which returns a row if anything changed; they go out as one statement with the room's
    bump, which happens only then. SQLite: statements, run one by one after the bump; a row
    from any of them means something changed.
    """

    sql: dict[str, tuple[str, ...]]
    params: dict
    room_allows: str = "TRUE"

    @staticmethod
    def spelled_once(statement: str) -> dict[str, tuple[str, ...]]:
        """`sql` for a single statement that both databases understand."""
        return {"postgresql": (f"change AS ({statement})",), "sqlite": (statement,)}


NO_CHANGE = Change(sql={"postgresql": (), "sqlite": ()}, params={})  # the bump is the change

# The room a change may write to: open, and the actor not kicked (`%(by)s` NULL: nobody).
_OPEN_ROOM_CTE = """room AS (
  SELECT id FROM rooms_room
   WHERE id = %(room)s AND closed_at IS NULL AND expires_at > %(now)s AND ({allows})
     AND NOT EXISTS
         (SELECT 1 FROM rooms_participant WHERE id = %(by)s AND kicked_at IS NOT NULL))"""

# PostgreSQL: lock the room first, so the statement after it reads everything with a
# snapshot taken once the changes that held the lock before us have committed.
# NO KEY UPDATE, as the bump's own lock: rows that refer to the room may still be inserted.
_LOCK_SQL = "SELECT {columns} FROM rooms_room WHERE id = %(room)s FOR NO KEY UPDATE"

# PostgreSQL: the change, then the bump if it changed something, in one statement.
_CHANGE_AND_BUMP_SQL = """
WITH {open_room}{parts},
     bumped AS (UPDATE rooms_room SET version = version + 1, expires_at = %(expires)s,
                       last_change = COALESCE(%(receipt)s, last_change)
                 WHERE id IN (SELECT id FROM room){if_changed}
                RETURNING {columns})
SELECT * FROM bumped
"""


@dataclass(frozen=True)
class _Applied:
    """A change sent together with the room's bump and state read (`_bump_and_apply`)."""

    room: Room  # locked; bumped if `changed`
    changed: bool  # the change wrote something (or there was none to write: NO_CHANGE)
    state_rows: list[tuple]  # the state read's, after the change


def _bump_and_apply(
    room_id: str, change: Change = NO_CHANGE, *, by: int | None, last: bool = True
) -> _Applied:
    """Lock the room, apply the change, bump the room, read the new state: one round trip.

    The statements go out together (`_sent_together`), so every statement runs before the
    caller checks a rule on what came back and raises ClientError. On PostgreSQL a refused
    change writes nothing at all: the room's conditions are in the change's SQL (`room`)
    and the bump waits for the change. So, when the change is the `last` write of its
    transaction, the COMMIT goes out with the statements too. On SQLite, in process, the
    bump comes first and a refusal rolls the transaction back.

    The room's lunch group is known only once the bump answers, so the bump returns the
    group's slug and name too and the state read is sent without its group part: looking
    the group up through rooms_room inside the read would scan that table
    (tests/test_state_plan.py).
    """
    if connection.vendor != "postgresql":
        return _bump_then_apply(room_id, change, by=by)
    with _sent_together(commit=last) as send:
        locked, bumped, state = (send(*s) for s in pipelined_statements(room_id, change, by=by))
    applied = applied_from(bumped.rows, state.rows)
    if applied is not None:
        return applied
    # Refused, and nothing was written: which rule said no? The room's row is as locked; a
    # kick is read again, since the lock statement's subqueries may predate the lock.
    if not locked.rows:
        raise ClientError("room_not_found")
    room = _from_row(Room, locked.rows[0])
    if not room.is_open:
        raise ClientError("room_expired")
    if by is not None and Participant.objects.filter(pk=by, kicked_at__isnull=False).exists():
        raise ClientError("kicked")
    return _Applied(room=room, changed=False, state_rows=state.rows)


def pipelined_statements(
    room_id: str, change: Change = NO_CHANGE, *, by: int | None, receipt: UUID | None = None
) -> list[tuple[str, dict]]:
    """`_bump_and_apply`'s statements on PostgreSQL: the lock, the change with the bump, the
    state read; the caller sends them between its BEGIN and COMMIT (and `applied_from`
    reads what came back). The bump writes `receipt`, if any, into the room's `last_change`
    (`committed_with` reads it)."""
    _, params = _bump_statement(room_id, activity=True, by=by)  # checks the id's shape
    params.update(change.params, receipt=receipt)
    parts = "".join(f",\n     {part}" for part in change.sql["postgresql"])
    change_and_bump = _CHANGE_AND_BUMP_SQL.format(
        open_room=_OPEN_ROOM_CTE.format(allows=change.room_allows),
        parts=parts,
        if_changed=" AND EXISTS (SELECT 1 FROM change)" if parts else "",
        columns=f"{_room_columns()}, {_GROUP_COLUMNS}",
    )
    state = selectors.room_state_query(room_id=room_id, group_id=None, vendor="postgresql")
    return [(_LOCK_SQL.format(columns=_room_columns()), params), (change_and_bump, params), state]


def applied_from(bumped_rows: list[tuple], state_rows: list[tuple]) -> _Applied | None:
    """What `pipelined_statements` did, from the rows of its bump and its state read; None if
    the change was refused (it wrote nothing: which rule said no is for the service to say)."""
    return _applied(bumped_rows[0], state_rows, changed=True) if bumped_rows else None


def committed_with(room_id: str, receipt: UUID) -> Room | None:
    """The room, if the change whose bump wrote `receipt` has committed; else None.

    For a change sent from the event loop whose connection failed before the answer came
    (rooms/everyday.py): it may have committed or not. None is also the answer if a later
    change from an event loop has committed since and written its own receipt over it; the
    caller then applies the change again, the one case where it can be applied twice.
    """
    return Room.objects.filter(pk=room_id, last_change=receipt).first()


def _bump_then_apply(room_id: str, change: Change, *, by: int | None) -> _Applied:
    """`_bump_and_apply` on SQLite: the bump, then the change, each run as it is sent."""
    bump_sql, params = _bump_statement(room_id, activity=True, by=by, also=_GROUP_COLUMNS)
    params.update(change.params)
    with _sent_together() as send:
        bumped = send(bump_sql, params)
        open_room = "WITH " + _OPEN_ROOM_CTE.format(allows=change.room_allows)
        changed = [send(f"{open_room}\n{sql}", params) for sql in change.sql["sqlite"]]
        state = send(*selectors.room_state_query(room_id=room_id, group_id=None))
    _bumped_room(bumped.rows, room_id=room_id, by=by)  # a room-level refusal raises here
    wrote = any(c.rows for c in changed) or not change.sql["sqlite"]
    return _applied(bumped.rows[0], state.rows, changed=wrote)


def _applied(bumped_row: tuple, state_rows: list[tuple], *, changed: bool) -> _Applied:
    """The bumped room (its columns, then its group's slug and name) and its state."""
    room = _from_row(Room, bumped_row)
    slug, name = bumped_row[-2:]
    if slug is not None:
        state_rows = [*state_rows, selectors.room_state_group_row(slug=slug, name=name)]
    return _Applied(room=room, changed=changed, state_rows=state_rows)


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
    db = backend.converting_wrapper()  # not `connection`: this runs on the event loop too
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
def _sent_together(*, commit: bool = False) -> Iterator[Callable[[str, dict], _Sent]]:
    """Send statements of the open transaction together; their rows are there when the block ends.

    On PostgreSQL they go out in pipeline mode: the BEGIN, every statement and a Sync are
    sent without waiting for any answer, and the answers come back together. One after
    another, each statement was a round trip of its own, and under load each waited for the
    server's process and then for the GIL (docs/performance.md). PostgreSQL still runs them
    one after another, each with its own snapshot, so nothing reads differently. A statement
    that fails raises here, as Django's DatabaseError, once all have been answered (the
    server skips the ones after it); the transaction is then left to roll back. SQLite, in
    process, runs each at once.

    With `commit`, the pipeline ends with COMMIT if it opened the transaction for the only
    atomic block (a block inside another leaves it to the outer one): nothing may be
    written in it afterwards (the rest of the atomic block runs in autocommit), and its
    ClientError no longer rolls anything back. Django's atomic block then finds the
    transaction ended and runs the on_commit hooks as usual.
    """
    pipelined = connection.vendor == "postgresql"
    sent: list[tuple[_Sent, CursorWrapper]] = []

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
                if opening and commit and len(connection.atomic_blocks) == 1:
                    raw.execute("COMMIT", prepare=False)  # ours alone: no outer block to wait for
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
