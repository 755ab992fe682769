"""A change to a room as data: what it writes, and the checks that must hold before it does.

Each everyday action (add, remove, vote, veto, rename, in/out, extend) is a `Change`, built
beside its service (rooms/services/items.py, participants.py, rooms.py). A check is a named
SQL condition on the room's row (`rooms_room`) and the parameters, true when the rule holds;
its error code is what the client is told when it does not. The statement that applies the
change (rooms/services/runner.py) also returns the code of the first check that failed: the
room-level ones first (no row at all: room_not_found, then room_expired, kicked), then the
change's own in the order it lists them. `verdict_read` is the one place that turns that
into a ClientError, for every path: the event loop, a database thread, SQLite.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ClientError, ErrorCode
from ..models import ROOM_OPEN_SQL


@dataclass(frozen=True)
class Check:
    """A rule: SQL that is true when it holds (on rooms_room's row), and the code if not."""

    code: ErrorCode
    holds: str


# Every change, in this order, before its own checks.
ROOM_OPEN = Check("room_expired", ROOM_OPEN_SQL)
# The actor (`%(by)s`; NULL: nobody) was not removed by the host: a kicked connection whose
# `kicked` was lost (Redis) is refused here until its heartbeat hangs it up.
NOT_KICKED = Check(
    "kicked",
    "NOT EXISTS (SELECT 1 FROM rooms_participant WHERE id = %(by)s AND kicked_at IS NOT NULL)",
)
ACTOR_CHECKS = (ROOM_OPEN, NOT_KICKED)


@dataclass(frozen=True)
class Change:
    """What an action writes, as SQL that reads `room` (the room's id; no row if a check failed).

    `sql` gives each database's spelling. PostgreSQL: WITH parts, sent as one statement with
    the checks and the room's bump; each part must write only through `room`, so a refused
    change writes nothing. SQLite: statements, run one by one after the bump, and only if
    every check held.
    """

    sql: dict[str, tuple[str, ...]]
    params: dict[str, Any]
    checks: tuple[Check, ...] = field(default=())
    # More of the room's own columns the bump sets when the change goes through (`col =
    # expression`, both databases): the room's row is written once per statement, by the bump.
    bump: str = ""

    @staticmethod
    def spelled_once(statement: str) -> dict[str, tuple[str, ...]]:
        """`sql` for a single statement that both databases understand."""
        return {"postgresql": (f"change AS ({statement})",), "sqlite": (statement,)}


NO_CHANGE = Change(sql={"postgresql": (), "sqlite": ()}, params={})  # the bump is the change


def verdict_sql(checks: Sequence[Check]) -> str:
    """A SQL expression on rooms_room's row: the code of the first check that fails, or NULL.

    `IS NOT TRUE`, not NOT: a condition that is NULL (a host_id of none) fails its check."""
    whens = "".join(
        f"\n      WHEN ({check.holds}) IS NOT TRUE THEN '{check.code}'" for check in checks
    )
    return f"CASE{whens}\n      END" if checks else "NULL"


def verdict_read(rows: Sequence[Sequence[Any]]) -> Sequence[Any]:
    """The room's row after its verdict column, or the ClientError of the check that failed.

    No row: the room does not exist. This is the one mapper from a refusal to its code."""
    if not rows:
        raise ClientError("room_not_found")
    refused, *room = rows[0]
    if refused is not None:
        raise ClientError(refused)
    return room
