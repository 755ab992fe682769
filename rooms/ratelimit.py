"""Rate limits: actions per participant (in this process) and room creation per address (cache)."""

import logging
import threading
import time
import weakref

from django.core.cache import cache

from .outage import redis_outage

log = logging.getLogger(__name__)


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


class _LocalFixedWindows:
    """The cache's fixed-window counters, kept in this process while the cache is unreachable."""

    MAX_KEYS = 10_000  # an outage under a flood of addresses must not grow without bound

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def hit(self, cache_key: str) -> int:
        with self._lock:
            if cache_key not in self._counts and len(self._counts) >= self.MAX_KEYS:
                self._counts.clear()  # old windows are the bulk of it; dropping them is fair
            self._counts[cache_key] = count = self._counts.get(cache_key, 0) + 1
            return count

    def forget_before(self, bucket: int) -> None:
        with self._lock:
            for key in [k for k in self._counts if int(k.rsplit(":", 1)[1]) < bucket]:
                del self._counts[key]


_local_windows = _LocalFixedWindows()


def fixed_window_hit(key: str, *, limit: int, window: int) -> int:
    """Count a hit for `key` in the current window; return seconds to wait (0: allowed).

    The counter lives in the cache, so with REDIS_URL every process shares it. While the
    cache is unreachable each process counts on its own: a limit per process, not none.
    """
    if limit <= 0:
        return 0
    now = time.time()
    bucket = int(now // window)
    cache_key = f"ratelimit:{key}:{bucket}"
    try:
        cache.add(cache_key, 0, timeout=window + 1)
        try:
            count = cache.incr(cache_key)
        except ValueError:  # expired between add and incr
            cache.add(cache_key, 1, timeout=window + 1)
            count = 1
    except Exception as exc:  # the cache (Redis) is down
        redis_outage.failed(f"rate limit cache: {type(exc).__name__}: {exc}")
        _local_windows.forget_before(bucket)
        count = _local_windows.hit(cache_key)
    else:
        redis_outage.recovered()
    if count <= limit:
        return 0
    return max(1, int((bucket + 1) * window - now) + 1)
