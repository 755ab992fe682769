"""The error codes of the public protocol, and the exception that carries them."""

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
]

# Close codes sent after the error event for the refusals that end a connection.
CLOSE_CODES: dict[str, int] = {
    "room_not_found": 4404,
    "room_expired": 4410,
    "room_full": 4403,
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
    "nothing_to_pick": "There is nothing to pick from: add an item or lift a veto.",
    "rate_limited": "Too many actions at once; wait a few seconds.",
    "message_too_large": "That message is too large.",
    "room_not_found": "This room does not exist.",
    "room_expired": "This room has expired.",
    "room_full": "This room is full.",
    "too_many_connections": "You have this room open in too many places; close one.",
    "server_busy": "The server is busy; try again.",
}


class ClientError(Exception):
    """A rule said no: the client gets `code` and a readable message, nothing changed."""

    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        self.code = code
        self.message = message or MESSAGES[code]
        super().__init__(f"{code}: {self.message}")
