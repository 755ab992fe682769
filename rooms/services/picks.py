"""Deciding: the draw among the items nobody vetoed and everyone can eat."""

import logging
import random
import secrets

from django.db import transaction
from django.utils import timezone

from .. import hooks
from ..errors import ClientError
from ..models import Participant, Room
from ..protocol import PickedEvent, PickMode, StateEvent
from .locking import room_fields_save
from .runner import change_apply
from .states import state_publish

_system_random = secrets.SystemRandom()

log = logging.getLogger(__name__)


# --- Deciding --------------------------------------------------------------------


def pick_candidates(
    state: StateEvent, *, room: Room, avoid_recent: bool = False
) -> list[tuple[str, int]]:
    """What any draw draws from (a pick, and every decision made without one): the
    (name, votes) of the items nobody vetoed and nobody here or coming can't eat, from the
    room's full state (votes counted even in a blind room); with `avoid_recent`, without
    what the room's group decided lately elsewhere. Empty: nothing_to_pick."""
    candidates = [
        (item["name"], item["votes"] or 0)
        for item in state["items"]
        if not item["vetoed_by"] and not item["avoider_ids"]
    ]
    if avoid_recent:
        candidates = hooks.candidates_fresh(candidates, room=room)
    return candidates


def pick_choose(candidates: list[tuple[str, int]], *, mode: PickMode, rng: random.Random) -> str:
    """Draw a name from (name, votes) pairs: uniform among the most-voted, or by vote weight."""
    if mode == "weighted":
        weights = [votes for _, votes in candidates]
        if sum(weights) == 0:
            return rng.choice(candidates)[0]
        return rng.choices(candidates, weights=weights, k=1)[0][0]
    best = max(votes for _, votes in candidates)
    return rng.choice([name for name, votes in candidates if votes == best])


def room_pick(
    *,
    room_id: str,
    participant_id: int,
    mode: PickMode = "top",
    avoid_recent: bool = False,
    rng: random.Random | None = None,
) -> StateEvent:
    """Draw the winner among the items nobody vetoed and everyone can eat (pick_candidates);
    everyone gets `picked`, then the state (which, decided, shows a blind room's votes).

    With `avoid_recent`, a group's room also skips what the group decided lately elsewhere.
    """
    with transaction.atomic():
        # The decision is written once drawn: the COMMIT comes after it.
        applied = change_apply(room_id, by=participant_id, last=False)
        room, state = applied.room, applied.state
        candidates = pick_candidates(state, room=room, avoid_recent=avoid_recent)
        if not candidates:
            raise ClientError("nothing_to_pick")
        winner = pick_choose(candidates, mode=mode, rng=rng or _system_random)
        online = {p["id"]: p["name"] for p in state["participants"]}
        picker = online.get(participant_id) or Participant.objects.get(pk=participant_id).name
        room.decide(item=winner, by=picker, at=timezone.now())
        room_fields_save(room, "decision_item", "decision_by", "decided_at", "decision_key")
        # The state read above plus the decision: the same as reading it again.
        state["room"]["decision"] = room.decision
        picked: PickedEvent = {"type": "picked", "item": winner, "by": picker, "mode": mode}
        state_publish(room, state, before=(picked,))
        log.info("room picked room=%s mode=%s avoid_recent=%s", room.pk, mode, avoid_recent)
        hooks.room_decided_on_commit(room=room)  # after the commit, behind the broadcast
        return state
