"""Repairing lost broadcasts: a connection compares its version with the database's.

Redis pub/sub delivers at most once, so a broadcast published while Redis restarts is gone.
Every connection checks its room's version now and then and fetches the state it missed.
"""

import time

from . import selectors
from .models import Room

# The connections of one room in one process share their version reads for this long, so
# ten clients of a room cost one read per window, not ten (and no thread hop).
SHARED_SECONDS = 1.0
# A connection that is behind waits this long for the broadcast to arrive on its own before
# it reads the full state: on a busy server the broadcast is usually on its way.
GRACE_SECONDS = 1.0
_PRUNE_ABOVE = 1024

_versions: dict[str, tuple[float, int]] = {}  # room id -> (monotonic time read, version)
_pruned_at = 0.0


def version_seen_recently(room_id: str) -> int | None:
    """The room's version if this process read it moments ago, else None."""
    seen = _versions.get(room_id)
    if seen is not None and time.monotonic() - seen[0] < SHARED_SECONDS:
        return seen[1]
    return None


def room_version(*, room_id: str) -> int | None:
    """The room's version in the database (None: gone), remembered for a moment."""
    global _pruned_at
    current = Room.objects.filter(pk=room_id).values_list("version", flat=True).first()
    now = time.monotonic()
    if len(_versions) > _PRUNE_ABOVE and now - _pruned_at > SHARED_SECONDS:
        _pruned_at = now
        for key, (read_at, _) in list(_versions.items()):
            if now - read_at >= SHARED_SECONDS:
                _versions.pop(key, None)
    if current is not None:
        _versions[room_id] = (now, current)
    return current


def state_if_newer(*, room_id: str, version: int) -> dict | None:
    """The room's state if its version passed `version` (one cheap read when it has not)."""
    current = room_version(room_id=room_id)
    if current is None or current <= version:
        return None
    room = Room.objects.filter(pk=room_id).first()
    return selectors.room_state(room=room) if room is not None else None
