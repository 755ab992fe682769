"""The WebSocket protocol's message shapes, defined once.

Incoming frames (JSON or the `add:pizza` text shorthand) parse to one `Command`;
outgoing events are the TypedDicts below. docs/protocol.md describes the same shapes.
"""

import json
from dataclasses import dataclass
from typing import Literal, TypedDict

from .errors import ClientError

Action = Literal[
    "add",
    "remove",
    "vote",
    "veto",
    "rename",
    "pick",
    "extend",
    "going",
    "lock",
    "unlock",
    "kick",
    "host",
    "close",
]
PickMode = Literal["top", "weighted"]

# Which field carries each action's argument (None: the action takes none). `participant`
# is a participant's integer id, `going` a boolean, every other one text.
_ARGUMENT_FIELD: dict[str, str | None] = {
    "add": "item",
    "remove": "item",
    "vote": "item",
    "veto": "item",
    "rename": "name",
    "pick": None,
    "extend": None,
    "going": "going",
    "lock": None,
    "unlock": None,
    "kick": "participant",
    "host": "participant",
    "close": None,
}
# The shorthand's command words: `name:` is the shorthand of `rename`, `in` and `out` of
# `going` (whose JSON argument is a boolean, so it has no `going:` form).
_SHORTHAND_ACTIONS: dict[str, str] = {
    **{a: a for a in _ARGUMENT_FIELD if a != "going"},
    "name": "rename",
    "in": "going",
    "out": "going",
}
# Participant ids are positive and fit the database's 64-bit integer.
_MAX_PARTICIPANT_ID = 2**63 - 1
_PICK_MODES = ("top", "weighted")
# A request id the client picks; the error answering its command carries it back.
Ref = str | int
REF_MAX_LENGTH = 64
# Integers a JavaScript client gets back exactly (Number.MAX_SAFE_INTEGER).
_REF_MAX_INT = 2**53 - 1


@dataclass(frozen=True, slots=True)
class Command:
    action: Action
    text: str = ""  # the item or the new name; cleaned and checked by the services
    mode: PickMode = "top"
    participant: int | None = None  # whom a kick or a hand-over names
    going: bool = False  # for `going`: coming (True) or not (False)
    ref: Ref | None = None  # the JSON command's request id, echoed on its error


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
    ref = _parse_ref(data.get("ref"))
    try:
        return _json_command(data, ref)
    except ClientError as error:
        error.ref = ref
        raise


def _parse_ref(ref: object) -> Ref | None:
    """The command's `ref`: a string of at most 64 characters or a safe integer, or none."""
    if ref is None:
        return None
    if isinstance(ref, str) and len(ref) <= REF_MAX_LENGTH:
        return ref
    # bool is an int in Python, not in JSON: `"ref": true` is not a request id.
    if isinstance(ref, int) and not isinstance(ref, bool) and abs(ref) <= _REF_MAX_INT:
        return ref
    raise ClientError("bad_message", '"ref" is a string of up to 64 characters or an integer.')


def _json_command(data: dict, ref: Ref | None) -> Command:
    action = data.get("action")
    if not isinstance(action, str) or action.lower() not in _ARGUMENT_FIELD:
        raise ClientError("bad_message", "Unknown action.")
    action = action.lower()
    field = _ARGUMENT_FIELD[action]
    if action == "pick":
        mode = data.get("mode", "top")
        if mode not in _PICK_MODES:
            raise ClientError("bad_message", 'Pick mode is "top" or "weighted".')
        return Command("pick", mode=mode, ref=ref)
    if field is None:
        return Command(action, ref=ref)
    value = data.get(field)
    if field == "participant":
        if not _is_participant_id(value):
            raise ClientError("bad_message", f'"{action}" needs an integer "participant".')
        return Command(action, participant=value, ref=ref)
    if field == "going":
        if not isinstance(value, bool):
            raise ClientError("bad_message", '"going" needs "going": true or false.')
        return Command(action, going=value, ref=ref)
    if not isinstance(value, str):
        raise ClientError("bad_message", f'"{action}" needs a string "{field}".')
    return Command(action, text=value, ref=ref)


def _parse_shorthand(frame: str) -> Command:
    word, _, argument = frame.partition(":")
    action = _SHORTHAND_ACTIONS.get(word.strip().lower())
    if action is None:
        raise ClientError("bad_message", "Unknown command; try add:<item>, vote:<item> or pick.")
    if action == "pick":
        mode = argument.strip().lower() or "top"
        if mode not in _PICK_MODES:
            raise ClientError("bad_message", "Pick mode is top or weighted.")
        return Command("pick", mode=mode)
    if action == "going":
        return Command("going", going=word.strip().lower() == "in")
    if _ARGUMENT_FIELD[action] == "participant":
        digits = argument.strip()
        participant = int(digits) if digits.isascii() and digits.isdigit() else None
        if not _is_participant_id(participant):
            raise ClientError("bad_message", f"Name the participant by id: {action}:<id>.")
        return Command(action, participant=participant)
    if _ARGUMENT_FIELD[action] is None:
        return Command(action)
    return Command(action, text=argument)


def _is_participant_id(value: object) -> bool:
    return (
        isinstance(value, int) and not isinstance(value, bool) and 0 < value <= _MAX_PARTICIPANT_ID
    )


# --- Server to client ------------------------------------------------------------


class Decision(TypedDict):
    item: str
    by: str
    at: str


class Person(TypedDict):
    id: int
    name: str


class RoomInfo(TypedDict):
    id: str
    expires_at: str
    decision: Decision | None
    locked: bool  # the host locked the list: `add` is refused
    going: list[Person]  # who said they are coming, online or not, in the order they said it


class ItemState(TypedDict):
    name: str
    added_by: str | None
    added_by_id: int | None
    votes: int
    voters: list[str]
    voter_ids: list[int]  # same order as voters
    vetoed_by: list[str]
    vetoer_ids: list[int]  # same order as vetoed_by


class ParticipantInfo(TypedDict):
    id: int
    name: str
    host: bool


class You(TypedDict):
    id: int
    name: str
    token: str  # the rejoin token: only ever sent to its owner, in `welcome`


class StateEvent(TypedDict, total=False):
    type: Literal["state"]
    version: int
    room: RoomInfo
    items: list[ItemState]
    participants: list[ParticipantInfo]


class WelcomeEvent(TypedDict):
    type: Literal["welcome"]
    you: You


class PickedEvent(TypedDict):
    type: Literal["picked"]
    item: str
    by: str
    mode: PickMode


class ErrorEvent(TypedDict, total=False):
    type: Literal["error"]
    code: str
    message: str
    ref: Ref  # present when the error answers a JSON command that carried one


def error_event(error: ClientError) -> ErrorEvent:
    event: ErrorEvent = {"type": "error", "code": error.code, "message": error.message}
    if error.ref is not None:
        event["ref"] = error.ref
    return event


def encode(event: dict) -> str:
    # Compact separators: the state is sent to every client on every change.
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))
