"""After the pick: who eats what (orders), who owes what (the bill), and telling the group.

`order` and `paid` are everyday Changes (one round trip, their rules as Checks). `bill` locks
the room (locking.room_bump) and computes the shares in Python from the sharers, with
`bill_split`, the one definition of the split. `announce` posts the room's summary
(rooms/summary.py) to its group's chat through rooms/hooks.py once the lock's transaction
commits.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .. import hooks, selectors, text
from ..errors import ClientError
from ..models import Order, Participant, Room, Share
from ..protocol import StateEvent
from .changes import Change, Check
from .locking import room_bump, room_fields_save, room_hold
from .runner import change_run
from .states import state_publish

log = logging.getLogger(__name__)

BILL_MAX_TOTAL = 10_000_000


# --- The split (pure) ------------------------------------------------------------


def bill_split(total: int, sharers: int, unit: int) -> tuple[list[int], int]:
    """The shares of `total` among `sharers` people (the payer among them): (the others'
    shares, the payer's).

    Each other share is total / sharers rounded to the nearest multiple of `unit` (halves
    up), and the payer's is what is left, so they add up to exactly `total`. With many
    sharers and a small total that can leave the payer more than one unit away from the
    others (10 people, 1,400: 100 each and 500 for the payer); then one unit moves at a time
    between the payer and the others in their order until no two shares differ by more than
    one unit.
    """
    if sharers < 1 or unit < 1 or total < 0:
        raise ValueError("a split needs a sharer, a positive unit and a total")
    count = sharers - 1
    each = (2 * total + sharers * unit) // (2 * sharers * unit) * unit
    others = [each] * count
    payer = total - each * count
    moved = 0
    while payer - each > unit:  # the payer would pay too much: the others a unit more
        others[moved] += unit
        payer -= unit
        moved += 1
    while each - payer > unit:  # too little: the others a unit less
        others[moved] -= unit
        payer += unit
        moved += 1
    return others, payer


# --- Orders (everyday) -------------------------------------------------------------

_DECIDED = Check("not_decided", "rooms_room.decided_at IS NOT NULL")
_IN_THIS_ROOM = Check(
    "unknown_participant",
    "EXISTS (SELECT 1 FROM rooms_participant WHERE id = %(by)s AND room_id = rooms_room.id)",
)
_ORDER_CHECKS = (_DECIDED, _IN_THIS_ROOM)
# Changed, an order keeps its row (its place in the list).
_ORDER_SET_SQL = Change.spelled_once("""
INSERT INTO rooms_order (room_id, participant_id, text, created_at)
SELECT room.id, %(by)s, %(text)s, %(now)s FROM room WHERE TRUE
ON CONFLICT (participant_id) DO UPDATE SET text = excluded.text
RETURNING id
""")
_ORDER_WITHDRAW_SQL = Change.spelled_once(
    "DELETE FROM rooms_order WHERE participant_id = %(by)s AND room_id IN (SELECT id FROM room)"
    " RETURNING id"
)


def order_set_change(*, order: str | None) -> Change:
    """My order (invalid_order if it is not one), or none (`None` or empty: withdrawn)."""
    if order is None or order == "":
        return Change(_ORDER_WITHDRAW_SQL, {}, _ORDER_CHECKS)
    return Change(_ORDER_SET_SQL, {"text": text.order_text(order)}, _ORDER_CHECKS)


def order_set(*, room_id: str, participant_id: int, order: str | None) -> StateEvent:
    """Say what I eat at the place the room decided on (or take my order back)."""
    return change_run(room_id, order_set_change(order=order), by=participant_id)


# --- Paid (everyday) ---------------------------------------------------------------

_PAID_CHECKS = (
    Check(
        "no_share",
        "EXISTS (SELECT 1 FROM rooms_share WHERE room_id = rooms_room.id"
        " AND participant_id = %(by)s)",
    ),
)
# The payer's own share stays paid.
_PAID_SQL = Change.spelled_once("""
UPDATE rooms_share SET paid = %(paid)s
 WHERE room_id IN (SELECT id FROM room) AND participant_id = %(by)s
   AND participant_id <> COALESCE(
       (SELECT bill_paid_by_id FROM rooms_room WHERE id = rooms_share.room_id), 0)
RETURNING id
""")


def share_paid_change(*, paid: bool) -> Change:
    """I sent my share (or not yet): no_share unless I have one."""
    return Change(_PAID_SQL, {"paid": paid}, _PAID_CHECKS)


def share_paid(*, room_id: str, participant_id: int, paid: bool) -> StateEvent:
    """Mark my share of the bill as sent to the payer (or not)."""
    return change_run(room_id, share_paid_change(paid=paid), by=participant_id)


# --- The bill ----------------------------------------------------------------------


def bill_total_clean(total: object) -> int | None:
    """The bill's total (None: no bill), or ClientError(invalid_amount)."""
    if total is None:
        return None
    if isinstance(total, bool) or not isinstance(total, int) or not 1 <= total <= BILL_MAX_TOTAL:
        raise ClientError("invalid_amount")
    return total


def bill_sharers(state: StateEvent, payer_id: int) -> list[int]:
    """Who shares: everyone coming, else everyone who ordered, else everyone online; the
    payer always (last, if not among them already)."""
    room = state["room"]
    for people in (room["going"], room["orders"], state["participants"]):
        ids = [person["id"] for person in people]
        if ids:
            break
    ids = list(dict.fromkeys(ids))
    if payer_id not in ids:
        ids.append(payer_id)
    return ids


def bill_set(
    *, room_id: str, participant_id: int, total: int | None, paid_by: int | None = None
) -> StateEvent:
    """Set the room's bill (the sender paid, or `paid_by`), its shares fixed now; or remove it.

    Set again, the shares are computed again and the paid marks cleared."""
    total = bill_total_clean(total)
    with transaction.atomic():
        room = room_bump(room_id)
        Share.objects.filter(room=room).delete()
        if total is None:
            room.bill_total, room.bill_paid_by_id = None, None
        else:
            payer_id = participant_id if paid_by is None else paid_by
            payer = Participant.objects.filter(
                pk=payer_id, room_id=room.pk, kicked_at__isnull=True
            ).first()
            if payer is None:
                raise ClientError("unknown_participant")
            sharers = bill_sharers(selectors.room_state(room=room), payer_id)
            others, mine = bill_split(total, len(sharers), settings.ROOM_BILL_UNIT)
            amounts = iter(others)
            Share.objects.bulk_create(
                Share(
                    room=room,
                    participant_id=pk,
                    amount=mine if pk == payer_id else next(amounts),
                    paid=pk == payer_id,
                )
                for pk in sharers
            )
            room.bill_total, room.bill_paid_by_id = total, payer_id
        room_fields_save(room, "bill_total", "bill_paid_by_id")
        log.info("room bill room=%s set=%s", room.pk, total is not None)
        return state_publish(room)


# --- Telling the group -------------------------------------------------------------


def room_announce(*, room_id: str, participant_id: int) -> None:
    """Post the room's summary (rooms/summary.py) to its group's chat, once it has decided;
    at most once per ROOM_ANNOUNCE_INTERVAL_SECONDS. The post leaves after the commit."""
    with transaction.atomic():
        room = room_hold(room_id)
        if room.decided_at is None:
            raise ClientError("not_decided")
        if room.group_id is None:
            raise ClientError("not_in_group")
        now = timezone.now()
        interval = timedelta(seconds=settings.ROOM_ANNOUNCE_INTERVAL_SECONDS)
        if room.announced_at is not None and now - room.announced_at < interval:
            raise ClientError("rate_limited")
        room.announced_at = now
        room_fields_save(room, "announced_at")
        message = selectors.room_state(room=room)["room"]["summary"]
        assert message is not None  # the room has decided
        hooks.room_announce_on_commit(room=room, text=message)
        log.info("room announce room=%s", room.pk)


def decision_clear(room: Room, *, orders: bool = True, shares: bool = True) -> None:
    """A new decision: the orders and the bill's shares were for another place (the bill's
    total and payer are Room.decide's). False: the caller knows there are none."""
    if orders:
        Order.objects.filter(room=room).delete()
    if shares:
        Share.objects.filter(room=room).delete()
