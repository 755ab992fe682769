"""Security headers Django 5.2 does not set by itself: a Content-Security-Policy with nonces."""

import secrets
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


class ContentSecurityPolicyMiddleware:
    """Scripts only from our origin or with this response's nonce; no framing, no plugins."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.csp_nonce = secrets.token_urlsafe(16)
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            host = request.get_host()
            response["Content-Security-Policy"] = "; ".join(
                [
                    "default-src 'self'",
                    f"script-src 'self' 'nonce-{request.csp_nonce}'",
                    "style-src 'self'",
                    "img-src 'self' data:",
                    f"connect-src 'self' ws://{host} wss://{host}",
                    "object-src 'none'",
                    "base-uri 'none'",
                    "form-action 'self'",
                    "frame-ancestors 'none'",
                ]
            )
        return response
