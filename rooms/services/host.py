"""The host: the role, passing and handing it over, locking the list, kicking."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists
from django.utils import timezone

from .. import broadcast, selectors
from ..errors import ClientError
from ..models import Connection, Participant, Room
from ..protocol import StateEvent
from .locking import room_bump, room_bump_held, room_fields_save, room_hold
from .statements import execute
from .states import state_publish

log = logging.getLogger(__name__)


# --- The host --------------------------------------------------------------------


def host_required(room: Room, participant_id: int) -> None:
    """Only the host may: anyone else is told not_host."""
    if room.host_id != participant_id:
        raise ClientError("not_host")


def host_claim(room: Room, participant: Participant, *, creator: bool) -> None:
    """The room's creator takes the role on its first join; a room without a host gets one."""
    if creator:
        # Claimed: from now on the creator is a participant like any other (its token is
        # its rejoin token), and the role can pass on.
        room.host, room.host_token_hash, room.host_session_key = participant, "", ""
    elif room.host_id is None:
        room.host = participant
    if room.host_id == participant.pk:
        room.host_absent_since = None


def host_pass_if_overdue(room: Room, online: list[int]) -> bool:
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
        room = room_hold(room_id)
        online = list(selectors.participants_online(room=room).values_list("pk", flat=True))
        if host_pass_if_overdue(room, online):
            room_bump_held(room, activity=False, changed_fields=("host", "host_absent_since"))


def host_hand_over(*, room_id: str, participant_id: int, target_id: int) -> StateEvent:
    """The host makes another online participant the host."""
    with transaction.atomic():
        room = room_bump(room_id)
        host_required(room, participant_id)
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
        return state_publish(room)


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
             orders AS (DELETE FROM rooms_order WHERE participant_id IN (SELECT id FROM kicked)),
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
        "DELETE FROM rooms_order WHERE participant_id = %(target)s",
        "DELETE FROM rooms_connection WHERE participant_id = %(target)s",
    ],
}


def participant_kick(*, room_id: str, participant_id: int, target_id: int) -> StateEvent:
    """The host removes an online participant: its votes, vetoes and order go (a share of a
    bill already set stays: the split is fixed), it cannot come back."""
    with transaction.atomic():
        room = room_bump(room_id)
        host_required(room, participant_id)
        params = {
            "room": room.pk,
            "target": target_id,
            "host": participant_id,
            "now": timezone.now(),
            "cutoff": selectors.presence_cutoff(),
        }
        check, *rest = _KICK_SQL[connection.vendor]
        if not execute(check, params):
            raise ClientError("unknown_participant")  # nobody else online by that id
        for sql in rest:
            execute(sql, params)
        # Its connections, on whichever process, hang up with `kicked` (rooms/consumers.py).
        broadcast.kicked_on_commit(group=room.channel_group, participant_id=target_id)
        log.info("participant kicked room=%s participant=%s", room.pk, target_id)
        return state_publish(room)


def room_lock(*, room_id: str, participant_id: int, locked: bool) -> StateEvent:
    """The host locks the list (no more adds) or unlocks it."""
    return _room_switch(room_id, participant_id, "locked", locked, "locked", "unlocked")


def room_blind(*, room_id: str, participant_id: int, blind: bool) -> StateEvent:
    """The host makes the votes blind (nobody sees who voted for what until the decision)
    or shows them again."""
    return _room_switch(room_id, participant_id, "blind", blind, "blind", "unblind")


def _room_switch(
    room_id: str, participant_id: int, field: str, value: bool, on: str, off: str
) -> StateEvent:
    """The host turns one of the room's switches (`field`) on or off."""
    with transaction.atomic():
        room = room_bump(room_id)
        host_required(room, participant_id)
        setattr(room, field, value)
        room_fields_save(room, field)
        log.info("room %s room=%s", on if value else off, room.pk)
        return state_publish(room)
