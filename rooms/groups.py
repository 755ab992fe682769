"""Lunch groups: a team's standing link, today's room, what it ate, and "not that again".

A group's memory is its decided rooms: each room's final decision (`Room.decision_*`) is one
entry of the history. purge_rooms keeps those rooms for GROUP_HISTORY_DAYS, the window the
history and the favourites look back over.
"""

import contextlib
import logging
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TypedDict, cast

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from . import text, webhooks
from .errors import ClientError
from .models import Group, Room

log = logging.getLogger(__name__)

SLUG_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,32}")
NAME_MAX_LENGTH = cast(int, Group._meta.get_field("name").max_length)  # a CharField's
# The group page and the API show at most this many decisions, and this many favourites.
HISTORY_SHOWN = 50
FAVORITES_SHOWN = 8


class HistoryEntry(TypedDict):
    item: str
    by: str
    at: str
    room: str


class Favorite(TypedDict):
    item: str
    count: int


# --- Groups ----------------------------------------------------------------------


def group_name_clean(raw: str) -> str:
    """A valid group name (1-40 visible characters after trimming), or ClientError(invalid_name)."""
    name = text.clean(raw) if isinstance(raw, str) else ""
    if not text.has_visible_text(name) or len(name) > NAME_MAX_LENGTH:
        raise ClientError(
            "invalid_name", f"A group name must be 1 to {NAME_MAX_LENGTH} visible characters."
        )
    return name


def group_create(*, name: str, language: str, webhook_url: str = "") -> Group:
    """A new group; its link (the slug) is its only key."""
    group = Group.objects.create(
        name=group_name_clean(name),
        webhook_url=webhooks.webhook_url_clean(webhook_url) if webhook_url else "",
        language=language,
    )
    log.info("group created group=%s", group.pk)
    return group


def group_update(*, group: Group, name: str | None = None, webhook_url: str | None = None) -> Group:
    """Rename the group and/or set its webhook (`""` clears it); None leaves a field as it is."""
    fields = []
    if name is not None:
        group.name = group_name_clean(name)
        fields.append("name")
    if webhook_url is not None:
        group.webhook_url = webhooks.webhook_url_clean(webhook_url) if webhook_url else ""
        group.webhook_last_status, group.webhook_last_at = "", None
        fields += ["webhook_url", "webhook_last_status", "webhook_last_at"]
    if fields:
        group.save(update_fields=fields)
        log.info("group updated group=%s fields=%s", group.pk, ",".join(fields))
    if name is not None:
        _room_shows_new_name(group)
    return group


def _room_shows_new_name(group: Group) -> None:
    """The open room's clients see the group's new name (`state.room.group`) at once."""
    from . import services  # services imports this module for pick and purge

    room = group_open_room(group=group)
    if room is None:
        return
    # It may expire or close in between: then nobody is left to tell.
    with contextlib.suppress(ClientError):
        services.room_state_resend(room_id=room.pk)


def group_get(*, slug: str) -> Group:
    """The group with this slug, or ClientError(group_not_found)."""
    if not isinstance(slug, str) or not SLUG_SHAPE.fullmatch(slug):
        # Like room ids: never hand the database text it may choke on (PostgreSQL refuses NUL).
        raise ClientError("group_not_found")
    try:
        return Group.objects.get(slug=slug)
    except Group.DoesNotExist:
        raise ClientError("group_not_found") from None


# --- Today's room ----------------------------------------------------------------


def group_open_room(*, group: Group) -> Room | None:
    """The group's room that is open now, if there is one."""
    return Room.objects.active().filter(group=group).order_by("-created_at").first()


def group_room_open(*, group: Group, host_session_key: str = "") -> tuple[Room, bool]:
    """The group's open room, created if there is none: (room, created).

    At most one room per group is open, whatever the number of concurrent calls and
    processes: the group's row is locked while we look and create (PostgreSQL: SELECT ...
    FOR UPDATE; SQLite: the IMMEDIATE transaction already holds the database's write lock).
    A new room is created as any room is (its `host_token` set on the instance), and
    whoever opened it (this session) is its host.
    """
    from . import services  # services imports this module for pick and purge

    with transaction.atomic():
        Group.objects.select_for_update().filter(pk=group.pk).first()
        room = group_open_room(group=group)
        if room is not None:
            return room, False
        room = services.room_create(host_session_key=host_session_key, group=group)
    log.info("group room opened room=%s group=%s", room.pk, group.pk)
    return room, True


# --- Memory ----------------------------------------------------------------------


def _history_start(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(days=settings.GROUP_HISTORY_DAYS)


def _decided_rooms(group: Group, now: datetime | None = None):
    return Room.objects.filter(
        group=group, decided_at__isnull=False, decided_at__gte=_history_start(now)
    ).order_by("-decided_at")


def group_history(*, group: Group, now: datetime | None = None) -> list[HistoryEntry]:
    """The group's decisions within the history window, newest first: one per decided room."""
    rows = _decided_rooms(group, now).values_list(
        "decision_item", "decision_by", "decided_at", "pk"
    )
    return [
        {"item": item, "by": by, "at": at.isoformat(), "room": pk}
        for item, by, at, pk in rows[:HISTORY_SHOWN]
    ]


def group_favorites(*, group: Group, now: datetime | None = None) -> list[Favorite]:
    """What the group decided most often within the history window, most first.

    Decisions count together when their items compare equal (the same folding as
    duplicates); each is shown by the spelling it was last decided under. Ties go to the
    one decided most recently.
    """
    counts: dict[str, int] = {}
    names: dict[str, str] = {}  # newest spelling first, as the rows come newest first
    for item, key in _decided_rooms(group, now).values_list("decision_item", "decision_key"):
        key = key or text.item_key(item)
        counts[key] = counts.get(key, 0) + 1
        names.setdefault(key, item)
    # Python's sort is stable: equal counts keep the newest-first order of first sighting.
    ranked = sorted(names, key=lambda key: -counts[key])
    return [{"item": names[key], "count": counts[key]} for key in ranked[:FAVORITES_SHOWN]]


def group_recent_keys(
    *, group_id: int, exclude_room_id: str, now: datetime | None = None
) -> set[str]:
    """Item keys the group decided in its other rooms within the last GROUP_RECENT_DAYS."""
    since = (now or timezone.now()) - timedelta(days=settings.GROUP_RECENT_DAYS)
    rows = (
        Room.objects.filter(group_id=group_id, decided_at__gte=since)
        .exclude(pk=exclude_room_id)
        .values_list("decision_item", "decision_key")
    )
    return {key or text.item_key(item) for item, key in rows}


def candidates_fresh(
    candidates: Iterable[tuple[str, int]], *, room: Room, now: datetime | None = None
) -> list[tuple[str, int]]:
    """The (name, votes) candidates this room's group did not decide recently elsewhere."""
    if room.group_id is None:
        return list(candidates)  # a room of no group has no memory: the flag changes nothing
    recent = group_recent_keys(group_id=room.group_id, exclude_room_id=room.pk, now=now)
    return [(name, votes) for name, votes in candidates if text.item_key(name) not in recent]


def decision_announce(*, room: Room) -> None:
    """After the pick commits, post the room's decision to its group's webhook, if it has one."""
    if room.group_id is None:
        return
    group = Group.objects.filter(pk=room.group_id).first()
    if group is None or not group.webhook_url:
        return
    payload = webhooks.decision_payload(group=group, room=room)
    webhooks.webhook_post_on_commit(group_id=group.pk, url=group.webhook_url, payload=payload)


def rooms_kept_for_history(now: datetime | None = None) -> Q:
    """The rooms purge_rooms must keep: decided group rooms within the history window."""
    return Q(group__isnull=False, decided_at__gte=_history_start(now))
