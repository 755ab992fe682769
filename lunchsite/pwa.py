"""The installable page: the web app manifest, the service worker and its offline page.

The service worker (static/rooms/sw.js) is served from the site's root so that its scope is
the whole site. It keeps only the offline page and the few static files that page needs; it
answers nothing but page navigations, and those only when the network fails. Rooms, the
API and WebSockets never pass through its cache. docs/protocol.md, "Installable page".
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import reverse
from django.utils.translation import get_language, get_language_bidi
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

SERVICE_WORKER = Path(settings.BASE_DIR) / "static" / "rooms" / "sw.js"
# The page's brand colour (templates/base.html's theme-color) and its light background.
THEME_COLOR = "#c2451f"
BACKGROUND_COLOR = "#fff7ec"


@require_safe
def manifest(request: HttpRequest) -> JsonResponse:
    """The web app manifest, in the request's language."""
    icons = [
        {"src": static("rooms/icon-192.png"), "sizes": "192x192", "type": "image/png"},
        {"src": static("rooms/icon-512.png"), "sizes": "512x512", "type": "image/png"},
        {
            "src": static("rooms/icon-maskable-512.png"),
            "sizes": "512x512",
            "type": "image/png",
            "purpose": "maskable",
        },
        {"src": static("rooms/icon.svg"), "sizes": "any", "type": "image/svg+xml"},
    ]
    body = {
        "id": reverse("home"),
        "name": "lunchsite",
        "short_name": "lunchsite",
        "description": _("lunchsite: where do we eat?"),
        "lang": get_language(),
        "dir": "rtl" if get_language_bidi() else "ltr",
        "start_url": reverse("home"),
        "scope": reverse("home"),
        "display": "standalone",
        "theme_color": THEME_COLOR,
        "background_color": BACKGROUND_COLOR,
        "icons": icons,
    }
    response = JsonResponse(body, content_type="application/manifest+json")
    response["Cache-Control"] = "public, max-age=3600"
    return response


@require_safe
def service_worker(request: HttpRequest) -> FileResponse:
    """static/rooms/sw.js at the root, so that it may control every page of the site."""
    response = FileResponse(SERVICE_WORKER.open("rb"), content_type="text/javascript")
    # Always checked for a new version: an old worker must not outlive a deploy.
    response["Cache-Control"] = "no-cache"
    return response


@require_safe
def offline(request: HttpRequest) -> HttpResponse:
    """The page the service worker shows for a page that cannot be loaded (no network)."""
    return render(request, "rooms/offline.html")
