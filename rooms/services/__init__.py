"""Every change to a room goes through here: the room's rules, a module per subject.

The everyday actions (add, remove, vote, veto, rename, in/out, extend, order, paid) are each
a `Change` (rooms/services/changes.py): SQL that writes, and the checks, named by their
error codes, that must hold first. It is built beside its service (items.py,
participants.py, rooms.py, bills.py) and run by rooms/services/runner.py, on a database
thread or, on PostgreSQL, from the event loop (rooms/everyday.py): the room's lock, the
checks, the change, the bump and the state read in one round trip, COMMIT included. The
statement that applies a change says which check refused it, and `changes.verdict_read`
turns that into the ClientError, once for every path. The other services (join, leave, the
host's actions, pick, bill, announce, the background work) lock the room through
rooms/services/locking.py and write with the ORM or SQL of their own (statements.py). Every
state leaves through states.state_publish, sent after the commit. docs/engine.md has the
map; rooms/commands.py says which protocol action runs which service.
"""

from .bills import bill_set, order_set, room_announce, share_paid
from .host import host_hand_over, host_pass_on, participant_kick, room_blind, room_lock
from .items import item_add, item_remove, item_tag, mark_toggle
from .participants import participant_avoid, participant_going, participant_rename
from .picks import pick_candidates, pick_choose, room_pick
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
    "bill_set",
    "host_hand_over",
    "host_pass_on",
    "item_add",
    "item_remove",
    "item_tag",
    "mark_toggle",
    "order_set",
    "participant_avoid",
    "participant_going",
    "participant_join",
    "participant_kick",
    "participant_leave",
    "participant_rename",
    "pick_candidates",
    "pick_choose",
    "presence_refresh",
    "room_announce",
    "room_blind",
    "room_close",
    "room_close_by_host",
    "room_create",
    "room_extend",
    "room_lock",
    "room_pick",
    "room_state_resend",
    "rooms_purge",
    "share_paid",
]
