"""Deciding: the draw among the items nobody vetoed and everyone can eat, ties, the runoff,
and the decision.

Every draw (a participant's `pick`, the server's own at a deadline, the end of a runoff) takes
its candidates from `pick_candidates`, the one place that says what may be drawn; and every
decision is written and announced by `decision_publish`.
"""

import logging
import random
import secrets
from collections.abc import Iterable
from datetime import timedelta
from typing import Literal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .. import hooks, selectors
from ..errors import ClientError
from ..models import DECISION_FIELDS, Item, Mark, Participant, Room
from ..protocol import PickedEvent, PickMode, RunoffEvent, StateEvent
from . import bills
from .changes import NO_CHANGE, Change, Check
from .locking import room_fields_save
from .runner import change_apply
from .states import state_publish

_system_random = secrets.SystemRandom()

log = logging.getLogger(__name__)

OnTie = Literal["draw", "runoff"]
Candidates = list[tuple[str, int]]

# While a runoff runs, only its end decides: add, remove and pick wait for it.
RUNOFF_NOT_RUNNING = Check("runoff_in_progress", "rooms_room.runoff_ends_at IS NULL")
# A pick writes nothing through the engine (the decision is saved once drawn): only the bump,
# refused while a runoff runs.
_PICK = Change(sql=NO_CHANGE.sql, params={}, checks=(RUNOFF_NOT_RUNNING,))


# --- What may be drawn -----------------------------------------------------------


def pick_candidates(
    room: Room,
    state: StateEvent,
    *,
    among: Iterable[str] | None = None,
    avoid_recent: bool = False,
) -> Candidates:
    """The (name, votes) pairs a draw may choose from, in list order: every draw's one source.

    The items nobody vetoed and nobody here or coming can't eat (only those `among` these
    names, for a runoff), from the room's full state (votes counted even in a blind room);
    with `avoid_recent`, a group's room also skips what the group decided lately elsewhere.
    Nothing left: ClientError(nothing_to_pick), which the server's own decisions turn into
    `deadline_missed`.
    """
    only = None if among is None else set(among)
    candidates = [
        (item["name"], item["votes"] or 0)
        for item in state["items"]
        if not item["vetoed_by"]
        and not item["avoider_ids"]
        and (only is None or item["name"] in only)
    ]
    if avoid_recent:
        candidates = hooks.candidates_fresh(candidates, room=room)
    if not candidates:
        raise ClientError("nothing_to_pick")
    return candidates


def pick_tied(candidates: Candidates) -> list[str]:
    """The names sharing the most votes, when two or more do and that is more than none."""
    best = max(votes for _, votes in candidates)
    leaders = [name for name, votes in candidates if votes == best]
    return leaders if best > 0 and len(leaders) > 1 else []


def pick_choose(candidates: Candidates, *, mode: PickMode, rng: random.Random) -> str:
    """Draw a name from (name, votes) pairs: uniform among the most-voted, or by vote weight."""
    if mode == "weighted":
        weights = [votes for _, votes in candidates]
        if sum(weights) == 0:
            return rng.choice(candidates)[0]
        return rng.choices(candidates, weights=weights, k=1)[0][0]
    best = max(votes for _, votes in candidates)
    return rng.choice([name for name, votes in candidates if votes == best])


# --- Deciding --------------------------------------------------------------------


def room_pick(
    *,
    room_id: str,
    participant_id: int,
    mode: PickMode = "top",
    avoid_recent: bool = False,
    on_tie: OnTie = "draw",
    rng: random.Random | None = None,
) -> StateEvent:
    """Draw the winner among the items nobody vetoed and everyone can eat (pick_candidates);
    everyone gets `picked`, then the state (which, decided, shows a blind room's votes).

    With `avoid_recent`, a group's room also skips what the group decided lately elsewhere.
    A tie in mode top is drawn (and `picked` names the tied items), or with `on_tie`
    "runoff" settled by a runoff instead (`runoff_start`). Refused while a runoff runs.
    """
    with transaction.atomic():
        # The decision is written once drawn: the COMMIT comes after it.
        applied = change_apply(room_id, _PICK, by=participant_id, last=False)
        room, state = applied.room, applied.state
        candidates = pick_candidates(room, state, avoid_recent=avoid_recent)
        tied = pick_tied(candidates) if mode == "top" else []
        if tied and on_tie == "runoff":
            return runoff_start(room, tied)
        winner = pick_choose(candidates, mode=mode, rng=rng or _system_random)
        online = {p["id"]: p["name"] for p in state["participants"]}
        picker = online.get(participant_id) or Participant.objects.get(pk=participant_id).name
        picked: PickedEvent = {"type": "picked", "item": winner, "by": picker, "mode": mode}
        if tied:
            picked["tied"] = tied
        log.info("room picked room=%s mode=%s avoid_recent=%s", room.pk, mode, avoid_recent)
        return decision_publish(room, state, picked)


def decision_publish(room: Room, state: StateEvent, picked: PickedEvent) -> StateEvent:
    """Write the decision `picked` announces into the locked, bumped room and send everyone
    `picked`, then `state` (the room's state as read in this transaction) with the decision:
    the one way a room decides.

    A decision ends the deadline and everyone's `done` (Room.decide), and the orders and the
    bill were for the place decided before: they go. The state read says whether there are
    any, which spares the statements that would delete nothing."""
    had_bill = room.bill_total is not None
    room.decide(item=picked["item"], by=picked["by"], at=timezone.now())
    room_fields_save(room, *DECISION_FIELDS)
    bills.decision_clear(room, orders=bool(state["room"]["orders"]), shares=had_bill)
    # The state read before plus the decision: the same as reading it again.
    state = selectors.room_state_from_state(room=room, state=state)
    state_publish(room, state, before=(picked,))
    hooks.room_decided_on_commit(room=room)  # after the commit, behind the broadcast
    return state


def auto_decide(room: Room, state: StateEvent, *, rng: random.Random | None = None) -> StateEvent:
    """The server decides by itself (a deadline): the draw of a `pick` in mode top, a runoff
    on a tie, or `deadline_missed` when there is nothing to draw from.

    `room` is locked and bumped in the caller's transaction, `state` read after that."""
    try:
        candidates = pick_candidates(room, state)
    except ClientError:
        log.info("deadline missed room=%s: nothing to pick", room.pk)
        return state_publish(
            room, state, before=({"type": "deadline_missed", "reason": "nothing_to_pick"},)
        )
    tied = pick_tied(candidates)
    if tied:
        return runoff_start(room, tied)
    winner = pick_choose(candidates, mode="top", rng=rng or _system_random)
    log.info("room decided by itself room=%s", room.pk)
    picked: PickedEvent = {"type": "picked", "item": winner, "by": None, "mode": "top"}
    picked["auto"] = True
    return decision_publish(room, state, picked)


# --- The runoff ------------------------------------------------------------------


def runoff_start(room: Room, tied: list[str]) -> StateEvent:
    """A runoff between the tied items, for ROOM_RUNOFF_SECONDS: every vote is cleared and
    each participant may hold one (rooms/services/items.py); everyone gets `runoff`, then the
    state. `room` is locked and bumped in the caller's transaction."""
    ends = timezone.now() + timedelta(seconds=settings.ROOM_RUNOFF_SECONDS)
    Item.objects.filter(room_id=room.pk, name__in=tied).update(runoff=True)
    Mark.objects.filter(item__room_id=room.pk, kind=Mark.Kind.VOTE).delete()
    room.runoff_ends_at, room.deadline_at = ends, None
    room_fields_save(room, "runoff_ends_at", "deadline_at")
    event: RunoffEvent = {"type": "runoff", "items": tied, "ends_at": ends.isoformat()}
    log.info("runoff started room=%s items=%s", room.pk, len(tied))
    return state_publish(room, before=(event,))


def runoff_decide(
    room: Room, state: StateEvent, items: list[str], *, rng: random.Random | None = None
) -> StateEvent:
    """The runoff of `items` is over (the caller cleared `room.runoff_ends_at`): the most
    voted of them wins, a draw among the leaders if they are still tied."""
    Item.objects.filter(room_id=room.pk, runoff=True).update(runoff=False)
    try:
        candidates = pick_candidates(room, state, among=items)
    except ClientError:
        log.info("runoff ended with nothing to pick room=%s", room.pk)
        return state_publish(
            room, state, before=({"type": "deadline_missed", "reason": "nothing_to_pick"},)
        )
    best = max(votes for _, votes in candidates)
    leaders = [name for name, votes in candidates if votes == best]
    winner = (rng or _system_random).choice(leaders)
    picked: PickedEvent = {"type": "picked", "item": winner, "by": None, "mode": "top"}
    picked["auto"] = picked["runoff"] = True
    if len(leaders) > 1:
        picked["tie_break"] = "draw"
        if best > 0:
            picked["tied"] = leaders
    log.info("runoff decided room=%s drawn=%s", room.pk, len(leaders) > 1)
    return decision_publish(room, state, picked)


def runoff_everyone_voted(state: StateEvent) -> bool:
    """A runoff runs and every participant online (one at least) holds a vote in it."""
    runoff = state["room"].get("runoff")
    return runoff is not None and everyone_voted_among(state, runoff["items"])


def everyone_voted_among(state: StateEvent, items: Iterable[str]) -> bool:
    """Every participant online (one at least) holds a vote for one of `items`."""
    if not state["participants"]:
        return False
    names = set(items)
    voters = {v for item in state["items"] if item["name"] in names for v in item["voter_ids"]}
    return all(p["id"] in voters for p in state["participants"])
