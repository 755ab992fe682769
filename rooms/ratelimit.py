"""Rate limits: actions per connection (in memory) and room creation per client address (cache)."""

import logging
import time
from collections import deque

from django.core.cache import cache

log = logging.getLogger(__name__)


class SlidingWindow:
    """At most `limit` events in any `window` seconds; limit 0 means no limit."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._events: deque[float] = deque()

    def allow(self, now: float | None = None) -> bool:
        if self.limit <= 0:
            return True
        now = time.monotonic() if now is None else now
        while self._events and now - self._events[0] >= self.window:
            self._events.popleft()
        if len(self._events) >= self.limit:
            return False
        self._events.append(now)
        return True


def fixed_window_hit(key: str, *, limit: int, window: int) -> int:
    """Count a hit for `key` in the current window; return seconds to wait (0: allowed).

    The counter lives in the cache, so with REDIS_URL every process shares it.
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
        # Fail open: a lunch room is worth more than a perfect limit during an outage.
        log.warning("rate limit not counted key=%s: %r", key.split(":")[0], exc)
        return 0
    if count <= limit:
        return 0
    return max(1, int((bucket + 1) * window - now) + 1)
