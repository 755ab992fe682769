"""Per-address HTTP rate limits (room and group creation), counted in the cache, and the 429
answers a page or an API client gets. (The WebSocket action limit: rooms/realtime/ratelimit.py.)"""

import threading
import time

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from .outage import redis_outage


def client_address(request: HttpRequest) -> str:
    """The client's address (daphne's --proxy-headers puts the real one behind nginx here)."""
    return request.META.get("REMOTE_ADDR") or "unknown"


def rate_limited_page(request: HttpRequest, wait: int) -> HttpResponse:
    """429 with the page that says how long to wait."""
    response = render(request, "rooms/rate_limited.html", {"wait": wait}, status=429)
    response["Retry-After"] = str(wait)
    return response


def rate_limited_json(wait: int) -> JsonResponse:
    """429 `{"error": "rate_limited", "retry_after": wait}` for an API client."""
    response = JsonResponse({"error": "rate_limited", "retry_after": wait}, status=429)
    response["Retry-After"] = str(wait)
    return response


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
