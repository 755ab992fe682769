"""Every change to a room goes through here: the room's rules, in one place.

Each service first locks the room, checks that it is open and bumps its version in one
statement (`_lock_and_bump`: UPDATE ... RETURNING; on SQLite the IMMEDIATE transaction
holds the write lock anyway), applies one change, reads the new state in one query and
hands it to rooms/broadcast.py, which sends it once the transaction has committed. A
refusal raises ClientError inside the transaction, so the bump is rolled back with it.

Round trips are the cost of a change (tests/test_query_counts.py pins the statements), so
the writes that the ORM would spread over several statements are single SQL statements
here: INSERT ... ON CONFLICT DO NOTHING instead of a savepoint, and on PostgreSQL a toggle
or a removal in one statement. The everyday actions (add, remove, vote, veto, rename,
in/out, extend, pick) send the room's lock, the change with the bump and the state read
together (`_bump_and_apply`): on PostgreSQL one round trip, COMMIT included (a pick's
after its draw). Their rules are checked on what came back. On PostgreSQL the change's
SQL writes only to an open room that allows it and the bump only follows a change, so a
refused change wrote nothing; on SQLite it is rolled back (tests/test_sent_together.py).
On PostgreSQL the consumer sends those same statements from the event loop
(rooms/everyday.py, `EVERYDAY_CHANGES` below) and calls the service only for what that
could not apply: a refusal, to say which rule refused, or a failed connection.
"""

import logging
from collections.abc import Callable
from uuid import UUID

from ..protocol import Command, StateEvent
from ._core import (
    NO_CHANGE,
    Change,
    _broadcast_state,
    applied_from,
    committed_with,
    pipelined_statements,
)
from .host import (
    host_hand_over,
    host_pass_on,
    participant_going,
    participant_going_change,
    participant_kick,
    room_lock,
)
from .items import (
    item_add,
    item_add_change,
    item_remove,
    item_remove_change,
    mark_toggle,
    mark_toggle_change,
    participant_rename,
    participant_rename_change,
)
from .picks import pick_choose, room_pick
from .presence import participant_join, participant_leave, presence_refresh
from .rooms import (
    room_close,
    room_close_by_host,
    room_create,
    room_extend,
    room_state_resend,
    rooms_purge,
)

__all__ = [
    "EVERYDAY_CHANGES",
    "Change",
    "applied_from",
    "command_run",
    "host_hand_over",
    "host_pass_on",
    "item_add",
    "item_remove",
    "mark_toggle",
    "participant_going",
    "participant_join",
    "participant_kick",
    "participant_leave",
    "participant_rename",
    "pick_choose",
    "pipelined_statements",
    "presence_refresh",
    "room_close",
    "room_close_by_host",
    "room_create",
    "room_extend",
    "room_lock",
    "room_pick",
    "room_state_resend",
    "rooms_purge",
]

log = logging.getLogger(__name__)


# --- Commands from the protocol --------------------------------------------------


def command_run(
    *, room_id: str, participant_id: int, command: Command, unless_committed: UUID | None = None
) -> StateEvent | None:
    """Apply one parsed protocol command for a participant; return the room's new state.

    `close` returns none: the room is gone, and everyone is told so instead.

    `unless_committed` is the receipt of the same command sent from the event loop, whose
    connection failed before its answer came (rooms/everyday.py). If that went through, the
    command is not applied again: the room's state, which nobody was sent, goes out instead.
    """
    if unless_committed is not None:
        room = committed_with(room_id, unless_committed)
        if room is not None:
            log.warning("loop change committed unanswered room=%s; sending its state", room_id)
            return _broadcast_state(room)
    spec = command.spec
    service = globals()[spec.service]  # protocol.COMMANDS names a function of this package
    arguments = {**spec.fixed, **command.arguments}
    if spec.by_participant:
        arguments["participant_id"] = participant_id
    return service(room_id=room_id, **arguments)


# The everyday changes: one `Change` each, all the service writes (and, on PostgreSQL, all
# that the event loop needs to apply it without a database thread: rooms/everyday.py). By
# service name, as protocol.COMMANDS names them; each builder takes the command's arguments.
EVERYDAY_CHANGES: dict[str, Callable[..., Change]] = {
    "item_add": item_add_change,
    "item_remove": item_remove_change,
    "mark_toggle": mark_toggle_change,
    "participant_rename": participant_rename_change,
    "participant_going": participant_going_change,
    "room_extend": lambda: NO_CHANGE,
}
