"""The WebSocket handshake's checks: the origin (terminal clients let in) and the browser's
session key."""

from channels.security.websocket import OriginValidator
from django.conf import settings
from django.http.cookie import parse_cookie

# The scope key under which `with_session_key` puts the browser session's key ("" if none).
SESSION_KEY = "lunchsite.session_key"


class TerminalFriendlyOriginValidator(OriginValidator):
    """Like Channels' AllowedHostsOriginValidator, but a handshake without Origin passes.

    Browsers always send Origin, so cross-site pages are still refused; websocat and other
    terminal clients send none and cannot be used for cross-site request forgery.
    """

    def valid_origin(self, parsed_origin) -> bool:
        if parsed_origin is None:
            return True
        return self.validate_origin(parsed_origin)


def allowed_hosts_or_terminal(application) -> TerminalFriendlyOriginValidator:
    allowed_hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = ["localhost", "127.0.0.1", "[::1]"]
    return TerminalFriendlyOriginValidator(application, allowed_hosts)


def with_session_key(application):
    """ASGI middleware: the browser session's key, from the Cookie header, into the scope.

    A room needs only the key (a browser's tabs are one participant), never the session's
    data. Channels' SessionMiddlewareStack builds a session store per WebSocket on the
    database thread and keeps it, with two copies of the scope, for the connection's life:
    a hop per join and about 2 KiB per connection (issue 27: ten thousand connections). The
    key is taken as Django's session backends take a cookie's (any value of 8 characters or
    more), and it goes into daphne's own scope, which is this connection's alone.
    """

    async def app(scope, receive, send):
        scope[SESSION_KEY] = session_key_from(scope.get("headers", ()))
        return await application(scope, receive, send)

    return app


def session_key_from(headers) -> str:
    """The session cookie's value in these ASGI headers, if it can be a session key; else ""."""
    for name, value in headers:
        if name == b"cookie":
            key = parse_cookie(value.decode("latin1")).get(settings.SESSION_COOKIE_NAME, "")
            return key if len(key) >= 8 else ""
    return ""
