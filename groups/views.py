"""HTTP for lunch groups: the group page and its forms, the groups' JSON API, and what a
group's room page shows of its group."""

import json
import logging
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext, ngettext
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from lunchsite.ratelimit import (
    client_address,
    fixed_window_hit,
    rate_limited_json,
    rate_limited_page,
)
from rooms.errors import ClientError
from rooms.models import Room
from rooms.pages import host_session_key, room_creation_wait, room_urls

from . import calendar, schedule, selectors, services, webhooks
from .models import Group

log = logging.getLogger(__name__)

_BAD_BODY = object()  # a body that is not a JSON object


def _group_creation_wait(request: HttpRequest) -> int:
    """Seconds this address must wait before creating another group (0: go ahead)."""
    return fixed_window_hit(
        f"group-create:{client_address(request)}",
        limit=settings.ROOM_CREATE_PER_MINUTE,
        window=60,
    )


def _room_opening_wait(request: HttpRequest, group: Group) -> int:
    """Seconds this address must wait before opening the group a room (0: go ahead).

    Opening a room spends the same per-address allowance as POST /rooms/ and /api/rooms/
    (a room is a room, and a host can close one and open the next); finding today's room
    already open costs nothing, so everyone can still get into it.
    """
    if selectors.group_room_get_open(group=group) is not None:
        return 0
    # Counted before group_room_open takes the group's lock, not under it, so the lock is
    # never held across a cache round trip; first calls that race may each be counted.
    return room_creation_wait(request)


def _language(request: HttpRequest) -> str:
    """The language the group's webhook will speak: the creator's page language."""
    code = translation.get_language() or settings.LANGUAGE_CODE
    known = {language for language, _ in settings.LANGUAGES}
    return code if code in known else settings.LANGUAGE_CODE


def _group_get_or_404(slug: str) -> Group | None:
    try:
        return selectors.group_get(slug=slug)
    except ClientError:
        return None


def _room_json(request: HttpRequest, room: Room) -> dict[str, str]:
    return {"id": room.pk, **room_urls(request, room), "expires_at": room.expires_at.isoformat()}


def _group_json(request: HttpRequest, group: Group) -> dict[str, Any]:
    room = selectors.group_room_get_open(group=group)
    return {
        "slug": group.slug,
        "name": group.name,
        "url": request.build_absolute_uri(reverse("group", args=[group.slug])),
        "api_url": request.build_absolute_uri(reverse("api_group", args=[group.slug])),
        **schedule.schedule_json(group),
        "calendar_url": request.build_absolute_uri(reverse("group_calendar", args=[group.slug])),
        "room": _room_json(request, room) if room else None,
        "history": selectors.group_history(group=group),
        "favorites": selectors.group_favorites(group=group),
        "webhook": {
            "host": group.webhook_host,
            "last_status": group.webhook_last_status or None,
            "last_at": group.webhook_last_at.isoformat() if group.webhook_last_at else None,
        }
        if group.webhook_url
        else None,
    }


def _json_body(request: HttpRequest) -> Any:
    if not request.body.strip():
        return {}
    try:
        body = json.loads(request.body)
    except (ValueError, RecursionError):
        return _BAD_BODY
    return body if isinstance(body, dict) else _BAD_BODY


def _optional_webhook(body: dict) -> str | None:
    """The body's webhook_url: None if absent, "" to clear (null or ""), else the string."""
    if "webhook_url" not in body:
        return None
    value = body["webhook_url"]
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ClientError("invalid_webhook")
    return value


def _error(error: ClientError, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": error.code}, status=status)


# --- Pages -----------------------------------------------------------------------


@require_http_methods(["GET", "HEAD", "POST"])
def group_create_form(request: HttpRequest) -> HttpResponse:
    """GET: the form to start a group; POST: create it and go to its page (303)."""
    if request.method != "POST":
        return render(request, "groups/group_new.html", {"form": {}})
    form = {key: request.POST.get(key, "") for key in ("name", "webhook_url")}
    wait = _group_creation_wait(request)
    if wait:
        return rate_limited_page(request, wait)
    try:
        group = services.group_create(
            name=form["name"], webhook_url=form["webhook_url"], language=_language(request)
        )
    except ClientError as error:
        context = {"form": form, "error": error.code}
        return render(request, "groups/group_new.html", context, status=400)
    response = HttpResponse(status=303)
    response["Location"] = reverse("group", args=[group.slug])
    return response


def _render_group(
    request: HttpRequest, group: Group, *, status: int = 200, error: str = ""
) -> HttpResponse:
    room = selectors.group_room_get_open(group=group)
    context = {
        "group": group,
        "group_url": request.build_absolute_uri(reverse("group", args=[group.slug])),
        "room": room,
        "history": selectors.group_history(group=group),
        "favorites": selectors.group_favorites(group=group),
        "webhook_host": group.webhook_host,
        "webhook_outcome": _webhook_said(webhooks.webhook_outcome(group.webhook_last_status)),
        "recent_days": settings.GROUP_RECENT_DAYS,
        "history_days": settings.GROUP_HISTORY_DAYS,
        "error": error,
        **_schedule_context(group),
    }
    return render(request, "groups/group.html", context, status=status)


# The time zones offered as you type (any IANA name is accepted).
COMMON_ZONES = [
    "Asia/Seoul",
    "Asia/Tokyo",
    "Asia/Shanghai",
    "Asia/Singapore",
    "Asia/Ho_Chi_Minh",
    "Europe/London",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "UTC",
]


def _schedule_context(group: Group) -> dict[str, Any]:
    """What the page's schedule card shows: the times (HH:MM), the weekdays and the formats."""
    lunch = schedule.lunch_on_any_day(group)
    weekdays = [
        gettext("Mon"),
        gettext("Tue"),
        gettext("Wed"),
        gettext("Thu"),
        gettext("Fri"),
        gettext("Sat"),
        gettext("Sun"),
    ]
    return {
        "schedule_lunch": group.lunch_time.strftime("%H:%M") if group.lunch_time else "",
        "schedule_opens": lunch.opens_at.strftime("%H:%M") if lunch else "",
        "schedule_decides": lunch.decides_at.strftime("%H:%M") if lunch else "",
        "weekday_choices": list(enumerate(weekdays, start=1)),
        "common_zones": COMMON_ZONES,
        "webhook_formats": [
            ("slack", "Slack"),
            ("mattermost", "Mattermost"),
            ("discord", "Discord"),
            ("google_chat", "Google Chat"),
            ("jandi", gettext("JANDI")),
            ("dooray", gettext("Dooray!")),
            ("generic", gettext("Plain JSON (generic)")),
        ],
    }


def _webhook_said(outcome: webhooks.WebhookOutcome | None) -> dict[str, Any] | None:
    """The last delivery in the page's language: {"ok", "text"} ("Last post failed · timed
    out, 3 attempts"), or None before the first."""
    if outcome is None:
        return None
    if outcome["delivered"]:
        return {"ok": True, "text": gettext("Last post delivered")}
    reasons = {
        "timeout": gettext("timed out"),
        "unresolved": gettext("the chat's address was not found"),
        "refused": gettext("not an address we may post to"),
        "connection": gettext("could not connect"),
        "http": gettext("the chat answered with error %(status)s")
        % {"status": outcome["http_status"]},
    }
    attempts = outcome["attempts"]
    text = gettext("Last post failed · %(reason)s, %(attempts)s") % {
        "reason": reasons[outcome["reason"]],
        "attempts": ngettext("%(count)s attempt", "%(count)s attempts", attempts)
        % {"count": attempts},
    }
    return {"ok": False, "text": text}


@require_safe
def group_page(request: HttpRequest, slug: str) -> HttpResponse:
    group = _group_get_or_404(slug)
    if group is None:
        return render(request, "groups/group_gone.html", status=404)
    return _render_group(request, group)


@require_POST
def group_room_form(request: HttpRequest, slug: str) -> HttpResponse:
    """Open today's room (the open one, or a new one) and go there (303)."""
    group = _group_get_or_404(slug)
    if group is None:
        return render(request, "groups/group_gone.html", status=404)
    wait = _room_opening_wait(request, group)
    if wait:
        return rate_limited_page(request, wait)
    # The browser that opens today's room is its host (as with POST /rooms/).
    room, _ = services.group_room_open(group=group, host_session_key=host_session_key(request))
    response = HttpResponse(status=303)
    response["Location"] = reverse("room", args=[room.pk])
    return response


@require_safe
def group_calendar(request: HttpRequest, slug: str) -> HttpResponse:
    """The group's iCalendar feed: the next lunches and the last decisions."""
    group = _group_get_or_404(slug)
    if group is None:
        return HttpResponse(status=404)
    group_url = request.build_absolute_uri(reverse("group", args=[group.slug]))
    body = calendar.group_calendar(group=group, group_url=group_url)
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="lunch.ics"'
    return response


@require_POST
def group_settings_form(request: HttpRequest, slug: str) -> HttpResponse:
    """Rename the group or set its webhook from the group page; 303 back to it."""
    group = _group_get_or_404(slug)
    if group is None:
        return render(request, "groups/group_gone.html", status=404)
    name = request.POST.get("name")
    webhook_url: str | None
    if "clear_webhook" in request.POST:
        webhook_url = ""
    else:  # an empty box leaves the webhook as it is (the page never shows the full URL)
        webhook_url = request.POST.get("webhook_url", "").strip() or None
    try:
        changes, webhook_format = _schedule_form(request)
        services.group_update(
            group=group,
            name=name,
            webhook_url=webhook_url,
            schedule_changes=changes,
            webhook_format=webhook_format,
        )
    except ClientError as error:
        group.refresh_from_db()
        return _render_group(request, group, status=400, error=error.code)
    response = HttpResponse(status=303)
    response["Location"] = reverse("group", args=[group.slug])
    return response


def _schedule_form(request: HttpRequest) -> tuple[dict[str, Any], Any]:
    """The settings form's schedule in the API's shapes (the services check it); a form
    without the schedule's fields (an older page) changes none of it."""
    form = request.POST
    webhook_format = (form.get("webhook_format") or None) if "webhook_format" in form else ...
    if "lunch_time" not in form:
        return {}, webhook_format
    changes: dict[str, Any] = {
        "lunch_time": form.get("lunch_time", "").strip() or None,
        "timezone": form.get("timezone", "").strip(),
        "weekdays": [_form_number(day) for day in form.getlist("weekdays")],
        "skip": [day for day in form.get("skip", "").replace(",", " ").split() if day],
    }
    for key in ("open_minutes_before", "decide_minutes_before"):
        changes[key] = _form_number(form.get(key, ""))
    return changes, webhook_format


def _form_number(value: str) -> Any:
    """A whole number typed in a form, or the text as it is (which the services refuse)."""
    value = value.strip()
    return int(value) if value.isascii() and value.isdigit() else value


# --- JSON API --------------------------------------------------------------------


@csrf_exempt  # for API clients, who hold no CSRF cookie; rate-limited per address instead
@require_POST
def api_group_create(request: HttpRequest) -> JsonResponse:
    body = _json_body(request)
    if body is _BAD_BODY:
        return JsonResponse({"error": "bad_message"}, status=400)
    wait = _group_creation_wait(request)
    if wait:
        return rate_limited_json(wait)
    name = body.get("name")
    try:
        webhook_url = _optional_webhook(body) or ""
        group = services.group_create(
            name=name if isinstance(name, str) else "",
            webhook_url=webhook_url,
            language=_language(request),
        )
    except ClientError as error:
        return _error(error)
    return JsonResponse(
        {
            "slug": group.slug,
            "name": group.name,
            "url": request.build_absolute_uri(reverse("group", args=[group.slug])),
            "api_url": request.build_absolute_uri(reverse("api_group", args=[group.slug])),
        },
        status=201,
    )


@csrf_exempt  # PATCH from API clients; the link is the key, as with rooms
@require_http_methods(["GET", "HEAD", "PATCH"])
def api_group(request: HttpRequest, slug: str) -> JsonResponse:
    """GET: the group with its open room, history and favourites; PATCH: rename / webhook."""
    group = _group_get_or_404(slug)
    if group is None:
        return JsonResponse({"error": "group_not_found"}, status=404)
    if request.method == "PATCH":
        body = _json_body(request)
        if body is _BAD_BODY:
            return JsonResponse({"error": "bad_message"}, status=400)
        name = body.get("name")
        try:
            if "name" in body and not isinstance(name, str):
                raise ClientError("invalid_name")
            services.group_update(
                group=group,
                name=name,
                webhook_url=_optional_webhook(body),
                schedule_changes={k: body[k] for k in schedule.SCHEDULE_FIELDS if k in body},
                webhook_format=body.get("webhook_format", ...),
            )
        except ClientError as error:
            return _error(error)
    return JsonResponse(_group_json(request, group))


@csrf_exempt  # for API clients, who hold no CSRF cookie; opening a room is rate-limited instead
@require_POST
def api_group_room(request: HttpRequest, slug: str) -> JsonResponse:
    """The group's open room (200), or a new one (201)."""
    group = _group_get_or_404(slug)
    if group is None:
        return JsonResponse({"error": "group_not_found"}, status=404)
    wait = _room_opening_wait(request, group)
    if wait:
        return rate_limited_json(wait)
    room, created = services.group_room_open(group=group)
    if not created:
        return JsonResponse(_room_json(request, room))
    # Only the caller that opened the room hears its host token, as with POST /api/rooms/.
    return JsonResponse({**_room_json(request, room), "host_token": room.host_token}, status=201)


# --- A group's room ---------------------------------------------------------------


def room_page_context(room: Room) -> dict[str, Any]:
    """A group's room page links to its group and offers its usual places as one-tap adds.

    Registered with rooms.hooks (groups/apps.py): the room page knows nothing of groups.
    """
    if room.group_id is None:
        return {}
    group = room.group
    assert group is not None  # group_id was checked above
    favorites = [favorite["item"] for favorite in selectors.group_favorites(group=group)]
    return {"group": group, "group_favorites": favorites}
