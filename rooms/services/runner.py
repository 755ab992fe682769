"""Running a Change: the statements that lock, check, apply and bump, and what came back.

One runner for both paths. `change_statements` builds the statements and `change_outcome`
reads their rows; the database thread sends them on Django's connection (`change_apply`) and
the event loop on psycopg's async pool (rooms/everyday.py), and only that I/O differs.

PostgreSQL, one round trip with BEGIN and COMMIT: the room's row lock; then one statement
that judges the change's checks on the locked row (changes.verdict_sql), applies the change
through `room` (empty if a check failed) and bumps the room only then, returning the verdict
with the bumped row; then the state read. A refused change wrote nothing, so its pipeline
commits an empty transaction and the refusal costs that one round trip. SQLite, in process:
the bump with the verdict in its RETURNING first, then, only if every check held, the
change's statements and the state read; a refusal rolls the bump back.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.db import connection, transaction

from .. import selectors
from ..errors import ClientError
from ..models import Room
from ..protocol import StateEvent
from . import statements
from .changes import ACTOR_CHECKS, NO_CHANGE, Change, Check, verdict_read, verdict_sql
from .locking import EXPIRY_LATER_SQL, bump_params, bump_sql
from .states import state_publish

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Applied:
    """A change that went through: the room as bumped (locked), and its new state."""

    room: Room
    state: StateEvent


@dataclass(frozen=True)
class CommandKey:
    """A command's idempotency key: who sent it and the `id` it carried (rooms/protocol.py)."""

    participant_id: int
    command_id: str


@dataclass(frozen=True)
class Replay:
    """A command seen before, and applied then: the room's version its change made (none for
    `close`). Nothing was applied now. (One refused then raises the same ClientError.)"""

    version: int | None


@dataclass(frozen=True)
class Plan:
    """A change's statements in the order they are sent; the rows of `sql[verdict]` say
    whether it went through, those of the last are the state read."""

    sql: list[statements.Statement]
    verdict: int


# The room's lunch group, by key, returned with the bumped room: slug and name (NULL without
# one). The state read is sent before the group is known, so it leaves its group part out:
# looking the group up through rooms_room inside the read would scan that table
# (tests/test_state_plan.py).
_GROUP_COLUMNS = (
    "(SELECT g.slug FROM rooms_group g WHERE g.id = rooms_room.group_id),"
    " (SELECT g.name FROM rooms_group g WHERE g.id = rooms_room.group_id)"
)

# PostgreSQL: lock the room first, so the statement after it reads everything with a
# snapshot taken once the changes that held the lock before us have committed.
# NO KEY UPDATE, as the bump's own lock: rows that refer to the room may still be inserted.
_LOCK_SQL = "SELECT 1 FROM rooms_room WHERE id = %(room)s FOR NO KEY UPDATE"

# PostgreSQL: the verdict, the change through `room`, then the bump if the verdict admitted
# it; one row (the verdict, then the bumped room or NULLs), none if the room does not exist.
_CHECK_CHANGE_AND_BUMP_SQL = """
WITH verdict AS (SELECT rooms_room.id, {verdict} AS refused
                   FROM rooms_room WHERE rooms_room.id = %(room)s),
     room AS (SELECT id FROM verdict WHERE refused IS NULL){parts},
     bumped AS (UPDATE rooms_room SET version = version + 1, expires_at = {expiry},
                       last_change = COALESCE(%(receipt)s, last_change){sets}
                 WHERE id IN (SELECT id FROM room)
                RETURNING {columns})
SELECT verdict.refused, bumped.* FROM verdict LEFT JOIN bumped ON TRUE
"""

# PostgreSQL, for a command with an idempotency key (CommandKey): the same statement with
# its receipt. `seen` is the receipt of a command sent before with the same id; then the
# verdict admits nothing (`replayed`) and the row carries the first answer (the code it was
# refused with, or '' and the version it made). Otherwise the receipt of this one is one
# more part: the verdict's code, or '' and the bumped version. The room's lock, taken by the
# statement before, orders two sends of one id; the unique constraint backs that up.
_KEYED_CHECK_CHANGE_AND_BUMP_SQL = """
WITH seen AS (SELECT outcome, version FROM rooms_commandreceipt
               WHERE participant_id = %(command_by)s AND command_id = %(command_id)s),
     verdict AS (SELECT rooms_room.id,
                        CASE WHEN EXISTS (SELECT 1 FROM seen) THEN NULL ELSE {verdict} END
                          AS refused,
                        EXISTS (SELECT 1 FROM seen) AS replayed
                   FROM rooms_room WHERE rooms_room.id = %(room)s),
     room AS (SELECT id FROM verdict WHERE refused IS NULL AND NOT replayed){parts},
     bumped AS (UPDATE rooms_room SET version = version + 1, expires_at = {expiry},
                       last_change = COALESCE(%(receipt)s, last_change){sets}
                 WHERE id IN (SELECT id FROM room)
                RETURNING {columns}),
     noted AS (INSERT INTO rooms_commandreceipt
                      (participant_id, command_id, outcome, version, created_at)
               SELECT %(command_by)s, %(command_id)s, COALESCE(verdict.refused, ''),
                      (SELECT version FROM bumped), %(now)s
                 FROM verdict WHERE NOT verdict.replayed)
SELECT verdict.refused, bumped.*, verdict.replayed, seen.outcome, seen.version
  FROM verdict LEFT JOIN bumped ON TRUE LEFT JOIN seen ON TRUE
"""

# SQLite: the change's statements read the room's id as PostgreSQL's parts read `room`.
_SQLITE_ROOM = "WITH room AS (SELECT %(room)s AS id)\n"


def change_statements(
    room_id: str,
    change: Change = NO_CHANGE,
    *,
    by: int | None,
    vendor: str,
    receipt: UUID | None = None,
    key: CommandKey | None = None,
) -> Plan:
    """The statements that lock the room, check and apply `change` by `by`, bump the room
    and read its new state. The bump writes `receipt`, if any, into the room's `last_change`
    (`committed_state` reads it; PostgreSQL only, for the event loop's changes). With a
    command's `key` (PostgreSQL only) the same statement looks for its receipt first and
    writes it: no statement more."""
    checks = (*ACTOR_CHECKS, *change.checks)
    params = bump_params(room_id)
    params.update(change.params, by=by, receipt=receipt)
    state = selectors.room_state_query(room_id=room_id, group_id=None, vendor=vendor)
    if vendor == "postgresql":
        if key is None:
            sql = _check_change_and_bump_sql(checks, change.sql["postgresql"], change.bump)
        else:
            sql = _check_change_and_bump_sql(
                checks, change.sql["postgresql"], change.bump, keyed=True
            )
            params.update(command_by=key.participant_id, command_id=key.command_id)
        return Plan([(_LOCK_SQL, params), (sql, params), state], verdict=1)
    if key is not None:
        raise ValueError("SQLite keeps a command's receipt on the service path (commands.py)")
    writes = [(_SQLITE_ROOM + sql, params) for sql in change.sql["sqlite"]]
    bump = bump_sql(checks, vendor=vendor, also=_GROUP_COLUMNS, sets=change.bump)
    return Plan([(bump, params), *writes, state], verdict=0)


@functools.lru_cache(maxsize=128)
def _check_change_and_bump_sql(
    checks: tuple[Check, ...], parts: tuple[str, ...], sets: str = "", *, keyed: bool = False
) -> str:
    """PostgreSQL's statement for these checks, a change's parts and the room's columns it
    sets with the bump (with a command's receipt if `keyed`); made once each."""
    template = _KEYED_CHECK_CHANGE_AND_BUMP_SQL if keyed else _CHECK_CHANGE_AND_BUMP_SQL
    return template.format(
        verdict=verdict_sql(checks),
        parts="".join(f",\n     {part}" for part in parts),
        expiry=EXPIRY_LATER_SQL,
        sets=f",\n                       {sets}" if sets else "",
        columns=f"{statements.columns(Room)}, {_GROUP_COLUMNS}",
    )


def change_outcome(verdict_rows: list[tuple], state_rows: list[tuple]) -> Applied:
    """What `change_statements` did, from the rows of its verdict and of its state read;
    the ClientError of the check that failed if it was refused (changes.verdict_read)."""
    row = verdict_read(verdict_rows)
    return _applied(row, state_rows)


def keyed_change_outcome(verdict_rows: list[tuple], state_rows: list[tuple]) -> Applied | Replay:
    """`change_outcome` for a plan made with a command's key: a Replay, or the ClientError it
    was refused with, if the command was seen before."""
    if verdict_rows:
        *row, replayed, outcome, version = verdict_rows[0]
        if replayed:
            if outcome:
                raise ClientError(outcome)
            return Replay(version)
        verdict_rows = [tuple(row)]
    return change_outcome(verdict_rows, state_rows)


def _applied(row: Sequence[Any], state_rows: list[tuple]) -> Applied:
    room = statements.row_to_model(Room, row)
    slug, name = row[-2:]
    if slug is not None:
        state_rows = [*state_rows, selectors.room_state_group_row(slug=slug, name=name)]
    return Applied(room=room, state=selectors.room_state_from_rows(room=room, rows=state_rows))


def change_apply(
    room_id: str, change: Change = NO_CHANGE, *, by: int | None, last: bool = True
) -> Applied:
    """Apply a change on this thread's connection, inside the caller's atomic block.

    On PostgreSQL the statements go out together (statements.sent_together); when the change
    is the `last` write of its transaction, its COMMIT goes with them. On SQLite each runs as
    it is sent, so a refusal stops before the change's own statements."""
    plan = change_statements(room_id, change, by=by, vendor=connection.vendor)
    if connection.vendor == "postgresql":
        with statements.sent_together(commit=last) as send:
            sent = [send(sql, params) for sql, params in plan.sql]
        rows = [statement.rows for statement in sent]
    else:
        rows = []
        for sql, params in plan.sql:
            rows.append(statements.execute(sql, params))
            if len(rows) == plan.verdict + 1:
                verdict_read(rows[plan.verdict])  # refused: raise before the change writes
    return change_outcome(rows[plan.verdict], rows[-1])


def change_run(room_id: str, change: Change = NO_CHANGE, *, by: int | None) -> StateEvent:
    """Apply a change in a transaction of its own and publish its state; return the state."""
    with transaction.atomic():
        applied = change_apply(room_id, change, by=by)
        return state_publish(applied.room, applied.state)


def keyed_change_run(
    room_id: str, change: Change, *, by: int | None, key: CommandKey
) -> StateEvent | Replay:
    """`change_run` for a command with an idempotency key, on PostgreSQL: the same round trip,
    whose statement also looks for the command's receipt and writes it. A command seen
    before is not applied: its first answer comes back (a Replay, or its ClientError)."""
    plan = change_statements(room_id, change, by=by, vendor="postgresql", key=key)
    with transaction.atomic():
        with statements.sent_together(commit=True) as send:
            sent = [send(sql, params) for sql, params in plan.sql]
        outcome = keyed_change_outcome(sent[plan.verdict].rows, sent[-1].rows)
        if isinstance(outcome, Replay):
            return outcome
        return state_publish(outcome.room, outcome.state)


def committed_state(room_id: str, receipt: UUID) -> StateEvent | None:
    """If the change whose bump wrote `receipt` has committed, publish the room's state (nobody
    was sent it) and return it; else None.

    For a change sent from the event loop whose connection failed before the answer came
    (rooms/everyday.py): it may have committed or not. None is also the answer if a later
    change from an event loop has committed since and written its own receipt over it; the
    caller then applies the change again, the one case where it can be applied twice. A
    command with an `id` is not looked up here but by its own receipt (keyed_change_run,
    receipts.run_once), which nothing overwrites.
    """
    room = Room.objects.filter(pk=room_id, last_change=receipt).first()
    if room is None:
        return None
    log.warning("loop change committed unanswered room=%s; sending its state", room_id)
    return state_publish(room)
