"""Every change to a room goes through here: the room's rules, in one place.

Each service locks the room row (PostgreSQL: SELECT ... FOR UPDATE; SQLite: the
IMMEDIATE transaction's write lock), applies one change, bumps the room's version and
sends the new state to the room's group once the transaction has committed, so nobody
ever sees a change that was rolled back.
"""

import logging
import operator
import random
import secrets
from datetime import timedelta
from functools import reduce

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from . import broadcast, groups, selectors, text
from .errors import ClientError
from .models import Connection, Item, Mark, Participant, Room, new_secret_token, token_hash
from .protocol import Command, PickedEvent, PickMode, StateEvent

log = logging.getLogger(__name__)

_system_random = secrets.SystemRandom()


def _commit_change(
    room: Room,
    *,
    activity: bool = True,
    changed_fields: tuple[str, ...] = (),
    before: tuple[PickedEvent, ...] = (),
    presence: bool = False,
) -> StateEvent:
    """Bump the version (and the expiry, for user activity), save, broadcast; return the state."""
    room.version += 1
    fields = ["version", *changed_fields]
    if activity:
        room.expires_at = timezone.now() + timedelta(seconds=settings.ROOM_TTL_SECONDS)
        fields.append("expires_at")
    room.save(update_fields=fields)
    state = selectors.room_state(room=room)
    broadcast.state_on_commit(group=room.group_name, state=state, before=before, presence=presence)
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
        broadcast.closed_on_commit(group=room.group_name)
    log.info("room closed room=%s", room.pk)


def rooms_purge(*, older_than: timedelta) -> int:
    """Delete rooms that expired or closed more than `older_than` ago; return how many."""
    now = timezone.now()
    cutoff = now - older_than
    stale = Room.objects.filter(
        closed_at__isnull=True, expires_at__lte=cutoff
    ) | Room.objects.filter(closed_at__lte=cutoff)
    # A group's history outlives its rooms: decided group rooms stay for GROUP_HISTORY_DAYS.
    stale = stale.exclude(groups.rooms_kept_for_history(now))
    _, per_model = stale.delete()
    deleted = per_model.get(Room._meta.label, 0)
    log.info("rooms purged count=%s", deleted)
    return deleted


# --- Presence --------------------------------------------------------------------


def participant_join(
    *, room_id: str, channel_name: str, session_key: str = "", name: str = "", token: str = ""
) -> tuple[Participant, dict]:
    """Admit a connection to the room (cap permitting) and return its participant and the state.

    A rejoin token names a participant of this room from any browser or process; else a
    browser session is one participant across tabs and reconnects; else the connection is
    a participant of its own. Only participants online count toward the cap. The returned
    participant carries its rejoin token in `participant.token` (never stored, only its hash).
    """
    nickname = _nickname_or_blank(name)
    presented = token_hash(token) if 0 < len(token) <= _TOKEN_MAX_LENGTH else ""
    with transaction.atomic():
        room = _lock_open_room(room_id)
        _sweep_stale_connections(room)
        participant = _participant_returning(room, hashed=presented, session_key=session_key)
        online = set(selectors.participants_online(room=room).values_list("pk", flat=True))
        already_online = participant is not None and participant.pk in online
        if not already_online and len(online) >= settings.ROOM_MAX_PARTICIPANTS:
            raise ClientError("room_full")
        if already_online:
            _connection_cap_check(participant)
        if participant is None:
            participant = _participant_new(room, session_key, nickname)
        else:
            _participant_rejoin(participant, presented=presented, token=token, nickname=nickname)
        Connection.objects.create(participant=participant, channel_name=channel_name)
        state = _commit_change(room, presence=True)
    log.info("participant joined room=%s participant=%s", room_id, participant.pk)
    return participant, state


# Longer than any token we hand out (32 characters); longer text is not hashed at all.
_TOKEN_MAX_LENGTH = 128


def _participant_returning(room: Room, *, hashed: str, session_key: str) -> Participant | None:
    """The participant a rejoin token (first) or a browser session names in this room."""
    known = [Q(token_hash=hashed)] if hashed else []
    if session_key:
        known.append(Q(session_key=session_key))
    if not known:
        return None
    # At most two rows: both columns are unique per room.
    found = list(room.participants.filter(reduce(operator.or_, known)))
    by_token = [p for p in found if hashed and p.token_hash == hashed]
    return (by_token or found or [None])[0]


def _participant_new(room: Room, session_key: str, nickname: str) -> Participant:
    token = new_secret_token()
    participant = Participant.objects.create(
        room=room,
        session_key=session_key,
        name=nickname or _guest_name(room),
        token_hash=token_hash(token),
    )
    participant.token = token
    return participant


def _participant_rejoin(
    participant: Participant, *, presented: str, token: str, nickname: str
) -> None:
    """Same participant again: keep its token if it showed it, else issue a new one."""
    fields = []
    if presented and presented == participant.token_hash:
        participant.token = token
    else:
        # Back by its session without the token (cleared storage): only the hash is kept,
        # so the old token cannot be sent again; a new one replaces it.
        participant.token = new_secret_token()
        participant.token_hash = token_hash(participant.token)
        fields.append("token_hash")
    if nickname and nickname != participant.name:
        participant.name = nickname
        fields.append("name")
    if fields:
        participant.save(update_fields=fields)


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
            _commit_change(room, activity=False, presence=True)
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
    *,
    room_id: str,
    participant_id: int,
    mode: PickMode = "top",
    avoid_recent: bool = False,
    rng: random.Random | None = None,
) -> dict:
    """Draw the winner among the items nobody vetoed; everyone gets `picked`, then the state.

    With `avoid_recent`, a group's room also skips what the group decided lately elsewhere.
    """
    with transaction.atomic():
        room = _lock_open_room(room_id)
        state = selectors.room_state(room=room)
        candidates = [(i["name"], i["votes"]) for i in state["items"] if not i["vetoed_by"]]
        if avoid_recent:
            candidates = groups.candidates_fresh(candidates, room=room)
        if not candidates:
            raise ClientError("nothing_to_pick")
        winner = pick_choose(candidates, mode=mode, rng=rng or _system_random)
        picker = Participant.objects.get(pk=participant_id).name
        room.decision_item, room.decision_by, room.decided_at = winner, picker, timezone.now()
        room.decision_key = text.item_key(winner)
        picked = {"type": "picked", "item": winner, "by": picker, "mode": mode}
        log.info("room picked room=%s mode=%s avoid_recent=%s", room.pk, mode, avoid_recent)
        decision = ("decision_item", "decision_by", "decided_at", "decision_key")
        state = _commit_change(room, changed_fields=decision, before=(picked,))
        groups.decision_announce(room=room)  # queued after the commit, behind the broadcast
        return state


# --- Commands from the protocol --------------------------------------------------


def command_run(*, room_id: str, participant_id: int, command: Command) -> StateEvent:
    """Apply one parsed protocol command for a participant; return the room's new state."""
    spec = command.spec
    service = globals()[spec.service]  # protocol.COMMANDS names a function of this module
    arguments = {**spec.fixed, **command.arguments}
    if spec.by_participant:
        arguments["participant_id"] = participant_id
    return service(room_id=room_id, **arguments)
