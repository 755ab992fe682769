"""Presence: who joins, leaves, is still connected; the sweep of stale connections."""

import logging

from django.conf import settings
from django.db import transaction
from django.db.models import Exists
from django.utils import timezone

from .. import broadcast, selectors, text
from ..errors import ClientError
from ..models import (
    ROOM_OPEN_SQL,
    Connection,
    Participant,
    Room,
    host_token_seed,
    new_token_seed,
    token_from_seed,
    token_hash,
)
from ..protocol import StateEvent
from . import deadlines
from .host import host_claim, host_pass_if_overdue
from .locking import room_bump, room_bump_held, room_fields_save, room_hold
from .statements import columns, execute, row_to_model
from .states import state_publish

log = logging.getLogger(__name__)


# --- Presence --------------------------------------------------------------------


def participant_join(
    *, room_id: str, channel_name: str, session_key: str = "", name: str = "", token: str = ""
) -> tuple[Participant, StateEvent]:
    """Admit a connection to the room (caps permitting) and return its participant and the state.

    A rejoin token names a participant of this room from any browser or process; else a
    browser session is one participant across tabs and reconnects; else the connection is
    a participant of its own. Only participants online count toward the cap; every new one
    counts toward ROOM_MAX_PARTICIPANTS_EVER. The returned participant carries its rejoin
    token in `participant.token` (never stored, only its hash).
    """
    nickname = _nickname_or_blank(name)
    presented = token_hash(token) if 0 < len(token) <= _TOKEN_MAX_LENGTH else ""
    with transaction.atomic():
        room = room_bump(room_id)
        host_before = [getattr(room, f) for f in _HOST_FIELDS]
        # Everyone who ever joined (ROOM_MAX_PARTICIPANTS_EVER bounds them), in one query.
        people = _participants_with_presence(room)
        if any(p.ghost for p in people):
            _sweep_stale_connections(room)  # a dead worker's connections: rare
        participant = _participant_returning(people, hashed=presented, session_key=session_key)
        if participant is not None and participant.kicked_at is not None:
            raise ClientError("kicked")
        online = [p.pk for p in people if p.online]
        already_online = participant is not None and participant.pk in online
        if not already_online and len(online) >= settings.ROOM_MAX_PARTICIPANTS:
            raise ClientError("room_full")
        if participant is not None and already_online:
            _connection_cap_check(participant)
        host_pass_if_overdue(room, online)
        # The room's creator: its host token (which becomes its rejoin token), or its session.
        by_host_token = bool(presented) and presented == room.host_token_hash
        creator = by_host_token or bool(session_key and session_key == room.host_session_key)
        # The host token becomes its creator's rejoin token.
        seed = host_token_seed(room.pk) if by_host_token else ""
        if participant is None:
            participant = _participant_new(
                room, session_key, nickname, seed=seed, before=len(people)
            )
        else:
            _participant_rejoin(participant, seed=seed, nickname=nickname)
        host_claim(room, participant, creator=creator)
        changed = [
            f for f, was in zip(_HOST_FIELDS, host_before, strict=True) if getattr(room, f) != was
        ]
        if changed:
            room_fields_save(room, *changed)
        Connection.objects.create(participant=participant, channel_name=channel_name)
        state = state_publish(room, presence=True)
    log.info("participant joined room=%s participant=%s", room_id, participant.pk)
    return participant, state


# Longer than any token we hand out (32 characters); longer text is not hashed at all.
_TOKEN_MAX_LENGTH = 128
# The room's columns a join may change besides its version.
_HOST_FIELDS = ("host_id", "host_token_hash", "host_session_key", "host_absent_since")


_PEOPLE_SQL = """
SELECT {columns},
       EXISTS (SELECT 1 FROM rooms_connection c
                WHERE c.participant_id = p.id AND c.last_seen >= %(cutoff)s),
       EXISTS (SELECT 1 FROM rooms_connection c
                WHERE c.participant_id = p.id AND c.last_seen < %(cutoff)s)
  FROM rooms_participant p
 WHERE p.room_id = %(room)s
 ORDER BY p.joined_at, p.id
"""


def _participants_with_presence(room: Room) -> list[Participant]:
    """All of the room's participants, each marked `online` (a fresh connection) and `ghost`
    (a connection of a worker that stopped heartbeating), in the order they joined."""
    sql = _PEOPLE_SQL.format(columns=columns(Participant, "p."))
    people = []
    for row in execute(sql, {"room": room.pk, "cutoff": selectors.presence_cutoff()}):
        participant = row_to_model(Participant, row)
        participant.online, participant.ghost = bool(row[-2]), bool(row[-1])
        people.append(participant)
    return people


def _participant_returning(
    people: list[Participant], *, hashed: str, session_key: str
) -> Participant | None:
    """The participant a rejoin token (first) or a browser session names in this room."""
    by_token = [p for p in people if hashed and p.token_hash == hashed]
    by_session = [p for p in people if session_key and p.session_key == session_key]
    found = by_token or by_session
    return found[0] if found else None


def _participant_new(
    room: Room, session_key: str, nickname: str, *, seed: str, before: int
) -> Participant:
    """A new participant (its token made from `seed`, or from a new one), unless the room
    admitted enough already. `before` is how many participants the room has admitted so far.
    """
    if before >= settings.ROOM_MAX_PARTICIPANTS_EVER:
        log.info("room admitted its lifetime maximum room=%s", room.pk)
        raise ClientError("room_full")
    seed = seed or new_token_seed()
    token = token_from_seed(seed)
    participant = Participant.objects.create(
        room=room,
        session_key=session_key,
        name=nickname or f"guest-{before + 1}",
        token_seed=seed,
        token_hash=token_hash(token),
    )
    participant.token = token
    return participant


def _participant_rejoin(participant: Participant, *, seed: str, nickname: str) -> None:
    """Same participant again, with the same token (by token or by session alike), made from
    its seed; `seed` (the host token's) replaces it.

    The hash is written again only when the token changed: the host token claimed by a
    participant who had joined before, or a SECRET_KEY rotated since the token was made.
    """
    fields = []
    if seed and seed != participant.token_seed:
        participant.token_seed = seed
        fields.append("token_seed")
    elif not participant.token_seed:  # joined before tokens had seeds (migration 0005)
        participant.token_seed = new_token_seed()
        fields.append("token_seed")
    participant.token = token_from_seed(participant.token_seed)
    if token_hash(participant.token) != participant.token_hash:
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


_LEAVE_LOCK_SQL = """
UPDATE rooms_room SET version = version + 1
 WHERE id = (SELECT p.room_id FROM rooms_connection c
               JOIN rooms_participant p ON p.id = c.participant_id
              WHERE c.channel_name = %(channel)s)
   AND {open}
RETURNING {columns}
"""


def participant_leave(*, channel_name: str) -> None:
    """Forget a closed connection; the others get the room's new presence."""
    with transaction.atomic():
        # The room is locked before the connection goes, as every change does it, so the
        # state read below sees any other tab of this participant that left just before.
        # A participant still online in another tab costs one state that looks the same.
        rows = execute(
            _LEAVE_LOCK_SQL.format(open=ROOM_OPEN_SQL, columns=columns(Room)),
            {"channel": channel_name, "now": timezone.now()},
        )
        room = row_to_model(Room, rows[0]) if rows else None
        gone = execute(
            "DELETE FROM rooms_connection WHERE channel_name = %(channel)s"
            " RETURNING participant_id",
            {"channel": channel_name},
        )
        participant_id = gone[0][0] if gone else None
        state = None
        if room is not None:
            if participant_id is not None and participant_id == room.host_id:
                _host_absence_start(room)
            state = state_publish(room, presence=True)
    if participant_id is not None:
        log.info("participant left channel=%s participant=%s", channel_name, participant_id)
    # The one who had not voted in the runoff (or was not done) left: decide now.
    if room is not None and state is not None and deadlines.settle_needed(state):
        try:
            deadlines.room_settle(room_id=room.pk, state=state)
        except Exception:  # the leave is recorded; the runoff's or the deadline's time decides
            log.exception("early decision at a leave failed room=%s", room.pk)


def _host_absence_start(room: Room) -> None:
    """The host's connection closed: if it has no other, its grace starts now (one statement)."""
    assert room.host_id is not None  # the connection that closed was the host's
    now = timezone.now()
    fresh = Connection.objects.filter(
        participant_id=room.host_id, last_seen__gte=selectors.presence_cutoff(now)
    )
    if Room.objects.filter(pk=room.pk).filter(~Exists(fresh)).update(host_absent_since=now):
        room.host_absent_since = now


def presence_refresh(*, connections: list[tuple[str, str, int]]) -> None:
    """One heartbeat for all of a process's connections: (room id, channel, participant id).

    Marks them seen in one UPDATE, puts back any that a sweep removed while their worker
    was stalled, and drops the ghosts (connections of dead workers) of these rooms.
    """
    channels = [channel for _, channel, _ in connections]
    existing = set(
        Connection.objects.filter(channel_name__any_of=channels).values_list(
            "channel_name", flat=True
        )
    )
    Connection.objects.filter(channel_name__any_of=existing).update(last_seen=timezone.now())
    changed = {room_id for room_id, channel, _ in connections if channel not in existing}
    room_ids = {room_id for room_id, _, _ in connections}
    changed |= set(
        Connection.objects.filter(
            participant__room__id__any_of=room_ids, last_seen__lt=selectors.presence_cutoff()
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
        room = room_hold(room_id)
        online = set(selectors.participants_online(room=room).values_list("pk", flat=True))
        # A kicked participant's connections were removed on purpose: tell them again (the
        # kick's broadcast may have been lost) rather than putting them back.
        kicked = set(
            Participant.objects.filter(
                pk__in=[p for _, p in missing], kicked_at__isnull=False
            ).values_list("pk", flat=True)
        )
        came_back = False
        for channel, participant_id in missing:
            if participant_id in kicked:
                broadcast.kicked_on_commit(group=room.channel_group, participant_id=participant_id)
                continue
            # Swept while its worker was stalled: it is alive after all.
            came_back |= participant_id not in online
            if participant_id == room.host_id:
                room.host_absent_since = None
            Connection.objects.get_or_create(
                channel_name=channel, defaults={"participant_id": participant_id}
            )
        if _sweep_stale_connections(room) or came_back:
            room_bump_held(room, activity=False, changed_fields=("host_absent_since",))


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
    gone = ghosts - online
    if room.host_id in gone and room.host_absent_since is None:
        # Last seen before the presence cutoff: its grace has been running since at least then.
        room.host_absent_since = selectors.presence_cutoff()
    return bool(gone)
