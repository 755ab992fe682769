"""What any page or API view needs of a room: its URLs, and the allowance to open one.

Public for the groups app's views, which open rooms and link to them as rooms' own do.
"""

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse

from lunchsite.ratelimit import client_address, fixed_window_hit

from . import sharing
from .models import Room


def room_ws_path(room: Room) -> str:
    """The room's WebSocket path: the route (rooms/routing.py) mirrors the page's under /ws/."""
    return f"/ws{reverse('room', args=[room.pk])}"


def room_urls(request: HttpRequest, room: Room) -> dict[str, str]:
    """The room's page and WebSocket URLs on the host the request came to (or PUBLIC_URL)."""
    base = sharing.base_url(request)
    return {
        "url": base + reverse("room", args=[room.pk]),
        "ws_url": base.replace("http", "ws", 1) + room_ws_path(room),
    }


def room_creation_wait(request: HttpRequest) -> int:
    """Seconds this client must wait before creating another room (0: go ahead).

    One allowance per address for every way of opening a room (the form, the API, a group).
    """
    return fixed_window_hit(
        f"create:{client_address(request)}", limit=settings.ROOM_CREATE_PER_MINUTE, window=60
    )


def host_session_key(request: HttpRequest) -> str:
    """The session key of the browser that opens a room, which makes it the host: its session
    is saved first if it had none yet."""
    if request.session.session_key is None:
        request.session.save()
    session_key = request.session.session_key
    assert session_key is not None  # saved just above
    return session_key
