"""The scheduler's work: at each group's opening time, today's room opened once, its deadline
set, and the team chat told (the times and rules are groups/schedule.py).

Exactly once per group and day, with any number of schedulers (`manage.py run_scheduler`) and
across restarts: the opening is a row, unique on (group, date), inserted in the same
transaction as the room's opening. A second scheduler's insert waits on the first's (the
unique index) and then finds the row; if the first rolled back, the second opens instead.
`scheduler_tick(now)` is the whole of it, a function of the clock it is given.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext

from rooms.models import Room
from rooms.services.deadlines import deadline_set

from . import services, webhooks
from .models import Group, GroupOpening
from .schedule import Lunch, group_zone, lunch_due

log = logging.getLogger(__name__)

KEPT_OPENINGS = timedelta(days=7)


def link_base_url() -> str:
    """Where the posted links point: PUBLIC_URL, else the address `make run` serves."""
    base = settings.PUBLIC_URL or settings.GROUP_LINK_BASE_URL or "http://localhost:8000"
    return base.rstrip("/")


def opening_text(group: Group, room_url: str, decides_at: datetime) -> str:
    """ "Today's lunch room is open: <url> (we decide at 11:55)" in the group's language."""
    at = decides_at.astimezone(group_zone(group)).strftime("%H:%M")
    with translation.override(group.language):
        return gettext("Today's lunch room is open: %(url)s (we decide at %(time)s)") % {
            "url": room_url,
            "time": at,
        }


def opening_announce(group: Group, room: Room, lunch: Lunch) -> None:
    """Tell the team chat that today's room is open (after the opening has committed)."""
    try:
        _opening_post(group, room, lunch)
    except Exception:  # the room is open whatever the post does; the log says what failed
        log.exception("opening post failed room=%s group=%s", room.pk, group.pk)


def _opening_post(group: Group, room: Room, lunch: Lunch) -> None:
    url = link_base_url() + reverse("room", args=[room.pk])
    text = opening_text(group, url, lunch.decides_at)
    data = {
        "event": "room_opened",
        "group": {"slug": group.slug, "name": group.name},
        "room": room.pk,
        "url": url,
        "decides_at": lunch.decides_at.isoformat(),
    }
    webhooks.message_post(group=group, text=text, link=url, title=group.name, data=data)


def lunch_open(group: Group, lunch: Lunch) -> Room | None:
    """Open the group's room for `lunch` unless a scheduler already did: the room, or None.

    The (group, date) row is inserted first, in this transaction: a concurrent scheduler's
    insert waits for ours and then finds it (get_or_create), so only one goes on.
    """
    with transaction.atomic():
        _, created = GroupOpening.objects.get_or_create(group=group, date=lunch.day)
        if not created:
            return None
        room, created = services.group_room_open(group=group)
        # A room someone opened by hand keeps its host's deadline, and a decided one its
        # decision: the schedule's deadline would draw again over it.
        if created or (room.deadline_at is None and room.decided_at is None):
            deadline_set(room_id=room.pk, at=lunch.decides_at, participant_id=None)  # issue 29
        GroupOpening.objects.filter(group=group, date=lunch.day).update(room_id=room.pk)
        # The rows of a week ago can never be due again (an opening is at most 12 hours
        # before its lunch): each group keeps a week of them, not one a day for ever.
        GroupOpening.objects.filter(group=group, date__lt=lunch.day - KEPT_OPENINGS).delete()
        transaction.on_commit(partial(opening_announce, group, room, lunch))
    log.info("scheduled room opened room=%s group=%s date=%s", room.pk, group.pk, lunch.day)
    return room


def scheduler_tick(now: datetime) -> list[Room]:
    """Open every room due at `now` that no scheduler opened yet; the rooms this call opened."""
    opened = []
    for group in Group.objects.filter(lunch_time__isnull=False).order_by("pk"):
        lunch = lunch_due(group, now)
        if lunch is None:
            continue
        if GroupOpening.objects.filter(group=group, date=lunch.day).exists():
            continue  # the everyday case: opened already, no lock taken
        try:
            room = lunch_open(group, lunch)
        except Exception:  # one group's failure must not stop the others' lunch
            log.exception("scheduled opening failed group=%s date=%s", group.pk, lunch.day)
            continue
        if room is not None:
            opened.append(room)
    return opened
