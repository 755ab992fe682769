"""A lunch group's calendar feed (GET /g/<slug>/lunch.ics): the next days' lunches, each with
its time and the group's link, and the last days' decisions as the events' titles.

Made with the icalendar library: the escaping, line folding and time zones of RFC 5545 are
its business, and tests/test_schedule.py reads the feed back with its parser.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import icalendar
from django.utils import timezone, translation
from django.utils.translation import gettext

from rooms.models import Room

from .models import Group
from .schedule import group_zone, lunches

DAYS_AHEAD = 14
DAYS_BACK = 30
LUNCH_MINUTES = 60  # how long a lunch event lasts in the calendar


def group_calendar(*, group: Group, group_url: str, now: datetime | None = None) -> bytes:
    """The group's feed: scheduled lunches for DAYS_AHEAD days, decisions of DAYS_BACK days."""
    now = now or timezone.now()
    zone = group_zone(group)
    today = now.astimezone(zone).date()
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//lunchsite//lunch group//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", group.name)
    calendar.add("x-wr-timezone", group.timezone)
    with translation.override(group.language):
        for lunch in lunches(group, today, DAYS_AHEAD):
            event = icalendar.Event()
            event.add("uid", f"lunch-{group.slug}-{lunch.day.isoformat()}@lunchsite")
            event.add("dtstamp", now)
            event.add("dtstart", lunch.lunch_at)
            event.add("dtend", lunch.lunch_at + timedelta(minutes=LUNCH_MINUTES))
            event.add("summary", gettext("Lunch: %(group)s") % {"group": group.name})
            event.add(
                "description",
                gettext("The room opens at %(opens)s and decides at %(decides)s: %(url)s")
                % {
                    "opens": lunch.opens_at.strftime("%H:%M"),
                    "decides": lunch.decides_at.strftime("%H:%M"),
                    "url": group_url,
                },
            )
            event.add("url", group_url)
            calendar.add_component(event)
        decided = Room.objects.filter(
            group=group, decided_at__gte=now - timedelta(days=DAYS_BACK), decided_at__lte=now
        ).order_by("decided_at")
        for room in decided:
            assert room.decided_at is not None  # filtered on it
            event = icalendar.Event()
            event.add("uid", f"decision-{room.pk}@lunchsite")
            event.add("dtstamp", now)
            event.add("dtstart", room.decided_at.astimezone(zone))
            event.add("dtend", room.decided_at.astimezone(zone) + timedelta(minutes=LUNCH_MINUTES))
            event.add("summary", room.decision_item)
            event.add("description", gettext("Picked by %(by)s") % {"by": room.decision_by or "—"})
            calendar.add_component(event)
    calendar.add_missing_timezones()  # a VTIMEZONE for each TZID the events name (RFC 5545)
    return calendar.to_ical()
