"""Rooms: create, extend, resend the state, close, purge."""

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from .. import broadcast, groups
from ..models import Group, Room, host_token_seed, new_room_id, token_from_seed, token_hash
from ..protocol import StateEvent
from ._core import (
    _broadcast_applied,
    _bump_and_apply,
    _commit_change,
    _lock_open_room,
)
from .host import _host_only

log = logging.getLogger(__name__)


# --- Rooms -----------------------------------------------------------------------


def room_create(*, host_session_key: str = "", group: Group | None = None) -> Room:
    """A new room; whoever joins first with `room.host_token` (or this session) is its host.

    `room.host_token` is set only on the returned instance: the database keeps its hash.
    A lunch group's room is opened through groups.group_room_open (one open per group).
    """
    room_id = new_room_id()
    host_token = token_from_seed(host_token_seed(room_id))
    room = Room.objects.create(
        id=room_id,
        host_token_hash=token_hash(host_token),
        host_session_key=host_session_key,
        group=group,
    )
    room.host_token = host_token
    log.info("room created room=%s", room.pk)
    return room


def room_extend(*, room_id: str) -> StateEvent:
    """Keep the room alive for another TTL; nothing else changes."""
    with transaction.atomic():
        return _broadcast_applied(_bump_and_apply(room_id, by=None))


def room_state_resend(*, room_id: str) -> StateEvent:
    """Send everyone the room's state again after a change outside it (its group's name)."""
    with transaction.atomic():
        room = _lock_open_room(room_id)
        return _commit_change(room, activity=False)


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
        room = _lock_open_room(room_id)
        _host_only(room, participant_id)
        _close(room)
    log.info("room closed by its host room=%s", room.pk)


def _close(room: Room) -> None:
    room.closed_at = timezone.now()
    room.version += 1
    room.save(update_fields=["closed_at", "version"])
    broadcast.closed_on_commit(group=room.group_name)


def rooms_purge(*, older_than: timedelta) -> int:
    """Delete rooms that expired or closed more than `older_than` ago; return how many."""
    now = timezone.now()
    cutoff = now - older_than
    stale = Room.objects.filter(
        closed_at__isnull=True, expires_at__lte=cutoff
    ) | Room.objects.filter(closed_at__lte=cutoff)
    # A group's history outlives its rooms: decided group rooms stay for GROUP_HISTORY_DAYS.
    stale = stale.exclude(groups.rooms_kept_for_history(now))
    _, per_model = stale.delete()
    deleted = per_model.get(Room._meta.label, 0)
    log.info("rooms purged count=%s", deleted)
    return deleted
