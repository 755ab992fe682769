"""Where other apps join a room's life, without rooms importing them.

rooms knows nothing of lunch groups: the groups app depends on rooms, never the other way
(tests/test_architecture.py). Where a room's rules leave a place for another app, they call
a hook here, and that app fills it from its AppConfig.ready (groups/apps.py):

- `room_decided`, a signal sent once a pick has committed, after the room's own broadcast,
  with the room (`room=`). A rolled-back pick sends nothing. groups posts the decision to
  the group's webhook.
- `room_announced`, a signal sent once an `announce` has committed, with the room (`room=`)
  and the message (`text=`, rooms/summary.py). groups posts it to the group's webhook.
- `candidates_fresh`: the candidates a pick with `avoid_recent` may draw from; groups drops
  what the room's group decided lately. With no filter registered the flag changes nothing.
- `rooms_kept`: rooms purge_rooms must keep although they ended; groups keeps its history.
- `room_page_context`: what the room's page shows besides the room (a group's usual places).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Q
from django.dispatch import Signal

if TYPE_CHECKING:
    from .models import Room

log = logging.getLogger(__name__)

Candidates = list[tuple[str, int]]  # (item name, votes), what a pick draws from
CandidatesFilter = Callable[..., Candidates]  # (candidates, *, room) -> the fresh ones
RoomsKept = Callable[[datetime], Q]  # now -> the rooms to keep
PageContext = Callable[["Room"], dict[str, Any]]  # room -> template context

room_decided = Signal()
room_announced = Signal()

_candidate_filters: list[CandidatesFilter] = []
_rooms_kept: list[RoomsKept] = []
_page_contexts: list[PageContext] = []


def _registered(hooks: list, hook: Callable) -> None:
    # Idempotent: AppConfig.ready may run more than once (tests set up apps again).
    if hook not in hooks:
        hooks.append(hook)


def candidates_filter_register(hook: CandidatesFilter) -> None:
    """Add a filter that `avoid_recent` applies to a pick's candidates."""
    _registered(_candidate_filters, hook)


def rooms_kept_register(hook: RoomsKept) -> None:
    """Add a condition for ended rooms that purge_rooms must keep."""
    _registered(_rooms_kept, hook)


def room_page_context_register(hook: PageContext) -> None:
    """Add context to the room's page (its template checks what it is given)."""
    _registered(_page_contexts, hook)


def room_decided_on_commit(*, room: Room) -> None:
    """Send `room_decided` for `room` once the current transaction commits."""
    transaction.on_commit(partial(_decided, room))


def room_announce_on_commit(*, room: Room, text: str) -> None:
    """Send `room_announced` for `room` and its message once the transaction commits."""
    transaction.on_commit(partial(_sent, room_announced, room, text=text))


def _decided(room: Room) -> None:
    _sent(room_decided, room)


def _sent(signal: Signal, room: Room, **arguments: Any) -> None:
    # send_robust: the change has committed and been broadcast; a failing receiver (a
    # group's webhook) must not turn it into an error for the person who acted.
    for receiver, result in signal.send_robust(sender=type(room), room=room, **arguments):
        if isinstance(result, Exception):
            log.error(
                "room hook receiver %r failed room=%s",
                receiver,
                room.pk,
                exc_info=(type(result), result, result.__traceback__),
            )


def candidates_fresh(candidates: Iterable[tuple[str, int]], *, room: Room) -> Candidates:
    """The candidates every registered filter lets through (all of them without a filter)."""
    fresh = list(candidates)
    for hook in _candidate_filters:
        fresh = hook(fresh, room=room)
    return fresh


def rooms_kept(now: datetime) -> Q | None:
    """The ended rooms to keep from purging, or None when no app keeps any."""
    kept = None
    for hook in _rooms_kept:
        kept = hook(now) if kept is None else kept | hook(now)
    return kept


def room_page_context(room: Room) -> dict[str, Any]:
    """The context every registered hook adds to the room's page."""
    context: dict[str, Any] = {}
    for hook in _page_contexts:
        context.update(hook(room))
    return context
