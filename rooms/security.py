"""WebSocket origin checks that let terminal clients in."""

from channels.security.websocket import OriginValidator
from django.conf import settings


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
