"""A lunch group: a team's standing link that opens today's room and remembers what it ate."""

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

# The chats whose webhook formats we speak (groups/webhooks.py); "" = chosen by the URL's host.
WEBHOOK_FORMATS = ["slack", "mattermost", "discord", "google_chat", "jandi", "dooray", "generic"]
WEEKDAYS_DEFAULT = [1, 2, 3, 4, 5]  # ISO: Monday is 1


def weekdays_default() -> list[int]:
    return list(WEEKDAYS_DEFAULT)


def skip_default() -> list[str]:
    return []


def time_zone_default() -> str:
    """The server's zone; a group created in Korean gets Asia/Seoul (groups/services.py)."""
    return str(settings.TIME_ZONE)


def new_group_slug() -> str:
    """96 random bits, URL-safe: a group's link is its only key, like a room's."""
    return secrets.token_urlsafe(12)


class Group(models.Model):
    """A team that eats together: one standing link that opens today's room and remembers."""

    slug = models.CharField(max_length=32, unique=True, default=new_group_slug, editable=False)
    name = models.CharField(max_length=40)
    # Where decisions are posted (Slack/Mattermost/Discord-style incoming webhook); optional.
    webhook_url = models.URLField(max_length=500, blank=True)
    # The language the webhook's sentence is written in (the creator's, at creation).
    language = models.CharField(max_length=10, default="ko")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    webhook_last_status = models.CharField(max_length=200, blank=True)
    webhook_last_at = models.DateTimeField(null=True, blank=True)
    # The chat's payload format; "" = by the webhook URL's host (groups/webhooks.py).
    webhook_format = models.CharField(
        max_length=16, blank=True, choices=[(name, name) for name in WEBHOOK_FORMATS]
    )
    # The schedule (groups/schedule.py): on each of `weekdays` (ISO numbers) but the `skip`
    # dates, in `timezone`, today's room opens `open_minutes_before` lunch_time and decides
    # `decide_minutes_before` it. No lunch_time: no schedule.
    lunch_time = models.TimeField(null=True, blank=True)
    timezone = models.CharField(max_length=64, default=time_zone_default)
    weekdays = models.JSONField(default=weekdays_default)
    open_minutes_before = models.PositiveSmallIntegerField(default=20)
    decide_minutes_before = models.PositiveSmallIntegerField(default=5)
    skip = models.JSONField(default=skip_default, blank=True)

    class Meta:
        # The table the model had in the rooms app: moving the model moved no data. The
        # rooms' state query reads it by this name too (rooms/selectors.py).
        db_table = "rooms_group"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def webhook_host(self) -> str:
        """The webhook shown without its path: chat webhooks carry their secret in the path."""
        if not self.webhook_url:
            return ""
        return self.webhook_url.split("//", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]


class GroupOpening(models.Model):
    """A group's scheduled opening on one date (in its zone): the row that makes it happen
    once, whatever the number of schedulers. Inserted before the room is opened, in the same
    transaction; a second scheduler's insert waits on the unique (group, date) and finds it."""

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="openings")
    date = models.DateField()
    room_id = models.CharField(max_length=32, blank=True)
    opened_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["group", "date"], name="group_opening_once_a_day")
        ]

    def __str__(self) -> str:
        return f"{self.group_id} {self.date}"
