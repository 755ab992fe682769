"""The WebSocket action limit: actions per participant, in this process.

(Per-address HTTP limits, room creation among them, are lunchsite/ratelimit.py.)
"""

import time
import weakref


class SlidingWindow:
    """At most `limit` events in any `window` seconds; limit 0 means no limit."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        # A list, not a deque: at most `limit` (20) entries, and a deque's first block alone
        # is 0.6 KiB, kept for every participant online (issue 27: memory per connection).
        self._events: list[float] = []

    def allow(self, now: float | None = None) -> bool:
        if self.limit <= 0:
            return True
        now = time.monotonic() if now is None else now
        expired = 0
        while expired < len(self._events) and now - self._events[expired] >= self.window:
            expired += 1
        del self._events[:expired]
        if len(self._events) >= self.limit:
            return False
        self._events.append(now)
        return True


# One window per participant among this process's connections, shared by all of them: five
# tabs of one person have one allowance, not five. The connections hold the window; when the
# last one on this process goes, so does the entry. Per process, not per site: a participant
# with connections on two workers gets the allowance on each (see docs/protocol.md).
_participant_windows: "weakref.WeakValueDictionary[int, SlidingWindow]" = (
    weakref.WeakValueDictionary()
)


def participant_window(participant_id: int, *, limit: int, window: float) -> SlidingWindow:
    """The action window this process keeps for one participant (created on first use)."""
    found = _participant_windows.get(participant_id)
    if found is None or found.limit != limit or found.window != window:
        found = _participant_windows[participant_id] = SlidingWindow(limit, window)
    return found
