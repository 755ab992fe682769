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
import operator
import random
import secrets
from datetime import datetime, timedelta
from functools import reduce

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from . import broadcast, selectors, text
from .errors import ClientError
from .models import Connection, Item, Mark, Participant, Room, new_secret_token, token_hash
from .protocol import Command, PickedEvent, PickMode, StateEvent

log = logging.getLogger(__name__)

_system_random = secrets.SystemRandom()


_BUMP_SQL = """
UPDATE rooms_room SET version = version + 1{expiry}
 WHERE id = %(room)s AND closed_at IS NULL AND expires_at > %(now)s
RETURNING *
"""


def _lock_and_bump(room_id: str, *, activity: bool = True) -> Room:
    """Lock the room, check that it is open and bump its version, in one statement.

    User activity also moves the expiry. Later statements of the transaction read with a
    fresh snapshot, after any change that held the lock before us had committed.
    """
    if not selectors.ROOM_ID_SHAPE.fullmatch(room_id):
        raise ClientError("room_not_found")
    now = timezone.now()
    params = {"room": room_id, "now": now}
    expiry = ""
    if activity:
        params["expires"] = now + timedelta(seconds=settings.ROOM_TTL_SECONDS)
        expiry = ", expires_at = %(expires)s"
    rooms = list(Room.objects.raw(_BUMP_SQL.format(expiry=expiry), params))
    if not rooms:
        selectors.room_get_open(room_id=room_id)  # room_not_found or room_expired
        raise ClientError("room_expired")  # it expired between the two reads
    return rooms[0]


def _broadcast_state(
    room: Room, *, before: tuple[PickedEvent, ...] = (), presence: bool = False
) -> StateEvent:
    """Read the room's new state and have it sent after the commit; return it."""
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


# --- Rooms -----------------------------------------------------------------------


def room_create() -> Room:
    room = Room.objects.create()
    log.info("room created room=%s", room.pk)
    return room


def room_extend(*, room_id: str) -> StateEvent:
    """Keep the room alive for another TTL; nothing else changes."""
    with transaction.atomic():
        return _broadcast_state(_lock_and_bump(room_id))


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
        room = _lock_and_bump(room_id)
        # Connections of dead workers do not count (participants_online reads last_seen);
        # the heartbeat of a live process in the room deletes them (presence_refresh).
        participant = _participant_returning(room, hashed=presented, session_key=session_key)
        online = set(selectors.participants_online(room=room).values_list("pk", flat=True))
        already_online = participant is not None and participant.pk in online
        if not already_online and len(online) >= settings.ROOM_MAX_PARTICIPANTS:
            raise ClientError("room_full")
        if participant is None:
            participant = _participant_new(room, session_key, nickname)
        else:
            _participant_rejoin(participant, presented=presented, token=token, nickname=nickname)
        Connection.objects.create(participant=participant, channel_name=channel_name)
        state = _broadcast_state(room, presence=True)
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


def _nickname_or_blank(name: str) -> str:
    # A bad ?name= on connect does not refuse the join: the guest name stands, and the
    # person can rename.
    try:
        return text.participant_name(name)
    except ClientError:
        return ""


def _guest_name(room: Room) -> str:
    return f"guest-{room.participants.count() + 1}"


_LEAVE_LOCK_SQL = """
UPDATE rooms_room SET version = version + 1
 WHERE id = (SELECT p.room_id FROM rooms_connection c
               JOIN rooms_participant p ON p.id = c.participant_id
              WHERE c.channel_name = %(channel)s)
   AND closed_at IS NULL AND expires_at > %(now)s
RETURNING *
"""


def participant_leave(*, channel_name: str) -> None:
    """Forget a closed connection; the others get the room's new presence."""
    with transaction.atomic():
        # The room is locked before the connection goes, as every change does it, so the
        # state read below sees any other tab of this participant that left just before.
        # A participant still online in another tab costs one state that looks the same.
        rooms = list(
            Room.objects.raw(_LEAVE_LOCK_SQL, {"channel": channel_name, "now": timezone.now()})
        )
        gone = _execute(
            "DELETE FROM rooms_connection WHERE channel_name = %(channel)s"
            " RETURNING participant_id",
            {"channel": channel_name},
        )
        if rooms:
            _broadcast_state(rooms[0], presence=True)
    if gone:
        log.info("participant left channel=%s participant=%s", channel_name, gone[0][0])


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
            room.version += 1
            room.save(update_fields=["version"])
            _broadcast_state(room, presence=True)


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


def participant_rename(*, room_id: str, participant_id: int, name: str) -> StateEvent:
    """Give the participant a new name in this room."""
    new_name = text.participant_name(name)
    with transaction.atomic():
        room = _lock_and_bump(room_id)
        Participant.objects.filter(pk=participant_id, room=room).update(name=new_name)
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
        room = _lock_and_bump(room_id)
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
        room = _lock_and_bump(room_id)
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
        room = _lock_and_bump(room_id)
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
    *, room_id: str, participant_id: int, mode: PickMode = "top", rng: random.Random | None = None
) -> StateEvent:
    """Draw the winner among the items nobody vetoed; everyone gets `picked`, then the state."""
    with transaction.atomic():
        room = _lock_and_bump(room_id)
        state = selectors.room_state(room=room)
        candidates = [(i["name"], i["votes"]) for i in state["items"] if not i["vetoed_by"]]
        if not candidates:
            raise ClientError("nothing_to_pick")
        winner = pick_choose(candidates, mode=mode, rng=rng or _system_random)
        online = {p["id"]: p["name"] for p in state["participants"]}
        picker = online.get(participant_id) or Participant.objects.get(pk=participant_id).name
        now = timezone.now()
        Room.objects.filter(pk=room.pk).update(
            decision_item=winner, decision_by=picker, decided_at=now
        )
        # The state read above plus the decision: the same as reading it again.
        state["room"]["decision"] = {"item": winner, "by": picker, "at": now.isoformat()}
        picked: PickedEvent = {"type": "picked", "item": winner, "by": picker, "mode": mode}
        broadcast.state_on_commit(group=room.group_name, state=state, before=(picked,))
        log.info("room picked room=%s mode=%s", room.pk, mode)
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
