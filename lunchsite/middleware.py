"""HTTP middleware: a Content-Security-Policy with nonces, JSON errors for the API, and the
viewer's time zone for the dates a page shows."""

import functools
import logging
import secrets
import zoneinfo
from collections.abc import Callable

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

log = logging.getLogger(__name__)


class ContentSecurityPolicyMiddleware:
    """Scripts only from our origin or with this response's nonce; no framing, no plugins."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        nonce = secrets.token_urlsafe(16)
        # For the templates (context_processors.csp_nonce): an attribute of this middleware's
        # own on the request, as Django's middlewares add theirs; HttpRequest does not declare it.
        request.csp_nonce = nonce  # type: ignore[attr-defined]
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            host = request.get_host()
            response["Content-Security-Policy"] = "; ".join(
                [
                    "default-src 'self'",
                    f"script-src 'self' 'nonce-{nonce}'",
                    "style-src 'self'",
                    "img-src 'self' data:",
                    f"connect-src 'self' ws://{host} wss://{host}",
                    # The installable page: its manifest and its service worker (/sw.js).
                    "manifest-src 'self'",
                    "worker-src 'self'",
                    "object-src 'none'",
                    "base-uri 'none'",
                    "form-action 'self'",
                    "frame-ancestors 'none'",
                ]
            )
        return response


# What an /api/ client gets for each error status Django or a view answered without JSON.
_API_ERROR_CODES = {
    400: "bad_message",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "message_too_large",
    500: "server_error",
    503: "server_busy",
}
# How long an API client should wait after server_busy: a pool wait and a restart or two.
API_RETRY_AFTER_SECONDS = 5


class ApiErrorMiddleware:
    """Every /api/ error is JSON; a database that is down is 503 server_busy, not an HTML 500.

    A view that meets a lost database connection (PostgreSQL restarted, or the connection
    killed with pg_terminate_backend) is run once more on a fresh connection first: the pool
    hands out the idle connections it has, and those died with the first one.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not _is_api(request) or response.status_code < 400:
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        code = _API_ERROR_CODES.get(response.status_code, "server_error")
        replacement = JsonResponse({"error": code}, status=response.status_code)
        for header in ("Allow", "Retry-After"):
            if header in response:
                replacement[header] = response[header]
        return replacement

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not _is_api(request) or not isinstance(exception, DatabaseError):
            return None  # anything else is a bug: Django logs it, __call__ makes it JSON
        if _lost_connection(exception) and not getattr(request, "_api_retried", False):
            request._api_retried = True  # type: ignore[attr-defined]  # ours, as csp_nonce
            log.warning("database connection lost under %s; retrying once", request.path)
            _forget_dead_connections()
            match = request.resolver_match
            assert match is not None  # process_exception is called for a resolved view only
            try:
                return match.func(request, *match.args, **match.kwargs)
            except DatabaseError as again:
                exception = again
        log.warning("database unavailable for %s: %s", request.path, exception)
        response = JsonResponse({"error": "server_busy"}, status=503)
        response["Retry-After"] = str(API_RETRY_AFTER_SECONDS)
        return response


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def _lost_connection(exception: DatabaseError) -> bool:
    """A connection that broke under us, as opposed to no connection to be had at all."""
    if not isinstance(exception, OperationalError | InterfaceError):
        return False
    cause = exception.__cause__
    return not (cause is not None and type(cause).__name__ == "PoolTimeout")


def _forget_dead_connections() -> None:
    """Drop this thread's broken connection, and let the pool test the idle ones it holds."""
    if not connection.in_atomic_block:  # (only tests wrap a request in a transaction)
        connection.close()
    pool = getattr(connection, "pool", None) if connection.vendor == "postgresql" else None
    if pool is not None:
        pool.check()


class TimeZoneMiddleware:
    """Dates in the viewer's time zone: the one the browser named in the `tz` cookie
    (static/rooms/timezone.js sets it), else PAGE_TIME_ZONE."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        name = request.COOKIES.get("tz", "")
        timezone.activate(_time_zone(name if name in _known_zones() else settings.PAGE_TIME_ZONE))
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


@functools.cache
def _known_zones() -> frozenset[str]:
    # A name from the list, never a path: the cookie is the browser's to write.
    return frozenset(zoneinfo.available_timezones())


@functools.cache
def _time_zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)
