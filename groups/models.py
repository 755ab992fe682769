"""A lunch group: a team's standing link that opens today's room and remembers what it ate."""

import secrets

from django.db import models
from django.utils import timezone


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
