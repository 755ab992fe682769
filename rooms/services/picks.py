"""Deciding: the draw among the items nobody vetoed."""

import logging
import random
import secrets
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from .. import hooks, selectors
from ..errors import ClientError
from ..models import DECISION_FIELDS, Participant, Room
from ..protocol import PickedEvent, PickMode, StateEvent
from . import bills
from .locking import room_fields_save
from .runner import change_apply
from .states import state_publish

_system_random = secrets.SystemRandom()

log = logging.getLogger(__name__)


# --- Deciding --------------------------------------------------------------------


def pick_choose(candidates: list[tuple[str, int]], *, mode: PickMode, rng: random.Random) -> str:
    """Draw a name from (name, votes) pairs: uniform among the most-voted, or by vote weight."""
    if mode == "weighted":
        weights = [votes for _, votes in candidates]
        if sum(weights) == 0:
            return rng.choice(candidates)[0]
        return rng.choices(candidates, weights=weights, k=1)[0][0]
    best = max(votes for _, votes in candidates)
    return rng.choice([name for name, votes in candidates if votes == best])


def decision_record(
    room: Room, *, item: str, by: str, at: datetime, state: StateEvent | None = None
) -> None:
    """Write the room's decision (the room locked by the caller): the one way a room decides.

    The orders and the bill were for the place decided before: they go. `state`, the room's
    state read under the same lock, if the caller has it, spares the statements that would
    delete nothing."""
    had_bill = room.bill_total is not None
    room.decide(item=item, by=by, at=at)
    room_fields_save(room, *DECISION_FIELDS)
    orders = state is None or bool(state["room"]["orders"])
    bills.decision_clear(room, orders=orders, shares=state is None or had_bill)


def room_pick(
    *,
    room_id: str,
    participant_id: int,
    mode: PickMode = "top",
    avoid_recent: bool = False,
    rng: random.Random | None = None,
) -> StateEvent:
    """Draw the winner among the items nobody vetoed; everyone gets `picked`, then the state.

    With `avoid_recent`, a group's room also skips what the group decided lately elsewhere.
    """
    with transaction.atomic():
        # The decision is written once drawn: the COMMIT comes after it.
        applied = change_apply(room_id, by=participant_id, last=False)
        room, state = applied.room, applied.state
        candidates = [(i["name"], i["votes"]) for i in state["items"] if not i["vetoed_by"]]
        if avoid_recent:
            candidates = hooks.candidates_fresh(candidates, room=room)
        if not candidates:
            raise ClientError("nothing_to_pick")
        winner = pick_choose(candidates, mode=mode, rng=rng or _system_random)
        online = {p["id"]: p["name"] for p in state["participants"]}
        picker = online.get(participant_id) or Participant.objects.get(pk=participant_id).name
        decision_record(room, item=winner, by=picker, at=timezone.now(), state=state)
        # The state read above plus the decision, without orders and bill: the same as
        # reading it again.
        state = selectors.room_state_from_state(room=room, state=state)
        picked: PickedEvent = {"type": "picked", "item": winner, "by": picker, "mode": mode}
        state_publish(room, state, before=(picked,))
        log.info("room picked room=%s mode=%s avoid_recent=%s", room.pk, mode, avoid_recent)
        hooks.room_decided_on_commit(room=room)  # after the commit, behind the broadcast
        return state
