"""Reading lunch groups: a group by its link, today's room, what it ate, and its favourites.

A group's memory is its decided rooms: each room's final decision (`Room.decision_*`) is one
entry of the history. purge_rooms keeps those rooms for GROUP_HISTORY_DAYS (groups/apps.py
registers `rooms_kept_for_history`), the window the history and the favourites look back over.
"""

import re
from collections.abc import Iterable
from datetime import datetime, time, timedelta
from typing import TypedDict

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from rooms import text
from rooms.errors import ClientError
from rooms.models import Room

from . import schedule
from .models import Group

SLUG_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,32}")
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


def group_get(*, slug: str) -> Group:
    """The group with this slug, or ClientError(group_not_found)."""
    if not isinstance(slug, str) or not SLUG_SHAPE.fullmatch(slug):
        # Like room ids: never hand the database text it may choke on (PostgreSQL refuses NUL).
        raise ClientError("group_not_found")
    try:
        return Group.objects.get(slug=slug)
    except Group.DoesNotExist:
        raise ClientError("group_not_found") from None


def group_room_get_open(*, group: Group) -> Room | None:
    """The group's room that is open now, if there is one."""
    return Room.objects.active().filter(group=group).order_by("-created_at").first()


# --- Memory ----------------------------------------------------------------------


def history_start(now: datetime | None = None) -> datetime:
    """The oldest decision the history, the favourites and the purge still count."""
    return (now or timezone.now()) - timedelta(days=settings.GROUP_HISTORY_DAYS)


def _decided_rooms(group: Group, now: datetime | None = None) -> QuerySet[Room]:
    return Room.objects.filter(
        group=group, decided_at__isnull=False, decided_at__gte=history_start(now)
    ).order_by("-decided_at")


def group_history(*, group: Group, now: datetime | None = None) -> list[HistoryEntry]:
    """The group's decisions within the history window, newest first: one per decided room."""
    rows = _decided_rooms(group, now).values_list(
        "decision_item", "decision_by", "decided_at", "pk"
    )
    return [
        {"item": item, "by": by, "at": at.isoformat(), "room": pk}
        for item, by, at, pk in rows[:HISTORY_SHOWN]
        if at is not None  # decided rooms only: always set
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


def recent_since(zone_name: str, now: datetime) -> datetime:
    """Where "this week" starts for a group eating in `zone_name`: the start of its day
    GROUP_RECENT_DAYS - 1 days before today (7: today and the 6 days before; the same weekday
    last week is free again, whatever the hour it was decided at)."""
    zone = schedule.zone_named(zone_name)
    first = now.astimezone(zone).date() - timedelta(days=settings.GROUP_RECENT_DAYS - 1)
    return datetime.combine(first, time(0), tzinfo=zone)


def group_recent_keys(
    *, group_id: int, exclude_room_id: str, now: datetime | None = None
) -> set[str]:
    """Item keys the group decided in its other rooms "this week": within the last
    GROUP_RECENT_DAYS dates in the group's time zone (recent_since)."""
    now = now or timezone.now()
    # One query: a day more than the window can be (the zone is read with the rows), then
    # the window's exact start, which depends on the group's zone.
    wide = now - timedelta(days=settings.GROUP_RECENT_DAYS + 1)
    rows = (
        Room.objects.filter(group_id=group_id, decided_at__gte=wide)
        .exclude(pk=exclude_room_id)
        .values_list("decision_item", "decision_key", "decided_at", "group__timezone")
    )
    return {
        key or text.item_key(item)
        for item, key, at, zone_name in rows
        if at is not None and at >= recent_since(zone_name, now)
    }


def rooms_kept_for_history(now: datetime | None = None) -> Q:
    """The rooms purge_rooms must keep: decided group rooms within the history window."""
    return Q(group__isnull=False, decided_at__gte=history_start(now))


def candidates_fresh(
    candidates: Iterable[tuple[str, int]], *, room: Room, now: datetime | None = None
) -> list[tuple[str, int]]:
    """The (name, votes) candidates this room's group did not decide recently elsewhere."""
    if room.group_id is None:
        return list(candidates)  # a room of no group has no memory: the flag changes nothing
    recent = group_recent_keys(group_id=room.group_id, exclude_room_id=room.pk, now=now)
    return [(name, votes) for name, votes in candidates if text.item_key(name) not in recent]
