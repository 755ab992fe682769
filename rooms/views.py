"""HTTP: the room's pages and its small JSON API (site-wide HTTP is in lunchsite/)."""

import io
import json
import logging

import segno
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST, require_safe

from lunchsite.ratelimit import rate_limited_json, rate_limited_page

from . import hooks, selectors, services, sharing
from .errors import ClientError
from .models import Room
from .nicknames import nickname_random
from .pages import host_session_key, room_creation_wait, room_urls, room_ws_path

log = logging.getLogger(__name__)

# Rooms this browser opened, newest first, kept in its session for the home page.
RECENT_ROOMS_SESSION_KEY = "recent_rooms"
RECENT_ROOMS_KEPT = 10


def _share_url(request: HttpRequest, room: Room) -> tuple[str, bool]:
    """The link friends can open, and whether it is a LAN address in place of loopback."""
    base, swapped = sharing.share_base_url(request)
    return base + reverse("room", args=[room.pk]), swapped


def _remember_room(request: HttpRequest, room: Room) -> None:
    recent = [r for r in request.session.get(RECENT_ROOMS_SESSION_KEY, []) if r != room.pk]
    request.session[RECENT_ROOMS_SESSION_KEY] = [room.pk, *recent][:RECENT_ROOMS_KEPT]


# --- Pages -----------------------------------------------------------------------


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    recent_ids = request.session.get(RECENT_ROOMS_SESSION_KEY, [])
    rooms = Room.objects.active().filter(pk__in=recent_ids).prefetch_related("items")
    alive = {room.pk: room for room in rooms}
    recent = [alive[room_id] for room_id in recent_ids if room_id in alive]
    return render(request, "rooms/home.html", {"recent_rooms": recent})


@require_POST
def room_create_form(request: HttpRequest) -> HttpResponse:
    wait = room_creation_wait(request)
    if wait:
        return rate_limited_page(request, wait)
    room = services.room_create(host_session_key=host_session_key(request))
    _remember_room(request, room)
    # 303 See Other: the browser follows with a GET, and a reload does not create another room.
    response = HttpResponse(status=303)
    response["Location"] = reverse("room", args=[room.pk])
    return response


@require_safe
def room_page(request: HttpRequest, room_id: str) -> HttpResponse:
    try:
        room = selectors.room_get_open(room_id=room_id)
    except ClientError as error:
        return _room_gone(request, room_id, error.code)
    # The session cookie is the participant's identity across tabs and reconnects, so
    # make sure there is one before the page opens its WebSocket.
    _remember_room(request, room)
    urls = room_urls(request, room)
    share_url, swapped = _share_url(request, room)
    context = {
        "room": room,
        # What other apps show with the room: a group's usual places as one-tap adds
        # (`group`, `group_favorites`: groups/views.py room_page_context).
        **hooks.room_page_context(room),
        "room_url": urls["url"],
        "share_url": share_url,
        "share_note": _("Friends on the same network can open this address.") if swapped else "",
        "max_participants": settings.ROOM_MAX_PARTICIPANTS,
        "ttl_minutes": max(1, round(settings.ROOM_TTL_SECONDS / 60)),
        "client_config": {
            "roomId": room.pk,
            "wsPath": room_ws_path(room),
            "roomUrl": urls["url"],
            "shareUrl": share_url,
            "homeUrl": reverse("home"),
            "maxParticipants": settings.ROOM_MAX_PARTICIPANTS,
            "maxItemLength": settings.ROOM_ITEM_MAX_LENGTH,
            "maxNameLength": settings.ROOM_NAME_MAX_LENGTH,
            "maxOrderLength": settings.ROOM_ORDER_MAX_LENGTH,
            "expiresAt": room.expires_at.isoformat(),
            # The page's clock may be off (phones are): the client measures its offset from this.
            "serverNow": timezone.now().isoformat(),
            "suggestedName": nickname_random(),
        },
    }
    return render(request, "rooms/room.html", context)


def _room_gone(request: HttpRequest, room_id: str, code: str) -> HttpResponse:
    """404 for a room that never was; 410 for an ended one, with its decision and list."""
    if code == "room_not_found":
        return render(request, "rooms/room_gone.html", {"code": code}, status=404)
    # An undecided blind room ends with its votes still hidden.
    shown = selectors.state_shown(selectors.room_state(room=selectors.room_get(room_id=room_id)))
    state = shown.state
    context = {"code": code, "decision": state["room"]["decision"], "items": state["items"]}
    return render(request, "rooms/room_gone.html", context, status=410)


@require_safe
def room_qr(request: HttpRequest, room_id: str) -> HttpResponse:
    """The room's link as a QR code (SVG), so someone at the next desk can scan it."""
    try:
        room = selectors.room_get_open(room_id=room_id)
    except ClientError as error:
        return HttpResponse(status=404 if error.code == "room_not_found" else 410)
    qr = segno.make(_share_url(request, room)[0], error="m")
    buffer = io.BytesIO()
    qr.save(buffer, kind="svg", scale=6, border=2, dark="#3b2418", light="#fffaf3", xmldecl=False)
    response = HttpResponse(buffer.getvalue(), content_type="image/svg+xml")
    response["Cache-Control"] = "private, max-age=600"
    return response


# --- JSON API --------------------------------------------------------------------


@csrf_exempt  # for API clients, who hold no CSRF cookie; rate-limited per address instead
@require_POST
def api_room_create(request: HttpRequest) -> JsonResponse:
    # The body carries no options yet; a JSON one must at least be an object.
    if request.content_type == "application/json" and request.body.strip():
        try:
            body = json.loads(request.body)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return JsonResponse({"error": "bad_message"}, status=400)
    wait = room_creation_wait(request)
    if wait:
        return rate_limited_json(wait)
    room = services.room_create()
    return JsonResponse(
        {
            "id": room.pk,
            **room_urls(request, room),
            "expires_at": room.expires_at.isoformat(),
            # Join with ?token=<host_token> to be the room's host (and to rejoin as it).
            "host_token": room.host_token,
        },
        status=201,
    )


@require_safe
def api_room_state(request: HttpRequest, room_id: str) -> JsonResponse:
    try:
        room = selectors.room_get_open(room_id=room_id)
    except ClientError as error:
        status = 404 if error.code == "room_not_found" else 410
        return JsonResponse({"error": error.code}, status=status)
    # A blind room's votes stay hidden here too (selectors.state_shown).
    state = dict(selectors.state_shown(selectors.room_state(room=room)).state)
    del state["type"]
    return JsonResponse(state)
