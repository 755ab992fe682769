"""The room's data: rooms, the people in them, their menu ideas and their votes.

Constraints in the database, not only in code, keep the rules true when many clients
(and many processes) write at the same moment.
"""

import base64
import hashlib
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext_lazy as _

from . import text

if TYPE_CHECKING:
    from .protocol import Decision


def new_room_id() -> str:
    """96 random bits, URL-safe: a room's link is its only key."""
    return secrets.token_urlsafe(12)


def new_token_seed() -> str:
    """128 random bits: what a participant's rejoin token is made from (`token_from_seed`)."""
    return secrets.token_urlsafe(16)


def host_token_seed(room_id: str) -> str:
    """The seed of a room's host token, which becomes its creator's rejoin token."""
    return f"host:{room_id}"


def token_from_seed(seed: str) -> str:
    """A rejoin token (192 bits, URL-safe), made again from its seed whenever it is needed.

    One token per participant for the life of the room: a rejoin by browser session answers
    the same token as the first tab got, so every token a participant was given is the one
    a kick bars. Keyed by SECRET_KEY, so the table alone (seed and hash) rejoins nobody.
    """
    digest = salted_hmac("lunchsite.rooms.rejoin-token", seed, algorithm="sha256").digest()
    return base64.urlsafe_b64encode(digest[:24]).decode()


def token_hash(token: str) -> str:
    """What the database keeps of a token: its SHA-256, so a leaked table rejoins nobody."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def room_expiry(now: datetime | None = None) -> datetime:
    """When a room that saw activity at `now` expires: the one definition of the expiry."""
    return (now or timezone.now()) + timedelta(seconds=settings.ROOM_TTL_SECONDS)


# What a decision writes of the room (Room.decide), for whoever saves it.
DECISION_FIELDS = (
    "decision_item",
    "decision_by",
    "decided_at",
    "decision_key",
    "decision_auto",
    "deadline_at",
    "done_reset_at",
    "bill_total",
    "bill_paid_by_id",
)


def default_expiry() -> datetime:
    """A new room's expiry (the field's default; migrations name this function)."""
    return room_expiry()


# A room is open until it is closed or its expiry passes. Said once, here, in the three forms
# that ask it: an instance (`Room.is_open`), a queryset (`RoomQuerySet.active`) and the raw
# SQL of the changes (rooms/services/), on rooms_room's row with the time in %(now)s.
ROOM_OPEN_SQL = "(rooms_room.closed_at IS NULL AND rooms_room.expires_at > %(now)s)"


class RoomQuerySet(models.QuerySet):
    def active(self, now: datetime | None = None) -> "RoomQuerySet":
        """The open rooms (ROOM_OPEN_SQL)."""
        now = now or timezone.now()
        return self.filter(closed_at__isnull=True, expires_at__gt=now)

    def expired(self, now=None) -> "RoomQuerySet":
        now = now or timezone.now()
        return self.filter(closed_at__isnull=True, expires_at__lte=now)

    def closed(self) -> "RoomQuerySet":
        return self.filter(closed_at__isnull=False)


class Room(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", _("active")
        EXPIRED = "expired", _("expired")
        CLOSED = "closed", _("closed")

    id = models.CharField(primary_key=True, max_length=32, default=new_room_id, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # Not indexed: every change moves it, and an index on it made each version bump write an
    # entry into every index of the table (never a HOT update). Only the purge and the admin
    # filter on it, over a table the purge keeps small. tests/performance/test_room_table.py.
    expires_at = models.DateTimeField(default=default_expiry)
    closed_at = models.DateTimeField(null=True, blank=True)
    # Strictly increases with every accepted change; clients keep the highest they saw.
    version = models.PositiveBigIntegerField(default=0)
    decision_item = models.CharField(max_length=200, blank=True)
    decision_by = models.CharField(max_length=100, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    # The decision's comparison form (text.item_key), so a group can steer away from it.
    decision_key = models.CharField(max_length=400, blank=True)
    # The lunch group the room was opened for (the groups app, which depends on this one:
    # rooms names it only here, by label, and through rooms/hooks.py).
    group = models.ForeignKey(
        "groups.Group", on_delete=models.SET_NULL, null=True, blank=True, related_name="rooms"
    )
    # The host: who opened the room. Until they join, a token (API) or a session (form)
    # names who will be the host participant.
    host = models.ForeignKey(
        "Participant", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    host_token_hash = models.CharField(max_length=64, blank=True, editable=False)
    host_session_key = models.CharField(max_length=40, blank=True, editable=False)
    # Since when the host has had no open connection (the role passes on after a grace).
    host_absent_since = models.DateTimeField(null=True, blank=True)
    locked = models.BooleanField(default=False)
    # Blind votes (the host's switch): until the decision, no state says who voted for what
    # or how many (selectors.state_shown). db_default: processes of the release before it,
    # still serving during a deploy, insert rooms without the column.
    blind = models.BooleanField(default=False, db_default=False)
    # The receipt of the last everyday change sent from an event loop (rooms/everyday.py),
    # written by its bump: if the connection fails before the answer arrives, the service
    # reads it to tell a change that committed from one that did not, and does not apply the
    # change a second time. Not indexed, as the other columns the bump writes.
    last_change = models.UUIDField(null=True, blank=True, editable=False)
    # The language the room's summary (orders, the bill) is written in: its group's, else its
    # creator's page's. db_default: a process of the release before, during a deploy.
    language = models.CharField(max_length=10, blank=True, db_default="")
    # The bill (after the pick): its total and who paid it; the shares are `Share` rows,
    # fixed when the bill is set. NULL: no bill.
    bill_total = models.PositiveIntegerField(null=True, blank=True)
    bill_paid_by = models.ForeignKey(
        "Participant", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # When the room last posted its summary to its group's chat (`announce`, once a minute).
    announced_at = models.DateTimeField(null=True, blank=True)
    # The decision was the server's (a deadline or a runoff), not a participant's pick.
    decision_auto = models.BooleanField(default=False, db_default=False)
    # When the server decides by itself (rooms/services/deadlines.py); NULL: no deadline.
    # Indexed only where set (Meta), so every process's once-a-second "anything due?" is
    # one index probe; the everyday bump never writes it, so its updates stay HOT.
    deadline_at = models.DateTimeField(null=True, blank=True)
    # A runoff between tied items runs until then (its items are Item.runoff); NULL: none.
    runoff_ends_at = models.DateTimeField(null=True, blank=True)
    # Everyone's `done` before this moment no longer counts: written by an add (there is
    # something new to look at) and by a decision. A participant is done while its
    # `done_at` is later (selectors.py).
    done_reset_at = models.DateTimeField(null=True, blank=True)

    objects = RoomQuerySet.as_manager()

    # Not a column: room_create sets it on the room it returns, the host token in clear for
    # the creator's answer (only its hash is kept).
    host_token: str

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["deadline_at"],
                condition=Q(deadline_at__isnull=False),
                name="room_deadline_due",
            ),
            models.Index(
                fields=["runoff_ends_at"],
                condition=Q(runoff_ends_at__isnull=False),
                name="room_runoff_due",
            ),
        ]

    def __str__(self) -> str:
        return self.id

    @property
    def channel_group(self) -> str:
        """The room's channel-layer group (not its lunch group, `group`)."""
        return self.channel_group_of(self.pk)

    @staticmethod
    def channel_group_of(room_id: str) -> str:
        """The room's channel-layer group, from a well-formed room id (ROOM_ID_SHAPE)."""
        # Built from the primary key (URL-safe base64: letters, digits, - and _), never
        # from other user text, so it is always a valid channel-layer group name.
        return f"room.{room_id}"

    def status_at(self, now: datetime | None = None) -> "Room.Status":
        if self.closed_at is not None:
            return self.Status.CLOSED
        return self.Status.ACTIVE if self.is_open_at(now) else self.Status.EXPIRED

    @property
    def status(self) -> "Room.Status":
        return self.status_at()

    def is_open_at(self, now: datetime | None = None) -> bool:
        """Open: not closed and not past its expiry (ROOM_OPEN_SQL)."""
        return self.closed_at is None and self.expires_at > (now or timezone.now())

    @property
    def is_open(self) -> bool:
        return self.is_open_at()

    def decide(self, *, item: str, by: str | None, at: datetime) -> None:
        """Record the room's decision (unsaved): the item drawn, who drew it (None: the
        server, by itself), when. A decision ends the deadline and everyone's `done`, and
        the bill was for another place: it goes (picks.decision_publish also deletes the
        orders and the shares, and saves the fields DECISION_FIELDS names)."""
        self.decision_item, self.decision_by, self.decided_at = item, by or "", at
        self.decision_auto = by is None
        self.decision_key = text.item_key(item)  # what a group steers away from later
        self.deadline_at = None
        self.done_reset_at = at
        self.bill_total, self.bill_paid_by_id = None, None

    @property
    def decision(self) -> "Decision | None":
        """The decision as the protocol shows it; None until the room has one."""
        if self.decided_at is None:
            return None
        return {
            "item": self.decision_item,
            "by": None if self.decision_auto else self.decision_by,
            "at": self.decided_at.isoformat(),
            "auto": self.decision_auto,
        }


class Participant(models.Model):
    """A person in a room: one per browser session, or one per terminal connection."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="participants")
    # Set for browsers (their Django session); empty for clients without a session cookie.
    session_key = models.CharField(max_length=40, blank=True)
    name = models.CharField(max_length=100)
    joined_at = models.DateTimeField(default=timezone.now)
    # SHA-256 of the participant's rejoin token (the token itself is never stored), and what
    # the token is made from with the SECRET_KEY (token_from_seed), so a rejoin by session
    # answers the same one.
    token_hash = models.CharField(max_length=64, blank=True, editable=False)
    # db_default: processes of the release before it, still serving during a deploy, insert
    # participants without the column.
    token_seed = models.CharField(max_length=32, blank=True, editable=False, db_default="")
    # When they said they are coming (None: not coming); the headcount's order.
    going_since = models.DateTimeField(null=True, blank=True)
    # Removed by the host: neither the token nor the session can rejoin the room.
    kicked_at = models.DateTimeField(null=True, blank=True)
    # When they last said they are done looking (None: not done); it counts while it is
    # later than the room's done_reset_at.
    done_at = models.DateTimeField(null=True, blank=True)
    # What they can't eat: tags (text.tag_names), as a JSON array of strings. Kept on the
    # row, so across leaving and rejoining; every draw skips an item carrying one of them.
    avoids = models.TextField(default="[]", db_default="[]", blank=True)

    # Not columns: what a join sets on the participants it reads (services/presence.py). The
    # rejoin token in clear (only its hash is stored); whether a fresh connection is open
    # (`online`), and one of a worker that stopped heartbeating (`ghost`).
    token: str
    online: bool
    ghost: bool

    class Meta:
        ordering = ["joined_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["room", "session_key"],
                condition=~Q(session_key=""),
                name="one_participant_per_session_per_room",
            ),
            models.UniqueConstraint(
                fields=["room", "token_hash"],
                condition=~Q(token_hash=""),
                name="one_participant_per_token_per_room",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Order(models.Model):
    """What a participant eats, once the room has decided where: one per participant.

    Changing it keeps its row, so its place in the list (`id`) stays."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="orders")
    participant = models.OneToOneField(Participant, on_delete=models.CASCADE, related_name="order")
    text = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]  # the order first given

    def __str__(self) -> str:
        return self.text


class Share(models.Model):
    """A participant's share of the room's bill, fixed when the bill is set."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="shares")
    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="+")
    amount = models.PositiveIntegerField()
    paid = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]  # the sharers' order
        constraints = [
            models.UniqueConstraint(fields=["room", "participant"], name="one_share_per_room")
        ]

    def __str__(self) -> str:
        return f"{self.amount} of room {self.room_id} by participant {self.participant_id}"


class Connection(models.Model):
    """One open WebSocket of a participant; a participant is online while one is fresh."""

    participant = models.ForeignKey(
        Participant, on_delete=models.CASCADE, related_name="connections"
    )
    channel_name = models.CharField(max_length=200, unique=True)
    connected_at = models.DateTimeField(default=timezone.now)
    # Refreshed by the connection's heartbeat; a stale one belongs to a dead worker. Not
    # indexed, so that PostgreSQL writes each heartbeat as a heap-only (HOT) update in the
    # page's free space (migration 0007): a process's ten thousand heartbeats every 20 s
    # then leave no index entries behind and their dead versions are pruned as pages are
    # read. Every query of it starts from a participant or a room, whose indexes it uses.
    last_seen = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.channel_name


class Item(models.Model):
    """A menu idea."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="items")
    name = models.CharField(max_length=200)
    # The comparison form (NFC, whitespace folded, case-folded): one item per key per room.
    key = models.CharField(max_length=400)
    added_by = models.ForeignKey(
        Participant, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    added_at = models.DateTimeField(default=timezone.now)
    # One of the tied items of the room's runoff (Room.runoff_ends_at), while it runs.
    runoff = models.BooleanField(default=False, db_default=False)
    # Its tags (text.tag_names: what is in it, `해산물`), as a JSON array of strings. Text,
    # not JSON: both databases and both drivers read it back the same way.
    tags = models.TextField(default="[]", db_default="[]", blank=True)

    class Meta:
        ordering = ["id"]  # insertion order
        constraints = [
            models.UniqueConstraint(fields=["room", "key"], name="one_item_per_key_per_room")
        ]

    def __str__(self) -> str:
        return self.name


class Mark(models.Model):
    """A participant's vote for, or veto of, an item."""

    class Kind(models.TextChoices):
        VOTE = "vote", _("vote")
        VETO = "veto", _("veto")

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="marks")
    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="marks")
    kind = models.CharField(max_length=4, choices=Kind.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["item", "participant", "kind"], name="one_mark_per_kind"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} of item {self.item_id} by participant {self.participant_id}"


# A command's idempotency key (protocol `id`): 1 to 64 of these characters.
COMMAND_ID_MAX_LENGTH = 64


class CommandReceipt(models.Model):
    """A command a participant sent with an `id`, and how it was answered the first time.

    A command seen again with the same id from the same participant is answered from here
    (the same acknowledgement, or the same refusal) and not applied again: a client resends
    what was not acknowledged when its connection dropped (a deploy's 1012, a lost 1006).
    Written in the same transaction as the command: by the everyday change's statement
    itself (rooms/services/runner.py) or by the service path (rooms/commands.py). The
    participant belongs to one room, so the receipts go with the room (purge_rooms).
    """

    participant = models.ForeignKey(
        Participant, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    command_id = models.CharField(max_length=COMMAND_ID_MAX_LENGTH)
    # The error code it was refused with; empty: it was applied.
    outcome = models.CharField(max_length=40, blank=True)
    # The room's version its change made (none for a refusal, or for `close`).
    version = models.PositiveBigIntegerField(null=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # The lookup and the backstop: one receipt per command id per participant.
            models.UniqueConstraint(
                fields=["participant", "command_id"], name="one_receipt_per_command_id"
            )
        ]

    def __str__(self) -> str:
        return f"command {self.command_id} of participant {self.participant_id}"
