"""Rooms: create, extend, resend the state, close, purge."""

import logging
from datetime import timedelta

from django.db import models, transaction
from django.utils import timezone, translation

from .. import broadcast, hooks
from ..models import Room, host_token_seed, new_room_id, token_from_seed, token_hash
from ..protocol import StateEvent
from .changes import NO_CHANGE, Change
from .host import host_required
from .locking import room_bump_held, room_hold
from .runner import change_run

log = logging.getLogger(__name__)


# --- Rooms -----------------------------------------------------------------------


def room_create(*, host_session_key: str = "", group: models.Model | None = None) -> Room:
    """A new room; whoever joins first with `room.host_token` (or this session) is its host.

    `room.host_token` is set only on the returned instance: the database keeps its hash.
    A lunch group's room is opened through the groups app's group_room_open (one open per
    group), which passes its `group`.
    """
    room_id = new_room_id()
    host_token = token_from_seed(host_token_seed(room_id))
    room = Room.objects.create(  # type: ignore[misc]  # `group`: rooms names no Group (hooks)
        id=room_id,
        host_token_hash=token_hash(host_token),
        host_session_key=host_session_key,
        group=group,
        # The language its summary is written in: its group's, else its creator's page's.
        language=getattr(group, "language", "") or translation.get_language() or "",
    )
    room.host_token = host_token
    log.info("room created room=%s", room.pk)
    return room


def room_extend_change() -> Change:
    """Nothing but the bump, which moves the expiry."""
    return NO_CHANGE


def room_extend(*, room_id: str) -> StateEvent:
    """Keep the room alive for another TTL; nothing else changes."""
    return change_run(room_id, room_extend_change(), by=None)


def room_state_resend(*, room_id: str) -> StateEvent:
    """Send everyone the room's state again after a change outside it (its group's name)."""
    with transaction.atomic():
        room = room_hold(room_id)
        return room_bump_held(room, activity=False)


def room_close(*, room: Room) -> None:
    """Close a room for good (staff action); its connected clients are told and dropped."""
    with transaction.atomic():
        room = Room.objects.select_for_update().get(pk=room.pk)
        if room.closed_at is not None:
            return
        _close(room)
    log.info("room closed room=%s", room.pk)


def room_close_by_host(*, room_id: str, participant_id: int) -> None:
    """The host ends the room for everyone now, exactly as staff closing it does."""
    with transaction.atomic():
        room = room_hold(room_id)
        host_required(room, participant_id)
        _close(room)
    log.info("room closed by its host room=%s", room.pk)


def _close(room: Room) -> None:
    room.closed_at = timezone.now()
    room.version += 1
    room.save(update_fields=["closed_at", "version"])
    broadcast.closed_on_commit(group=room.channel_group)


def rooms_purge(*, older_than: timedelta) -> int:
    """Delete rooms that expired or closed more than `older_than` ago; return how many."""
    now = timezone.now()
    cutoff = now - older_than
    stale = Room.objects.expired(cutoff) | Room.objects.filter(closed_at__lte=cutoff)
    # Rooms another app keeps outlive this (a group keeps its history: rooms/hooks.py).
    kept = hooks.rooms_kept(now)
    if kept is not None:
        stale = stale.exclude(kept)
    _, per_model = stale.delete()
    deleted = per_model.get(Room._meta.label, 0)
    log.info("rooms purged count=%s", deleted)
    return deleted
