"""A lunch group's schedule: its rules (what may be set) and its times (when it eats).

On each scheduled day (one of `weekdays`, not in `skip`, a date in the group's `timezone`), at
`lunch_time - open_minutes_before` the group's room is opened (or the open one taken), its
deadline set to `lunch_time - decide_minutes_before`, and the team chat told: that work is
groups/scheduler.py. A scheduler that was down at the opening time and comes back before the
deadline still opens it; after the deadline the day is skipped.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache
from typing import Any

from django.conf import settings

from rooms.errors import ClientError

from .models import WEBHOOK_FORMATS, Group

SCHEDULE_FIELDS = (
    "lunch_time",
    "timezone",
    "weekdays",
    "open_minutes_before",
    "decide_minutes_before",
    "skip",
)
MAX_MINUTES_BEFORE = 720  # half a day: an opening never moves to another morning
MAX_SKIPPED = 366
_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


# --- The rules --------------------------------------------------------------------


@cache
def time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def time_zone_for_language(language: str) -> str:
    """A new group's zone: Asia/Seoul for a group created in Korean, else the server's."""
    return "Asia/Seoul" if language == "ko" else str(settings.TIME_ZONE)


def _invalid() -> ClientError:
    return ClientError("invalid_schedule")


def _integer(value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _invalid()
    return value


def schedule_clean(group: Group, changes: dict[str, Any]) -> dict[str, Any]:
    """The model's values for `changes` (API shapes: "HH:MM", ISO weekday numbers, ISO dates),
    checked together with what the group already has; else ClientError(invalid_schedule)."""
    clean: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "lunch_time":
            if value is None:
                clean[key] = None
            elif isinstance(value, str) and (match := _HHMM.fullmatch(value)):
                clean[key] = time(int(match[1]), int(match[2]))
            else:
                raise _invalid()
        elif key == "timezone":
            if not isinstance(value, str) or value not in time_zones():
                raise _invalid()
            clean[key] = value
        elif key == "weekdays":
            if not isinstance(value, list):
                raise _invalid()
            clean[key] = sorted({_integer(day, 1, 7) for day in value})
        elif key in ("open_minutes_before", "decide_minutes_before"):
            clean[key] = _integer(value, 0, MAX_MINUTES_BEFORE)
        elif key == "skip":
            if not isinstance(value, list) or len(value) > MAX_SKIPPED:
                raise _invalid()
            days = set()
            for day in value:
                if not isinstance(day, str) or not _ISO_DATE.fullmatch(day):
                    raise _invalid()
                try:
                    days.add(date.fromisoformat(day).isoformat())
                except ValueError:
                    raise _invalid() from None
            clean[key] = sorted(days)
        else:
            raise _invalid()
    opening = clean.get("open_minutes_before", group.open_minutes_before)
    deciding = clean.get("decide_minutes_before", group.decide_minutes_before)
    if opening <= deciding:  # the room opens before it decides
        raise _invalid()
    return clean


def webhook_format_clean(value: Any) -> str:
    """ "" (by host) for null, else one of the formats; else ClientError(invalid_webhook)."""
    if value is None:
        return ""
    if value not in WEBHOOK_FORMATS:
        raise ClientError("invalid_webhook")
    return str(value)


def schedule_json(group: Group) -> dict[str, Any]:
    """The schedule as the API shows it (top level of GET /api/groups/<slug>/)."""
    return {
        "lunch_time": group.lunch_time.strftime("%H:%M") if group.lunch_time else None,
        "timezone": group.timezone,
        "weekdays": list(group.weekdays),
        "open_minutes_before": group.open_minutes_before,
        "decide_minutes_before": group.decide_minutes_before,
        "skip": list(group.skip),
        "webhook_format": group.webhook_format or None,
    }


# --- When ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Lunch:
    """One scheduled lunch: its date in the group's zone and its three moments."""

    day: date
    opens_at: datetime
    decides_at: datetime
    lunch_at: datetime


def group_zone(group: Group) -> zoneinfo.ZoneInfo:
    return zone_named(group.timezone)


def zone_named(name: str) -> zoneinfo.ZoneInfo:
    """The zone of that name (a group's, checked when it was set), else the server's."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo(str(settings.TIME_ZONE))


def lunch_on(group: Group, day: date) -> Lunch | None:
    """The group's lunch on `day` (a date in its zone), None if it does not eat then."""
    if group.lunch_time is None:
        return None
    if day.isoweekday() not in group.weekdays or day.isoformat() in group.skip:
        return None
    return _lunch(group, group.lunch_time, day)


def lunch_on_any_day(group: Group) -> Lunch | None:
    """The group's times on a day it eats (whatever the day), None without a lunch time."""
    if group.lunch_time is None:
        return None
    return _lunch(group, group.lunch_time, date(2026, 1, 5))  # wall-clock times: any day


def _lunch(group: Group, lunch_time: time, day: date) -> Lunch:
    lunch_at = datetime.combine(day, lunch_time, tzinfo=group_zone(group))
    return Lunch(
        day=day,
        opens_at=lunch_at - timedelta(minutes=group.open_minutes_before),
        decides_at=lunch_at - timedelta(minutes=group.decide_minutes_before),
        lunch_at=lunch_at,
    )


def lunches(group: Group, start: date, days: int) -> list[Lunch]:
    """The group's lunches on `days` dates from `start` (dates in its zone)."""
    found = (lunch_on(group, start + timedelta(days=n)) for n in range(days))
    return [lunch for lunch in found if lunch is not None]


def lunch_due(group: Group, now: datetime) -> Lunch | None:
    """The lunch whose room should be open now: opened, not yet decided, None if none."""
    today = now.astimezone(group_zone(group)).date()
    # An opening up to 12 hours before lunch may fall on the evening before.
    for day in (today, today + timedelta(days=1)):
        lunch = lunch_on(group, day)
        if lunch is not None and lunch.opens_at <= now < lunch.decides_at:
            return lunch
    return None
