"""Changing lunch groups: create, rename, set the webhook, open today's room, announce.

The reads (a group by its link, today's room, history, favourites) are groups/selectors.py.
"""

import contextlib
import logging
from typing import Any, cast

from django.db import transaction

from rooms import services as room_services
from rooms import text
from rooms.errors import ClientError
from rooms.models import Room

from . import schedule, selectors, webhooks
from .models import Group

log = logging.getLogger(__name__)

NAME_MAX_LENGTH = cast(int, Group._meta.get_field("name").max_length)  # a CharField's


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
        timezone=schedule.time_zone_for_language(language),
    )
    log.info("group created group=%s", group.pk)
    return group


def group_update(
    *,
    group: Group,
    name: str | None = None,
    webhook_url: str | None = None,
    schedule_changes: dict[str, Any] | None = None,
    webhook_format: Any = ...,
) -> Group:
    """Rename the group, set its webhook (`""` clears it), its schedule (API shapes: checked
    together, else invalid_schedule) and its webhook format (None: by host); None (`...` for
    the format) leaves a field as it is. Nothing is saved if any value is refused."""
    fields = []
    clean = schedule.schedule_clean(group, schedule_changes or {})
    chosen_format = None if webhook_format is ... else schedule.webhook_format_clean(webhook_format)
    if name is not None:
        group.name = group_name_clean(name)
        fields.append("name")
    if webhook_url is not None:
        group.webhook_url = webhooks.webhook_url_clean(webhook_url) if webhook_url else ""
        group.webhook_last_status, group.webhook_last_at = "", None
        fields += ["webhook_url", "webhook_last_status", "webhook_last_at"]
    for field, value in clean.items():
        setattr(group, field, value)
        fields.append(field)
    if chosen_format is not None:
        group.webhook_format = chosen_format
        fields.append("webhook_format")
    if fields:
        group.save(update_fields=fields)
        log.info("group updated group=%s fields=%s", group.pk, ",".join(fields))
    if name is not None:
        _room_shows_new_name(group)
    return group


def _room_shows_new_name(group: Group) -> None:
    """The open room's clients see the group's new name (`state.room.group`) at once."""
    room = selectors.group_room_get_open(group=group)
    if room is None:
        return
    # It may expire or close in between: then nobody is left to tell.
    with contextlib.suppress(ClientError):
        room_services.room_state_resend(room_id=room.pk)


# --- Today's room ----------------------------------------------------------------


def group_room_open(*, group: Group, host_session_key: str = "") -> tuple[Room, bool]:
    """The group's open room, created if there is none: (room, created).

    At most one room per group is open, whatever the number of concurrent calls and
    processes: the group's row is locked while we look and create (PostgreSQL: SELECT ...
    FOR UPDATE; SQLite: the IMMEDIATE transaction already holds the database's write lock).
    A new room is created as any room is (its `host_token` set on the instance), and
    whoever opened it (this session) is its host.
    """
    with transaction.atomic():
        Group.objects.select_for_update().filter(pk=group.pk).first()
        room = selectors.group_room_get_open(group=group)
        if room is not None:
            return room, False
        room = room_services.room_create(host_session_key=host_session_key, group=group)
    log.info("group room opened room=%s group=%s", room.pk, group.pk)
    return room, True


# --- The decision ----------------------------------------------------------------


def decision_announce(*, room: Room, **signal: object) -> None:
    """Post a room's committed decision to its group's webhook, if it has one.

    The receiver of rooms.hooks.room_decided (groups/apps.py), which is sent once the pick
    has committed, after the room's broadcast: the post never delays the `picked` event.
    """
    if room.group_id is None:
        return
    group = Group.objects.filter(pk=room.group_id).first()
    if group is None or not group.webhook_url:
        return
    payload = webhooks.decision_payload(group=group, room=room)
    data = {key: value for key, value in payload.items() if key != "text"}
    webhooks.message_post(group=group, text=payload["text"], data=data)


def message_announce(*, room: Room, text: str, **signal: object) -> None:
    """Post a room's summary to its group's webhook in its chat's format, if it has one
    (`announce`). The receiver of rooms.hooks.room_announced (groups/apps.py), sent after
    the commit."""
    if room.group_id is None:
        return
    group = Group.objects.filter(pk=room.group_id).first()
    if group is None or not group.webhook_url:
        return
    data = {"group": {"slug": group.slug, "name": group.name}, "room": room.pk}
    webhooks.message_post(group=group, text=text, data=data)
