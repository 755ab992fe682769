"""A command's idempotency key on the service path: applied once, answered the same each time.

A JSON command may carry an `id` (rooms/protocol.py). Seen again from the same participant,
the command is answered as the first time (the same ack, or the same refusal) and not applied
again: a client resends what it has no answer for after its connection dropped (a deploy's
1012, a lost 1006), and the first send may well have gone through.

The everyday changes on PostgreSQL keep their receipt in their own statement
(runner.keyed_change_run, everyday.change_send): no statement more. Every other command, and
every command on SQLite, comes here on a database thread: in one transaction, the room's
lock (PostgreSQL; SQLite's IMMEDIATE transaction holds the database's), the receipt looked
up, the service (its own atomic block a savepoint), and the receipt written with the version
it made or the code it was refused with. The savepoint rolls a refusal's writes back, not
its receipt.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import connection, transaction

from ..errors import ClientError
from ..models import CommandReceipt
from ..protocol import StateEvent
from . import statements
from .runner import CommandKey, Replay

# The command's receipt, on the room's row: no row, no room; else the receipt's outcome and
# version, NULL and NULL if it has none.
_SEEN_SQL = """
SELECT r.outcome, r.version FROM rooms_room
  LEFT JOIN rooms_commandreceipt r
         ON r.participant_id = %(by)s AND r.command_id = %(command_id)s
 WHERE rooms_room.id = %(room)s
"""
# PostgreSQL: the room's lock first, in a statement of its own, so that the lookup's snapshot
# is taken once the transaction that held the lock before (the same id, sent at once from
# another connection) has committed its receipt. A FOR UPDATE on the lookup itself would wait
# for the lock and then still read the receipts as they were before it
# (tests/test_idempotency.py's race finds that). SQLite's IMMEDIATE transaction holds the
# database's write lock from its BEGIN.
_LOCK_SQL = "SELECT 1 FROM rooms_room WHERE id = %(room)s FOR NO KEY UPDATE"


def run_once(
    room_id: str, key: CommandKey, run: Callable[[], StateEvent | None]
) -> StateEvent | Replay | None:
    """Run the service (`run`) unless the command with this key was seen: then its first
    answer, a Replay or the same ClientError. Either way the receipt is kept."""
    with transaction.atomic():
        params = {"room": room_id, "by": key.participant_id, "command_id": key.command_id}
        # PostgreSQL: BEGIN, the lock and the lookup in one round trip (a pipeline), each
        # statement still with its own snapshot.
        with statements.sent_together() as send:
            if connection.vendor == "postgresql":
                send(_LOCK_SQL, params)
            seen = send(_SEEN_SQL, params)
        rows = seen.rows
        if not rows:
            raise ClientError("room_not_found")  # no room, no participant: nothing to keep
        outcome, version = rows[0]
        if outcome is not None:  # seen: '' applied, else the code it was refused with
            if outcome:
                raise ClientError(outcome)  # a code we stored
            return Replay(version)
        refusal = None
        state = None
        try:
            # Every service writes inside an atomic block of its own: here a savepoint, which
            # a refusal rolls back (its bump too) before its receipt is written.
            state = run()
        except ClientError as error:
            refusal = error
        CommandReceipt.objects.create(
            participant_id=key.participant_id,
            command_id=key.command_id,
            outcome=refusal.code if refusal is not None else "",
            version=None if state is None else state["version"],
        )
    if refusal is not None:
        raise refusal
    return state
