"""Every change to a room goes through here: the room's rules, in one place.

Each service first locks the room, checks that it is open and bumps its version in one
statement (`_lock_and_bump`: UPDATE ... RETURNING; on SQLite the IMMEDIATE transaction
holds the write lock anyway), applies one change, reads the new state in one query and
hands it to rooms/broadcast.py, which sends it once the transaction has committed. A
refusal raises ClientError inside the transaction, so the bump is rolled back with it.

Round trips are the cost of a change (tests/test_query_counts.py pins them), so the
writes that the ORM would spread over several statements are single SQL statements here:
INSERT ... ON CONFLICT DO NOTHING instead of a savepoint, and on PostgreSQL a toggle or a
removal in one statement (SQLite, in process, has no data-modifying WITH and takes two).
"""

import logging
import random
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import Exists
from django.utils import timezone

from . import broadcast, groups, selectors, text
from .errors import ClientError
from .models import Connection, Group, Item, Mark, Participant, Room, new_secret_token, token_hash
from .protocol import Command, PickedEvent, PickMode, StateEvent

log = logging.getLogger(__name__)

_system_random = secrets.SystemRandom()


_BUMP_SQL = """
UPDATE rooms_room SET version = version + 1{expiry}
 WHERE id = %(room)s AND closed_at IS NULL AND expires_at > %(now)s{not_kicked}
RETURNING {columns}
"""
# The acting participant was not removed by the host: a kicked connection whose `kicked`
# was lost (Redis) is refused here, in the same statement, until its heartbeat hangs it up.
_NOT_KICKED_SQL = """
   AND NOT EXISTS (SELECT 1 FROM rooms_participant WHERE id = %(by)s AND kicked_at IS NOT NULL)"""


def _lock_and_bump(room_id: str, *, activity: bool = True, by: int | None = None) -> Room:
    """Lock the room, check that it is open (and that `by` was not kicked), bump its version.

    One statement. User activity also moves the expiry. Later statements of the transaction
    read with a fresh snapshot, after any change that held the lock before us had committed.
    """
    if not selectors.ROOM_ID_SHAPE.fullmatch(room_id):
        raise ClientError("room_not_found")
    now = timezone.now()
    params = {"room": room_id, "now": now, "by": by}
    expiry = ""
    if activity:
        params["expires"] = now + timedelta(seconds=settings.ROOM_TTL_SECONDS)
        expiry = ", expires_at = %(expires)s"
    not_kicked = _NOT_KICKED_SQL if by is not None else ""
    sql = _BUMP_SQL.format(expiry=expiry, not_kicked=not_kicked, columns=_room_columns())
    room = _room_returned(sql, params)
    if room is None:
        selectors.room_get_open(room_id=room_id)  # room_not_found or room_expired
        if by is not None and Participant.objects.filter(pk=by, kicked_at__isnull=False).exists():
            raise ClientError("kicked")
        raise ClientError("room_expired")  # it expired between the two reads
    return room


def _room_columns() -> str:
    return _columns(Room)


def _columns(model, prefix: str = "") -> str:
    """The model's columns, in field order, for a RETURNING or SELECT list of ours."""
    return ", ".join(prefix + field.column for field in model._meta.concrete_fields)


def _room_returned(sql: str, params: dict) -> Room | None:
    """The Room a statement `RETURNING _room_columns()` returned, or None."""
    rows = _execute(sql, params)
    return _from_row(Room, rows[0]) if rows else None


def _from_row(model, row: tuple):
    """A model instance from a row of `_columns(model)` (and anything after them), as the
    ORM builds one (Model.from_db, the backend's converters) but without a queryset: on
    every change, a queryset's compiling cost more than its statement."""
    db = connections[DEFAULT_DB_ALIAS]
    fields = model._meta.concrete_fields
    values = list(row[: len(fields)])
    for index, field, converters in _converters(model, db):
        for converter in converters:
            values[index] = converter(values[index], field, db)
    return model.from_db(db.alias, [field.attname for field in fields], values)


_converters_by_model: dict[tuple, list] = {}


def _converters(model, db) -> list:
    """(column index, field, converters) for each of the model's columns the backend converts."""
    key = (model, db.vendor)
    if key not in _converters_by_model:
        found = []
        for index, field in enumerate(model._meta.concrete_fields):
            column = field.get_col(model._meta.db_table)
            converters = db.ops.get_db_converters(column) + field.get_db_converters(db)
            if converters:
                found.append((index, field, converters))
        _converters_by_model[key] = found
    return _converters_by_model[key]


def _broadcast_state(
    room: Room, *, before: tuple[PickedEvent, ...] = (), presence: bool = False
) -> StateEvent:
    """Read the room's new state and have it sent after the commit; return it."""
    state = selectors.room_state(room=room)
    broadcast.state_on_commit(group=room.group_name, state=state, before=before, presence=presence)
    return state


def _commit_change(
    room: Room,
    *,
    activity: bool = True,
    changed_fields: tuple[str, ...] = (),
    before: tuple[PickedEvent, ...] = (),
    presence: bool = False,
) -> StateEvent:
    """After `_lock_open_room`: bump the version (and the expiry, for user activity), save the
    changed fields and broadcast; return the state. For the services that lock first and
    then find out whether anything changes (the background ones); the others bump as they
    lock (`_lock_and_bump`)."""
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
    """The room, locked for this transaction, if it is still open (no version bump)."""
    return selectors.room_get_open(room_id=room_id, for_update=True)


def _execute(sql: str, params: dict) -> list[tuple]:
    """Run one statement of ours; its rows (RETURNING), if any."""
    for name, value in params.items():
        if isinstance(value, datetime):
            params[name] = connection.ops.adapt_datetimefield_value(value)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def _save(room: Room, *fields: str) -> None:
    """Write these fields of a room locked by `_lock_and_bump` (its version is written)."""
    Room.objects.filter(pk=room.pk).update(**{f: getattr(room, f) for f in fields})


# --- Rooms -----------------------------------------------------------------------


def room_create(*, host_session_key: str = "", group: Group | None = None) -> Room:
    """A new room; whoever joins first with `room.host_token` (or this session) is its host.

    `room.host_token` is set only on the returned instance: the database keeps its hash.
    A lunch group's room is opened through groups.group_room_open (one open per group).
    """
    host_token = new_secret_token()
    room = Room.objects.create(
        host_token_hash=token_hash(host_token), host_session_key=host_session_key, group=group
    )
    room.host_token = host_token
    log.info("room created room=%s", room.pk)
    return room


def room_extend(*, room_id: str) -> StateEvent:
    """Keep the room alive for another TTL; nothing else changes."""
    with transaction.atomic():
        return _broadcast_state(_lock_and_bump(room_id))


def room_state_resend(*, room_id: str) -> dict:
    """Send everyone the room's state again after a change outside it (its group's name)."""
    with transaction.atomic():
        room = _lock_open_room(room_id)
        return _commit_change(room, activity=False)


def room_close(*, room: Room) -> None:
    """Close a room for good (staff action); its connected clients are told and dropped."""
    with transaction.atomic():
        room = Room.objects.select_for_update().get(pk=room.pk)
        if room.closed_at is not None:
            return
        _close(room)
    log.info("room closed room=%s", room.pk)


def room_close_by_host(*, room_id: str, participant_id: int) -> None:
    """The host ends the room for everyone now, exactly as staff closing it does."""
    with transaction.atomic():
        room = _lock_open_room(room_id)
        _host_only(room, participant_id)
        _close(room)
    log.info("room closed by its host room=%s", room.pk)


def _close(room: Room) -> None:
    room.closed_at = timezone.now()
    room.version += 1
    room.save(update_fields=["closed_at", "version"])
    broadcast.closed_on_commit(group=room.group_name)


def room_lock(*, room_id: str, participant_id: int, locked: bool) -> StateEvent:
    """The host locks the list (no more adds) or unlocks it."""
    with transaction.atomic():
        room = _lock_and_bump(room_id)
        _host_only(room, participant_id)
        room.locked = locked
        _save(room, "locked")
        log.info("room %s room=%s", "locked" if locked else "unlocked", room.pk)
        return _broadcast_state(room)


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
        room = _lock_and_bump(room_id)
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
        if already_online:
            _connection_cap_check(participant)
        _host_pass_if_overdue(room, online)
        # The room's creator: its host token (which becomes its rejoin token), or its session.
        by_host_token = bool(presented) and presented == room.host_token_hash
        creator = by_host_token or bool(session_key and session_key == room.host_session_key)
        if participant is None:
            participant = _participant_new(
                room,
                session_key,
                nickname,
                token=token if by_host_token else "",
                before=len(people),
            )
        else:
            kept = by_host_token or (bool(presented) and presented == participant.token_hash)
            _participant_rejoin(participant, token=token if kept else "", nickname=nickname)
        _host_claim(room, participant, creator=creator)
        changed = [
            f for f, was in zip(_HOST_FIELDS, host_before, strict=True) if getattr(room, f) != was
        ]
        if changed:
            _save(room, *changed)
        Connection.objects.create(participant=participant, channel_name=channel_name)
        state = _broadcast_state(room, presence=True)
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
    sql = _PEOPLE_SQL.format(columns=_columns(Participant, "p."))
    people = []
    for row in _execute(sql, {"room": room.pk, "cutoff": selectors.presence_cutoff()}):
        participant = _from_row(Participant, row)
        participant.online, participant.ghost = bool(row[-2]), bool(row[-1])
        people.append(participant)
    return people


def _participant_returning(
    people: list[Participant], *, hashed: str, session_key: str
) -> Participant | None:
    """The participant a rejoin token (first) or a browser session names in this room."""
    by_token = [p for p in people if hashed and p.token_hash == hashed]
    by_session = [p for p in people if session_key and p.session_key == session_key]
    return (by_token or by_session or [None])[0]


def _participant_new(
    room: Room, session_key: str, nickname: str, *, token: str, before: int
) -> Participant:
    """A new participant (with `token`, or a new one), unless the room admitted enough already.

    `before` is how many participants the room has admitted so far.
    """
    if before >= settings.ROOM_MAX_PARTICIPANTS_EVER:
        log.info("room admitted its lifetime maximum room=%s", room.pk)
        raise ClientError("room_full")
    token = token or new_secret_token()
    participant = Participant.objects.create(
        room=room,
        session_key=session_key,
        name=nickname or f"guest-{before + 1}",
        token_hash=token_hash(token),
    )
    participant.token = token
    return participant


def _participant_rejoin(participant: Participant, *, token: str, nickname: str) -> None:
    """Same participant again, with `token` from now on; none given: a new one.

    Back by its session without its token (storage cleared), the old token cannot be sent
    again (only its hash is kept), so a new one replaces it.
    """
    fields = []
    participant.token = token or new_secret_token()
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
   AND closed_at IS NULL AND expires_at > %(now)s
RETURNING {columns}
"""


def participant_leave(*, channel_name: str) -> None:
    """Forget a closed connection; the others get the room's new presence."""
    with transaction.atomic():
        # The room is locked before the connection goes, as every change does it, so the
        # state read below sees any other tab of this participant that left just before.
        # A participant still online in another tab costs one state that looks the same.
        room = _room_returned(
            _LEAVE_LOCK_SQL.format(columns=_room_columns()),
            {"channel": channel_name, "now": timezone.now()},
        )
        gone = _execute(
            "DELETE FROM rooms_connection WHERE channel_name = %(channel)s"
            " RETURNING participant_id",
            {"channel": channel_name},
        )
        participant_id = gone[0][0] if gone else None
        if room is not None:
            if participant_id is not None and participant_id == room.host_id:
                _host_absence_start(room)
            _broadcast_state(room, presence=True)
    if participant_id is not None:
        log.info("participant left channel=%s participant=%s", channel_name, participant_id)


def _host_absence_start(room: Room) -> None:
    """The host's connection closed: if it has no other, its grace starts now (one statement)."""
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
                broadcast.kicked_on_commit(group=room.group_name, participant_id=participant_id)
                continue
            # Swept while its worker was stalled: it is alive after all.
            came_back |= participant_id not in online
            if participant_id == room.host_id:
                room.host_absent_since = None
            Connection.objects.get_or_create(
                channel_name=channel, defaults={"participant_id": participant_id}
            )
        if _sweep_stale_connections(room) or came_back:
            _commit_change(room, activity=False, changed_fields=("host_absent_since",))


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


# --- The host --------------------------------------------------------------------


def _host_only(room: Room, participant_id: int) -> None:
    if room.host_id != participant_id:
        raise ClientError("not_host")


def _host_claim(room: Room, participant: Participant, *, creator: bool) -> None:
    """The room's creator takes the role on its first join; a room without a host gets one."""
    if creator:
        # Claimed: from now on the creator is a participant like any other (its token is
        # its rejoin token), and the role can pass on.
        room.host, room.host_token_hash, room.host_session_key = participant, "", ""
    elif room.host_id is None:
        room.host = participant
    if room.host_id == participant.pk:
        room.host_absent_since = None


def _host_pass_if_overdue(room: Room, online: list[int]) -> bool:
    """Past its grace, an absent host's role passes to who joined first of those online.

    With nobody online the room has no host until the next join. True if the role moved.
    """
    if room.host_absent_since is None:
        return False
    grace = timedelta(seconds=settings.ROOM_HOST_GRACE_SECONDS)
    if timezone.now() - room.host_absent_since < grace:
        return False
    previous = room.host_id
    room.host_id = next((pk for pk in online if pk != previous), None)
    room.host_absent_since = None
    log.info("host role passed room=%s participant=%s", room.pk, room.host_id)
    return True


def host_pass_on(*, room_id: str) -> None:
    """Run by every process for its rooms: hand an absent host's role on once its grace is over."""
    with transaction.atomic():
        room = _lock_open_room(room_id)
        online = list(selectors.participants_online(room=room).values_list("pk", flat=True))
        if _host_pass_if_overdue(room, online):
            _commit_change(room, activity=False, changed_fields=("host", "host_absent_since"))


def host_hand_over(*, room_id: str, participant_id: int, target_id: int) -> StateEvent:
    """The host makes another online participant the host."""
    with transaction.atomic():
        room = _lock_and_bump(room_id)
        _host_only(room, participant_id)
        # One statement checks and writes: the target is online in this room.
        fresh = Connection.objects.filter(
            participant_id=target_id,
            participant__room_id=room.pk,
            last_seen__gte=selectors.presence_cutoff(),
        )
        handed = (
            Room.objects.filter(pk=room.pk)
            .filter(Exists(fresh))
            .update(host_id=target_id, host_absent_since=None)
        )
        if target_id == participant_id or not handed:
            raise ClientError("unknown_participant")
        room.host_id, room.host_absent_since = target_id, None
        log.info("host handed over room=%s participant=%s", room.pk, target_id)
        return _broadcast_state(room)


_KICK_SQL = {
    # PostgreSQL: mark the participant kicked (if online in this room and not the host),
    # and drop its votes, vetoes and connections, in one statement.
    "postgresql": [
        """
        WITH kicked AS (
               UPDATE rooms_participant SET kicked_at = %(now)s, going_since = NULL
                WHERE id = %(target)s AND room_id = %(room)s AND id <> %(host)s
                  AND kicked_at IS NULL
                  AND EXISTS (SELECT 1 FROM rooms_connection
                               WHERE participant_id = %(target)s AND last_seen >= %(cutoff)s)
               RETURNING id),
             marks AS (DELETE FROM rooms_mark WHERE participant_id IN (SELECT id FROM kicked)),
             gone AS (DELETE FROM rooms_connection
                       WHERE participant_id IN (SELECT id FROM kicked))
        SELECT id FROM kicked
        """
    ],
    "sqlite": [
        """
        UPDATE rooms_participant SET kicked_at = %(now)s, going_since = NULL
         WHERE id = %(target)s AND room_id = %(room)s AND id <> %(host)s
           AND kicked_at IS NULL
           AND EXISTS (SELECT 1 FROM rooms_connection
                        WHERE participant_id = %(target)s AND last_seen >= %(cutoff)s)
        RETURNING id
        """,
        # Run only once the first found someone to kick (else the action is refused).
        "DELETE FROM rooms_mark WHERE participant_id = %(target)s",
        "DELETE FROM rooms_connection WHERE participant_id = %(target)s",
    ],
}


def participant_kick(*, room_id: str, participant_id: int, target_id: int) -> StateEvent:
    """The host removes an online participant: its votes and vetoes go, it cannot come back."""
    with transaction.atomic():
        room = _lock_and_bump(room_id)
        _host_only(room, participant_id)
        params = {
            "room": room.pk,
            "target": target_id,
            "host": participant_id,
            "now": timezone.now(),
            "cutoff": selectors.presence_cutoff(),
        }
        check, *rest = _KICK_SQL[connection.vendor]
        if not _execute(check, params):
            raise ClientError("unknown_participant")  # nobody else online by that id
        for sql in rest:
            _execute(sql, params)
        # Its connections, on whichever process, hang up with `kicked` (rooms/consumers.py).
        broadcast.kicked_on_commit(group=room.group_name, participant_id=target_id)
        log.info("participant kicked room=%s participant=%s", room.pk, target_id)
        return _broadcast_state(room)


def participant_rename(*, room_id: str, participant_id: int, name: str) -> StateEvent:
    """Give the participant a new name in this room."""
    new_name = text.participant_name(name)
    with transaction.atomic():
        room = _lock_and_bump(room_id, by=participant_id)
        Participant.objects.filter(pk=participant_id, room=room).update(name=new_name)
        return _broadcast_state(room)


def participant_going(*, room_id: str, participant_id: int, going: bool) -> StateEvent:
    """I am coming (or not): the headcount keeps the order in which people said it."""
    with transaction.atomic():
        room = _lock_and_bump(room_id, by=participant_id)
        me = Participant.objects.filter(pk=participant_id, room=room)
        if going:
            me.filter(going_since__isnull=True).update(going_since=timezone.now())
        else:
            me.update(going_since=None)
        return _broadcast_state(room)


# --- Items and marks -------------------------------------------------------------

# The cap and the key's uniqueness are checked by the statement that inserts, after the
# room lock: concurrent adds to one room wait for each other, and the constraint holds.
_ITEM_ADD_SQL = """
INSERT INTO rooms_item (room_id, name, key, added_by_id, added_at)
SELECT %(room)s, %(name)s, %(key)s, %(by)s, %(now)s
 WHERE (SELECT COUNT(*) FROM rooms_item WHERE room_id = %(room)s) < %(max)s
ON CONFLICT DO NOTHING
RETURNING id
"""


def item_add(*, room_id: str, participant_id: int, name: str) -> StateEvent:
    """Put a new item on the room's list."""
    item_name = text.item_name(name)
    key = text.item_key(item_name)
    with transaction.atomic():
        room = _lock_and_bump(room_id, by=participant_id)
        if room.locked:
            raise ClientError("room_locked")
        params = {
            "room": room.pk,
            "name": item_name,
            "key": key,
            "by": participant_id,
            "now": timezone.now(),
            "max": settings.ROOM_MAX_ITEMS,
        }
        if not _execute(_ITEM_ADD_SQL, params):
            if Item.objects.filter(room=room, key=key).exists():
                raise ClientError("duplicate_item")
            raise ClientError("too_many_items")
        return _broadcast_state(room)


_ITEM_REMOVE_SQL = {
    # PostgreSQL: the item and its marks in one statement.
    "postgresql": [
        """
        WITH doomed AS (SELECT id FROM rooms_item WHERE room_id = %(room)s AND key = %(key)s),
             marks AS (DELETE FROM rooms_mark WHERE item_id IN (SELECT id FROM doomed))
        DELETE FROM rooms_item WHERE id IN (SELECT id FROM doomed) RETURNING id
        """
    ],
    "sqlite": [
        """
        DELETE FROM rooms_mark WHERE item_id IN
          (SELECT id FROM rooms_item WHERE room_id = %(room)s AND key = %(key)s)
        """,
        "DELETE FROM rooms_item WHERE room_id = %(room)s AND key = %(key)s RETURNING id",
    ],
}


def item_remove(*, room_id: str, participant_id: int, name: str) -> StateEvent:
    """Take an item, and every vote and veto of it, off the list."""
    key = text.item_key(name)
    with transaction.atomic():
        room = _lock_and_bump(room_id, by=participant_id)
        if room.locked and room.host_id != participant_id:
            raise ClientError("room_locked")  # the locked list is the host's to trim
        params = {"room": room.pk, "key": key}
        deleted = [_execute(sql, params) for sql in _ITEM_REMOVE_SQL[connection.vendor]]
        if not key or not deleted[-1]:
            raise ClientError("unknown_item")
        return _broadcast_state(room)


_MARK_TOGGLE_SQL = {
    # PostgreSQL: delete the mark, or add it if there was none, in one statement.
    "postgresql": """
        WITH item AS (SELECT id FROM rooms_item WHERE room_id = %(room)s AND key = %(key)s),
             gone AS (DELETE FROM rooms_mark
                       WHERE item_id IN (SELECT id FROM item)
                         AND participant_id = %(by)s AND kind = %(kind)s
                      RETURNING id),
             added AS (INSERT INTO rooms_mark (item_id, participant_id, kind, created_at)
                       SELECT id, %(by)s, %(kind)s, %(now)s FROM item
                        WHERE NOT EXISTS (SELECT 1 FROM gone)
                       ON CONFLICT DO NOTHING
                       RETURNING id)
        SELECT (SELECT COUNT(*) FROM gone) + (SELECT COUNT(*) FROM added)
        """,
}
_MARK_DELETE_SQL = """
DELETE FROM rooms_mark
 WHERE item_id = (SELECT id FROM rooms_item WHERE room_id = %(room)s AND key = %(key)s)
   AND participant_id = %(by)s AND kind = %(kind)s
RETURNING id
"""
_MARK_ADD_SQL = """
INSERT INTO rooms_mark (item_id, participant_id, kind, created_at)
SELECT id, %(by)s, %(kind)s, %(now)s FROM rooms_item WHERE room_id = %(room)s AND key = %(key)s
ON CONFLICT DO NOTHING
RETURNING id
"""


def mark_toggle(*, room_id: str, participant_id: int, name: str, kind: Mark.Kind) -> StateEvent:
    """Toggle the participant's vote for (or veto of) an item."""
    key = text.item_key(name)
    with transaction.atomic():
        room = _lock_and_bump(room_id, by=participant_id)
        params = {"room": room.pk, "key": key, "by": participant_id, "kind": str(kind)}
        params["now"] = timezone.now()
        if connection.vendor == "postgresql":
            toggled = _execute(_MARK_TOGGLE_SQL["postgresql"], params)[0][0]
        else:
            toggled = _execute(_MARK_DELETE_SQL, params) or _execute(_MARK_ADD_SQL, params)
        if not toggled:
            raise ClientError("unknown_item")
        return _broadcast_state(room)


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
        room = _lock_and_bump(room_id, by=participant_id)
        state = selectors.room_state(room=room)
        candidates = [(i["name"], i["votes"]) for i in state["items"] if not i["vetoed_by"]]
        if avoid_recent:
            candidates = groups.candidates_fresh(candidates, room=room)
        if not candidates:
            raise ClientError("nothing_to_pick")
        winner = pick_choose(candidates, mode=mode, rng=rng or _system_random)
        online = {p["id"]: p["name"] for p in state["participants"]}
        picker = online.get(participant_id) or Participant.objects.get(pk=participant_id).name
        room.decision_item, room.decision_by, room.decided_at = winner, picker, timezone.now()
        room.decision_key = text.item_key(winner)
        _save(room, "decision_item", "decision_by", "decided_at", "decision_key")
        # The state read above plus the decision: the same as reading it again.
        state["room"]["decision"] = {
            "item": winner,
            "by": picker,
            "at": room.decided_at.isoformat(),
        }
        picked: PickedEvent = {"type": "picked", "item": winner, "by": picker, "mode": mode}
        broadcast.state_on_commit(group=room.group_name, state=state, before=(picked,))
        log.info("room picked room=%s mode=%s avoid_recent=%s", room.pk, mode, avoid_recent)
        groups.decision_announce(room=room)  # queued after the commit, behind the broadcast
        return state


# --- Commands from the protocol --------------------------------------------------


def command_run(*, room_id: str, participant_id: int, command: Command) -> StateEvent | None:
    """Apply one parsed protocol command for a participant; return the room's new state.

    `close` returns none: the room is gone, and everyone is told so instead.
    """
    spec = command.spec
    service = globals()[spec.service]  # protocol.COMMANDS names a function of this module
    arguments = {**spec.fixed, **command.arguments}
    if spec.by_participant:
        arguments["participant_id"] = participant_id
    return service(room_id=room_id, **arguments)
