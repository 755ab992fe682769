"""The WebSocket protocol's message shapes, defined once.

Incoming frames (JSON or the `add:pizza` text shorthand) parse to one `Command`;
outgoing events are the TypedDicts below. docs/protocol.md describes the same shapes.
"""

import json
from dataclasses import dataclass
from typing import Literal, TypedDict

from .errors import ClientError

Action = Literal["add", "remove", "vote", "veto", "rename", "pick", "extend"]
PickMode = Literal["top", "weighted"]

# Which field carries each action's text argument (None: the action takes none).
_ARGUMENT_FIELD: dict[str, str | None] = {
    "add": "item",
    "remove": "item",
    "vote": "item",
    "veto": "item",
    "rename": "name",
    "pick": None,
    "extend": None,
}
# The shorthand's command words; `name:` is the shorthand of `rename`.
_SHORTHAND_ACTIONS: dict[str, str] = {**{a: a for a in _ARGUMENT_FIELD}, "name": "rename"}
_PICK_MODES = ("top", "weighted")
_FRESH = "fresh"  # the shorthand of "avoid_recent": true


@dataclass(frozen=True, slots=True)
class Command:
    action: Action
    text: str = ""  # the item or the new name; cleaned and checked by the services
    mode: PickMode = "top"
    # pick only: skip what the room's group decided in its other rooms lately (issue 10).
    avoid_recent: bool = False


def parse_frame(frame: str) -> Command:
    """One text frame to a Command, or ClientError(bad_message / empty_item / invalid_name)."""
    stripped = frame.strip()
    if stripped.startswith(("{", "[")):
        return _parse_json(stripped)
    return _parse_shorthand(stripped)


def _parse_json(frame: str) -> Command:
    try:
        data = json.loads(frame)
    except (ValueError, RecursionError) as exc:
        raise ClientError("bad_message", "That is not valid JSON.") from exc
    if not isinstance(data, dict):
        raise ClientError("bad_message", "A command is a JSON object.")
    action = data.get("action")
    if not isinstance(action, str) or action.lower() not in _ARGUMENT_FIELD:
        raise ClientError("bad_message", "Unknown action.")
    action = action.lower()
    field = _ARGUMENT_FIELD[action]
    if action == "pick":
        mode = data.get("mode", "top")
        if mode not in _PICK_MODES:
            raise ClientError("bad_message", 'Pick mode is "top" or "weighted".')
        avoid_recent = data.get("avoid_recent", False)
        if not isinstance(avoid_recent, bool):
            raise ClientError("bad_message", '"avoid_recent" is true or false.')
        return Command("pick", mode=mode, avoid_recent=avoid_recent)
    if field is None:
        return Command(action)
    value = data.get(field)
    if not isinstance(value, str):
        raise ClientError("bad_message", f'"{action}" needs a string "{field}".')
    return Command(action, text=value)


def _parse_shorthand(frame: str) -> Command:
    word, _, argument = frame.partition(":")
    action = _SHORTHAND_ACTIONS.get(word.strip().lower())
    if action is None:
        raise ClientError("bad_message", "Unknown command; try add:<item>, vote:<item> or pick.")
    if action == "pick":
        return _parse_pick_shorthand(argument)
    if _ARGUMENT_FIELD[action] is None:
        return Command(action)
    return Command(action, text=argument)


def _parse_pick_shorthand(argument: str) -> Command:
    # pick, pick:weighted, pick:fresh, pick:weighted:fresh (the words in any order).
    words = [word.strip().lower() for word in argument.split(":")] if argument.strip() else []
    modes = [word for word in words if word in _PICK_MODES]
    fresh = [word for word in words if word == _FRESH]
    if len(modes) > 1 or len(fresh) > 1 or len(modes) + len(fresh) != len(words):
        raise ClientError("bad_message", "Pick mode is top or weighted, optionally :fresh.")
    return Command("pick", mode=modes[0] if modes else "top", avoid_recent=bool(fresh))


# --- Server to client ------------------------------------------------------------


class Decision(TypedDict):
    item: str
    by: str
    at: str


class GroupInfo(TypedDict):
    slug: str
    name: str


class RoomInfo(TypedDict):
    id: str
    expires_at: str
    decision: Decision | None
    group: GroupInfo | None


class ItemState(TypedDict):
    name: str
    added_by: str | None
    votes: int
    voters: list[str]
    vetoed_by: list[str]


class ParticipantInfo(TypedDict):
    id: int
    name: str


class StateEvent(TypedDict, total=False):
    type: Literal["state"]
    version: int
    room: RoomInfo
    items: list[ItemState]
    participants: list[ParticipantInfo]


class WelcomeEvent(TypedDict):
    type: Literal["welcome"]
    you: ParticipantInfo


class PickedEvent(TypedDict):
    type: Literal["picked"]
    item: str
    by: str
    mode: PickMode


class ErrorEvent(TypedDict):
    type: Literal["error"]
    code: str
    message: str


def error_event(error: ClientError) -> ErrorEvent:
    return {"type": "error", "code": error.code, "message": error.message}


def encode(event: dict) -> str:
    # Compact separators: the state is sent to every client on every change.
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))
