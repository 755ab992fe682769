"""The error codes of the public protocol, and our two kinds of failure.

`ClientError` is a rule saying no (the client sent something the room refuses); `ServerBusy`
is an outage (the database or the channel layer failed). Only the consumer turns either
into a wire error: `ServerBusy` becomes `server_busy`.
"""

from typing import Literal

ErrorCode = Literal[
    "bad_message",
    "empty_item",
    "item_too_long",
    "duplicate_item",
    "unknown_item",
    "too_many_items",
    "invalid_name",
    "nothing_to_pick",
    "rate_limited",
    "message_too_large",
    "room_not_found",
    "room_expired",
    "room_full",
    "too_many_connections",
    "server_busy",
    "not_host",
    "room_locked",
    "kicked",
    "unknown_participant",
    # After the pick: orders, the bill, the group's chat.
    "not_decided",
    "invalid_order",
    "invalid_amount",
    "no_share",
    "not_in_group",
    # Deciding on time (issue 29).
    "invalid_deadline",
    "not_in_runoff",
    "runoff_in_progress",
    "invalid_tag",
    "invalid_id",
    # Lunch groups (HTTP API only).
    "invalid_webhook",
    "invalid_schedule",
    "group_not_found",
]

# Close codes sent after the error event for the refusals that end a connection.
CLOSE_CODES: dict[str, int] = {
    "room_not_found": 4404,
    "room_expired": 4410,
    "room_full": 4403,
    "kicked": 4403,
    "too_many_connections": 4429,
}

MESSAGES: dict[str, str] = {
    "bad_message": "That message is not a command this room understands.",
    "empty_item": "An item needs a name.",
    "item_too_long": "That item name is too long.",
    "duplicate_item": "That item is already on the list.",
    "unknown_item": "There is no such item in this room.",
    "too_many_items": "This room has as many items as it can hold.",
    "invalid_name": "A name must be 1 to 24 visible characters.",
    "nothing_to_pick": (
        "There is nothing to pick from: add an item, lift a veto,"
        " or find something everyone can eat."
    ),
    "rate_limited": "Too many actions at once; wait a few seconds.",
    "message_too_large": "That message is too large.",
    "room_not_found": "This room does not exist.",
    "room_expired": "This room has expired.",
    "room_full": "This room is full.",
    "too_many_connections": "You have this room open in too many places; close one.",
    "server_busy": "The server is busy; try again.",
    "not_host": "Only the host can do that.",
    "room_locked": "The host has locked the list.",
    "kicked": "The host removed you from this room.",
    "unknown_participant": "There is nobody else online in this room with that id.",
    "not_decided": "The room has not decided yet.",
    "invalid_order": "An order must be 1 to 40 visible characters.",
    "invalid_amount": "A bill is a whole amount from 1 to 10,000,000.",
    "no_share": "You have no share of a bill in this room.",
    "not_in_group": "This room belongs to no lunch group.",
    "invalid_deadline": "A deadline is a whole number of seconds from 30 to 3600, or off.",
    "not_in_runoff": "Only the items in the runoff can be voted for now.",
    "runoff_in_progress": "A runoff is deciding between tied items; wait for it to end.",
    "invalid_tag": "A tag is 1 to 12 characters; an item has at most 3, and you avoid at most 5.",
    "invalid_id": 'A command\'s "id" is 1 to 64 letters, digits, "_" or "-".',
    "invalid_webhook": "A webhook is an https URL to a public address.",
    "invalid_schedule": "That is not a lunch schedule (see docs/protocol.md).",
    "group_not_found": "This group does not exist.",
}


class ClientError(Exception):
    """A rule said no: the client gets `code` and a readable message, nothing changed."""

    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        self.code = code
        self.message = message or MESSAGES[code]
        # The `ref` of the JSON command this answers (set by whoever read the command).
        self.ref: str | int | None = None
        # Its idempotency key (`id`), likewise.
        self.command_id: str | None = None
        super().__init__(f"{code}: {self.message}")


class ServerBusy(Exception):
    """An outage, not a refusal: the database or channel layer failed; nothing changed."""
