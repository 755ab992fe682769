"""Every change to a room goes through here: the room's rules, in one place.

Each service locks the room row (PostgreSQL: SELECT ... FOR UPDATE; SQLite: the
IMMEDIATE transaction's write lock), applies one change, bumps the room's version and
sends the new state to the room's group once the transaction has committed, so nobody
ever sees a change that was rolled back.
"""

import logging
import random
import secrets
from collections.abc import Callable
from datetime import timedelta
from functools import partial

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from . import selectors, text
from .errors import ClientError
from .models import Connection, Item, Mark, Participant, Room
from .protocol import Command, PickMode, encode

log = logging.getLogger(__name__)

_system_random = secrets.SystemRandom()
_BROADCAST_ATTEMPTS = 2


# --- Broadcasting ----------------------------------------------------------------


def _group_send(group: str, message: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    # After a Redis restart the first publish meets a dead pooled connection; the retry
    # gets a fresh one. Clients that still miss it catch up through rooms/liveness.py.
    for attempt in range(1, _BROADCAST_ATTEMPTS + 1):
        try:
            async_to_sync(layer.group_send)(group, message)
            return
        except Exception as exc:  # the change is committed; an outage must not undo it
            log.warning(
                "room broadcast failed group=%s type=%s attempt=%s: %s",
                group,
                message.get("type"),
                attempt,
                exc,
            )


def _broadcast_on_commit(room: Room, *events: dict) -> None:
    """Queue events for the room's group; they leave only if the transaction commits."""
    for event in events:
        message = {
            "type": "room.event",
            "text": encode(event),
            "version": room.version,
            "is_state": event["type"] == "state",
        }
        transaction.on_commit(partial(_group_send, room.group_name, message))


def _commit_change(
    room: Room,
    *,
    activity: bool = True,
    changed_fields: tuple[str, ...] = (),
    before: tuple[dict, ...] = (),
) -> dict:
    """Bump the version (and the expiry, for user activity), save, broadcast; return the state."""
    room.version += 1
    fields = ["version", *changed_fields]
    if activity:
        room.expires_at = timezone.now() + timedelta(seconds=settings.ROOM_TTL_SECONDS)
        fields.append("expires_at")
    room.save(update_fields=fields)
    state = selectors.room_state(room=room)
    _broadcast_on_commit(room, *before, state)
    return state


def _lock_open_room(room_id: str) -> Room:
    """The room, locked for this transaction, if it is still open."""
    return selectors.room_get_open(room_id=room_id, for_update=True)


def _room_item(room: Room, raw_name: str) -> Item:
    key = text.item_key(raw_name)
    item = room.items.filter(key=key).first() if key else None
    if item is None:
        raise ClientError("unknown_item")
    return item


# --- Rooms -----------------------------------------------------------------------


def room_create() -> Room:
    room = Room.objects.create()
    log.info("room created room=%s", room.pk)
    return room


def room_extend(*, room_id: str) -> dict:
    """Keep the room alive for another TTL; nothing else changes."""
    with transaction.atomic():
        room = _lock_open_room(room_id)
        return _commit_change(room)


def room_close(*, room: Room) -> None:
    """Close a room for good (staff action); its connected clients are told and dropped."""
    with transaction.atomic():
        room = Room.objects.select_for_update().get(pk=room.pk)
        if room.closed_at is not None:
            return
        room.closed_at = timezone.now()
        room.version += 1
        room.save(update_fields=["closed_at", "version"])
        transaction.on_commit(partial(_group_send, room.group_name, {"type": "room.closed"}))
    log.info("room closed room=%s", room.pk)


def rooms_purge(*, older_than: timedelta) -> int:
    """Delete rooms that expired or closed more than `older_than` ago; return how many."""
    cutoff = timezone.now() - older_than
    stale = Room.objects.filter(
        closed_at__isnull=True, expires_at__lte=cutoff
    ) | Room.objects.filter(closed_at__lte=cutoff)
    _, per_model = stale.delete()
    deleted = per_model.get(Room._meta.label, 0)
    log.info("rooms purged count=%s", deleted)
    return deleted


# --- Presence --------------------------------------------------------------------


def participant_join(
    *, room_id: str, channel_name: str, session_key: str = "", name: str = ""
) -> tuple[Participant, dict]:
    """Admit a connection to the room (cap permitting) and return its participant and the state.

    A browser session is one participant across tabs and reconnects; a connection without
    a session is a participant of its own. Only participants online count toward the cap.
    """
    nickname = _nickname_or_blank(name)
    with transaction.atomic():
        room = _lock_open_room(room_id)
        _sweep_stale_connections(room)
        participant = None
        if session_key:
            participant = room.participants.filter(session_key=session_key).first()
        online = set(selectors.participants_online(room=room).values_list("pk", flat=True))
        already_online = participant is not None and participant.pk in online
        if not already_online and len(online) >= settings.ROOM_MAX_PARTICIPANTS:
            raise ClientError("room_full")
        if already_online:
            _connection_cap_check(participant)
        if participant is None:
            participant = Participant.objects.create(
                room=room, session_key=session_key, name=nickname or _guest_name(room)
            )
        elif nickname and nickname != participant.name:
            participant.name = nickname
            participant.save(update_fields=["name"])
        Connection.objects.create(participant=participant, channel_name=channel_name)
        state = _commit_change(room)
    log.info("participant joined room=%s participant=%s", room_id, participant.pk)
    return participant, state


def _connection_cap_check(participant: Participant) -> None:
    """One person, many sockets: refuse a connection past ROOM_MAX_CONNECTIONS_PER_PARTICIPANT."""
    live = participant.connections.filter(last_seen__gte=selectors.presence_cutoff()).count()
    if live >= settings.ROOM_MAX_CONNECTIONS_PER_PARTICIPANT:
        raise ClientError("too_many_connections")


def _nickname_or_blank(name: str) -> str:
    # A bad ?name= on connect does not refuse the join: the guest name stands, and the
    # person can rename.
    try:
        return text.participant_name(name)
    except ClientError:
        return ""


def _guest_name(room: Room) -> str:
    return f"guest-{room.participants.count() + 1}"


def participant_leave(*, channel_name: str) -> None:
    """Forget a closed connection; the others see the new presence if someone went offline."""
    with transaction.atomic():
        connection = (
            Connection.objects.select_related("participant")
            .filter(channel_name=channel_name)
            .first()
        )
        if connection is None:
            return
        room = Room.objects.select_for_update().get(pk=connection.participant.room_id)
        participant = connection.participant
        connection.delete()
        still_online = participant.connections.filter(
            last_seen__gte=selectors.presence_cutoff()
        ).exists()
        if not still_online and room.is_open:
            _commit_change(room, activity=False)
    log.info("participant left room=%s participant=%s", room.pk, participant.pk)


def presence_refresh(*, connections: list[tuple[str, str, int]]) -> None:
    """One heartbeat for all of a process's connections: (room id, channel, participant id).

    Marks them seen in one UPDATE, puts back any that a sweep removed while their worker
    was stalled, and drops the ghosts (connections of dead workers) of these rooms.
    """
    channels = [channel for _, channel, _ in connections]
    existing = set(
        Connection.objects.filter(channel_name__in=channels).values_list("channel_name", flat=True)
    )
    Connection.objects.filter(channel_name__in=existing).update(last_seen=timezone.now())
    changed = {room_id for room_id, channel, _ in connections if channel not in existing}
    room_ids = {room_id for room_id, _, _ in connections}
    changed |= set(
        Connection.objects.filter(
            participant__room_id__in=room_ids, last_seen__lt=selectors.presence_cutoff()
        ).values_list("participant__room_id", flat=True)
    )
    for room_id in changed:
        missing = [(c, p) for r, c, p in connections if r == room_id and c not in existing]
        try:
            _presence_repair(room_id, missing)
        except ClientError:
            continue  # the room expired or was closed meanwhile


def _presence_repair(room_id: str, missing: list[tuple[str, int]]) -> None:
    with transaction.atomic():
        room = _lock_open_room(room_id)
        online = set(selectors.participants_online(room=room).values_list("pk", flat=True))
        came_back = False
        for channel, participant_id in missing:
            # Swept while its worker was stalled: it is alive after all.
            came_back |= participant_id not in online
            Connection.objects.get_or_create(
                channel_name=channel, defaults={"participant_id": participant_id}
            )
        if _sweep_stale_connections(room) or came_back:
            _commit_change(room, activity=False)


def _sweep_stale_connections(room: Room) -> bool:
    """Drop connections whose worker stopped heartbeating; True if someone went offline."""
    stale = Connection.objects.filter(
        participant__room=room, last_seen__lt=selectors.presence_cutoff()
    )
    ghosts = set(stale.values_list("participant_id", flat=True))
    if not ghosts:
        return False
    stale.delete()
    log.info("swept stale connections room=%s participants=%s", room.pk, sorted(ghosts))
    online = set(selectors.participants_online(room=room).values_list("pk", flat=True))
    return bool(ghosts - online)


def participant_rename(*, room_id: str, participant_id: int, name: str) -> dict:
    new_name = text.participant_name(name)
    with transaction.atomic():
        room = _lock_open_room(room_id)
        Participant.objects.filter(pk=participant_id, room=room).update(name=new_name)
        return _commit_change(room)


# --- Items and marks -------------------------------------------------------------


def item_add(*, room_id: str, participant_id: int, name: str) -> dict:
    item_name = text.item_name(name)
    key = text.item_key(item_name)
    with transaction.atomic():
        room = _lock_open_room(room_id)
        # One query for both checks: adds are the most frequent action.
        counts = room.items.aggregate(total=Count("pk"), same=Count("pk", filter=Q(key=key)))
        if counts["same"]:
            raise ClientError("duplicate_item")
        if counts["total"] >= settings.ROOM_MAX_ITEMS:
            raise ClientError("too_many_items")
        try:
            # The savepoint keeps the outer transaction usable if the constraint fires.
            with transaction.atomic():
                Item.objects.create(room=room, name=item_name, key=key, added_by_id=participant_id)
        except IntegrityError:
            raise ClientError("duplicate_item") from None
        return _commit_change(room)


def item_remove(*, room_id: str, participant_id: int, name: str) -> dict:
    with transaction.atomic():
        room = _lock_open_room(room_id)
        _room_item(room, name).delete()
        return _commit_change(room)


def mark_toggle(*, room_id: str, participant_id: int, name: str, kind: Mark.Kind) -> dict:
    """Toggle the participant's vote for (or veto of) an item."""
    with transaction.atomic():
        room = _lock_open_room(room_id)
        item = _room_item(room, name)
        deleted, _ = Mark.objects.filter(
            item=item, participant_id=participant_id, kind=kind
        ).delete()
        if not deleted:
            Mark.objects.create(item=item, participant_id=participant_id, kind=kind)
        return _commit_change(room)


# --- Deciding --------------------------------------------------------------------


def pick_choose(candidates: list[tuple[str, int]], *, mode: PickMode, rng: random.Random) -> str:
    """Draw a name from (name, votes) pairs: uniform among the most-voted, or by vote weight."""
    if mode == "weighted":
        weights = [votes for _, votes in candidates]
        if sum(weights) == 0:
            return rng.choice(candidates)[0]
        return rng.choices(candidates, weights=weights, k=1)[0][0]
    best = max(votes for _, votes in candidates)
    return rng.choice([name for name, votes in candidates if votes == best])


def room_pick(
    *, room_id: str, participant_id: int, mode: PickMode = "top", rng: random.Random | None = None
) -> dict:
    """Draw the winner among the items nobody vetoed; everyone gets `picked`, then the state."""
    with transaction.atomic():
        room = _lock_open_room(room_id)
        state = selectors.room_state(room=room)
        candidates = [(i["name"], i["votes"]) for i in state["items"] if not i["vetoed_by"]]
        if not candidates:
            raise ClientError("nothing_to_pick")
        winner = pick_choose(candidates, mode=mode, rng=rng or _system_random)
        picker = Participant.objects.get(pk=participant_id).name
        room.decision_item, room.decision_by, room.decided_at = winner, picker, timezone.now()
        picked = {"type": "picked", "item": winner, "by": picker, "mode": mode}
        log.info("room picked room=%s mode=%s", room.pk, mode)
        decision = ("decision_item", "decision_by", "decided_at")
        return _commit_change(room, changed_fields=decision, before=(picked,))


# --- Commands from the protocol --------------------------------------------------

_ITEM_COMMANDS: dict[str, Callable[..., dict]] = {
    "add": item_add,
    "remove": item_remove,
    "vote": partial(mark_toggle, kind=Mark.Kind.VOTE),
    "veto": partial(mark_toggle, kind=Mark.Kind.VETO),
}


def command_run(*, room_id: str, participant_id: int, command: Command) -> dict:
    """Apply one parsed protocol command for a participant; return the room's new state."""
    if command.action in _ITEM_COMMANDS:
        service = _ITEM_COMMANDS[command.action]
        return service(room_id=room_id, participant_id=participant_id, name=command.text)
    if command.action == "rename":
        return participant_rename(room_id=room_id, participant_id=participant_id, name=command.text)
    if command.action == "pick":
        return room_pick(room_id=room_id, participant_id=participant_id, mode=command.mode)
    return room_extend(room_id=room_id)
