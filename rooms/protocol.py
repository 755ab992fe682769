"""The WebSocket protocol's message shapes, defined once.

Incoming frames (JSON or the `add:pizza` text shorthand) parse to one `Command`;
outgoing events are the TypedDicts below. docs/protocol.md describes the same shapes.
"""

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from .errors import MESSAGES, ClientError, ErrorCode

PickMode = Literal["top", "weighted"]
_PICK_MODES = ("top", "weighted")
_FRESH = "fresh"  # the shorthand word of "avoid_recent": true (lunch groups)
# A request id the client picks; the error answering its command carries it back.
Ref = str | int
REF_MAX_LENGTH = 64
# A command's idempotency key, the client's choice: 1 to 64 ASCII letters, digits, _ and -
# (rooms/models.py's CommandReceipt keeps it for the room's life).
COMMAND_ID_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Integers a JavaScript client gets back exactly (Number.MAX_SAFE_INTEGER).
_REF_MAX_INT = 2**53 - 1
# Participant ids are positive and fit the database's 64-bit integer.
_MAX_PARTICIPANT_ID = 2**63 - 1

# --- Client to server: the command table -------------------------------------------

Arguments = dict[str, Any]


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """How a frame says one action of the protocol: how its arguments are read.

    `from_json` (given the JSON object) or `from_text` (given the text after the shorthand's
    colon) return the keyword arguments of the action's service (rooms/commands.py says which
    service that is); both raise ClientError("bad_message") for a malformed one.
    """

    from_json: Callable[[dict], Arguments]
    from_text: Callable[[str], Arguments]
    # Shorthand words besides the action's own name (`name:` for rename).
    aliases: tuple[str, ...] = ()
    # Shorthand words that stand for the action with these arguments (`in` for going).
    words: Mapping[str, Arguments] = field(default_factory=dict)


def _no_argument() -> tuple[Callable[[dict], Arguments], Callable[[str], Arguments]]:
    return (lambda data: {}), (lambda argument: {})


def _text_argument(
    field_name: str, parameter: str = "name"
) -> tuple[Callable[[dict], Arguments], Callable[[str], Arguments]]:
    """A string argument in JSON field `field_name`, given to the service as `parameter`."""

    def from_json(data: dict) -> Arguments:
        value = data.get(field_name)
        if not isinstance(value, str):
            raise ClientError("bad_message", f'"{data["action"]}" needs a string "{field_name}".')
        return {parameter: value}

    return from_json, (lambda argument: {parameter: argument})


def _pick_from_json(data: dict) -> Arguments:
    mode = data.get("mode", "top")
    if mode not in _PICK_MODES:
        raise ClientError("bad_message", 'Pick mode is "top" or "weighted".')
    avoid_recent = data.get("avoid_recent", False)
    if not isinstance(avoid_recent, bool):
        raise ClientError("bad_message", '"avoid_recent" is true or false.')
    on_tie = data.get("on_tie", "draw")
    if on_tie not in _ON_TIE:
        raise ClientError("bad_message", '"on_tie" is "draw" or "runoff".')
    return _pick_arguments(mode, avoid_recent, on_tie == _RUNOFF)


def _pick_from_text(argument: str) -> Arguments:
    # pick, pick:weighted, pick:fresh, pick:runoff, pick:fresh:runoff... (any order).
    words = [word.strip().lower() for word in argument.split(":")] if argument.strip() else []
    modes = [word for word in words if word in _PICK_MODES]
    fresh = [word for word in words if word == _FRESH]
    runoff = [word for word in words if word == _RUNOFF]
    if (
        len(modes) > 1
        or len(fresh) > 1
        or len(runoff) > 1
        or len(modes) + len(fresh) + len(runoff) != len(words)
    ):
        raise ClientError(
            "bad_message", "Pick mode is top or weighted, optionally :fresh and :runoff."
        )
    return _pick_arguments(modes[0] if modes else "top", bool(fresh), bool(runoff))


def _pick_arguments(mode: str, avoid_recent: bool, runoff: bool = False) -> Arguments:
    # The flags only when set: a plain pick parses to what it always did.
    arguments: Arguments = {"mode": mode}
    if avoid_recent:
        arguments["avoid_recent"] = True
    if runoff:
        if mode != "top":
            raise ClientError("bad_message", "A runoff settles a tie of mode top.")
        arguments["on_tie"] = _RUNOFF
    return arguments


_RUNOFF = "runoff"
_ON_TIE = ("draw", _RUNOFF)


def _deadline_from_json(data: dict) -> Arguments:
    # Any JSON value: the service judges it, after the host check (not_host comes first).
    if "seconds" not in data:
        raise ClientError("bad_message", '"deadline" needs "seconds": a number or null.')
    return {"seconds": data["seconds"]}


def _deadline_from_text(argument: str) -> Arguments:
    # deadline:600, deadline:off; anything else is the service's invalid_deadline.
    value = argument.strip()
    if value.lower() == "off":
        return {"seconds": None}
    # isascii: an Arabic-Indic digit is a digit to Python, not a number of seconds to us.
    if value.isascii() and value.isdigit() and len(value) <= 6:
        return {"seconds": int(value)}
    return {"seconds": value}


def _participant_argument() -> tuple[Callable[[dict], Arguments], Callable[[str], Arguments]]:
    """A participant's id: a JSON integer in `participant`, digits after the colon."""

    def from_json(data: dict) -> Arguments:
        value = data.get("participant")
        if not _is_participant_id(value):
            raise ClientError("bad_message", f'"{data["action"]}" needs an integer "participant".')
        return {"target_id": value}

    def from_text(argument: str) -> Arguments:
        digits = argument.strip()
        # isascii: an Arabic-Indic digit is a digit to Python, not part of an id to us.
        value = int(digits) if digits.isascii() and digits.isdigit() else None
        if not _is_participant_id(value):
            raise ClientError("bad_message", "Name the participant by id: kick:<id>, host:<id>.")
        return {"target_id": value}

    return from_json, from_text


def _switch(field_name: str, *, on: str, off: str) -> CommandSpec:
    """A command that turns something on or off: `{"<field>": true|false}` in JSON, the
    words `on` and `off` in the shorthand."""
    return CommandSpec(
        *_switch_argument(field_name, on=on, off=off),
        words={on: {field_name: True}, off: {field_name: False}},
    )


def _is_participant_id(value: object) -> bool:
    return (
        isinstance(value, int) and not isinstance(value, bool) and 0 < value <= _MAX_PARTICIPANT_ID
    )


def _switch_argument(
    field_name: str, *, on: str, off: str
) -> tuple[Callable[[dict], Arguments], Callable[[str], Arguments]]:
    """A JSON bool in `field_name`; in the shorthand, only the words `on` and `off`."""

    def from_json(data: dict) -> Arguments:
        value = data.get(field_name)
        if not isinstance(value, bool):
            needs = f'"{data["action"]}" needs "{field_name}": true or false.'
            raise ClientError("bad_message", needs)
        return {field_name: value}

    def from_text(argument: str) -> Arguments:
        raise ClientError("bad_message", f"Say {on} or {off}.")

    return from_json, from_text


# --- Tags (can't eat) ---------------------------------------------------------------

_TAG_MARK = "#"


def _tag_list(data: dict, field_name: str = "tags") -> list:
    """The JSON list of tags, as sent (the service cleans and checks each: invalid_tag)."""
    value = data.get(field_name)
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        needs = f'"{data["action"]}" needs "{field_name}": a list of strings.'
        raise ClientError("bad_message", needs)
    return value


def _item_and_tags(argument: str) -> Arguments:
    """`짬뽕 #해산물 #매운`: the words starting with # are tags, the others the item's name."""
    words = argument.split()
    name = " ".join(word for word in words if not word.startswith(_TAG_MARK))
    tags = [word[len(_TAG_MARK) :] for word in words if word.startswith(_TAG_MARK)]
    if not tags:
        return {"name": argument}  # as it always was: the rules clean the name
    return {"name": name, "tags": tags}


def _add_from_json(data: dict) -> Arguments:
    arguments = _text_argument("item")[0](data)
    if data.get("tags") is not None:
        arguments["tags"] = _tag_list(data)
    return arguments


def _tag_from_json(data: dict) -> Arguments:
    return {**_text_argument("item")[0](data), "tags": _tag_list(data)}


def _tag_from_text(argument: str) -> Arguments:
    # `tag:짬뽕` (no tags) clears them.
    return {"tags": [], **_item_and_tags(argument)}


def _avoid_from_json(data: dict) -> Arguments:
    return {"tags": _tag_list(data)}


def _avoid_from_text(argument: str) -> Arguments:
    # `avoid:해산물,매운`; `avoid:` clears. A # in front is allowed (`avoid:#해산물`).
    pieces = (piece.strip() for piece in argument.split(","))
    return {"tags": [piece.removeprefix(_TAG_MARK) for piece in pieces if piece]}


def _order_from_json(data: dict) -> Arguments:
    value = data.get("text")
    if value is not None and not isinstance(value, str):
        raise ClientError("bad_message", '"order" needs a string "text" (null withdraws it).')
    return {"order": value}


def _bill_from_json(data: dict) -> Arguments:
    # The total is judged by the service (invalid_amount); its absence is a malformed frame.
    if "total" not in data:
        raise ClientError("bad_message", '"bill" needs a "total" (null removes the bill).')
    arguments: Arguments = {"total": data["total"]}
    if "paid_by" in data and data["paid_by"] is not None:
        if not _is_participant_id(data["paid_by"]):
            raise ClientError("bad_message", '"paid_by" is a participant\'s integer id.')
        arguments["paid_by"] = data["paid_by"]
    return arguments


def _bill_from_text(argument: str) -> Arguments:
    # bill:54000 (or 54,000), bill:off; anything else is an amount the service refuses.
    value = argument.strip()
    if value.lower() == "off":
        return {"total": None}
    digits = value.replace(",", "")
    return {"total": int(digits) if digits.isascii() and digits.isdigit() else value}


# Every action of the protocol and how a frame says it. docs/protocol.md describes the same
# table; rooms/commands.py gives each action its service.
COMMANDS: dict[str, CommandSpec] = {
    "add": CommandSpec(_add_from_json, _item_and_tags),
    "remove": CommandSpec(*_text_argument("item")),
    "vote": CommandSpec(*_text_argument("item")),
    "veto": CommandSpec(*_text_argument("item")),
    "rename": CommandSpec(*_text_argument("name"), aliases=("name",)),
    "pick": CommandSpec(_pick_from_json, _pick_from_text),
    "extend": CommandSpec(*_no_argument()),
    "going": _switch("going", on="in", off="out"),
    "done": _switch("done", on="done", off="undone"),
    # Can't eat: an item's tags (anyone), and what I avoid.
    "tag": CommandSpec(_tag_from_json, _tag_from_text),
    "avoid": CommandSpec(_avoid_from_json, _avoid_from_text),
    # The host's actions (the services answer not_host to anyone else).
    "deadline": CommandSpec(_deadline_from_json, _deadline_from_text),
    "lock": CommandSpec(*_no_argument()),
    "unlock": CommandSpec(*_no_argument()),
    "kick": CommandSpec(*_participant_argument()),
    "host": CommandSpec(*_participant_argument()),
    "close": CommandSpec(*_no_argument()),
    # After the pick: orders, the bill, telling the group.
    "order": CommandSpec(_order_from_json, lambda argument: {"order": argument}),
    "bill": CommandSpec(_bill_from_json, _bill_from_text),
    "paid": _switch("paid", on="paid", off="unpaid"),
    "announce": CommandSpec(*_no_argument()),
    "blind": _switch("blind", on="blind", off="unblind"),
}
_SHORTHAND_WORDS: dict[str, str] = {
    word: action
    for action, spec in COMMANDS.items()
    for word in (action, *spec.aliases, *spec.words)
}


@dataclass(frozen=True, slots=True)
class Command:
    """One parsed frame: the action and the keyword arguments its service gets from it."""

    action: str
    arguments: Arguments = field(default_factory=dict)
    ref: Ref | None = None  # the JSON command's request id, echoed on its answer
    # The JSON command's idempotency key: seen again for the same participant, the command
    # is answered as the first time and not applied again (rooms/commands.py).
    id: str | None = None

    @property
    def spec(self) -> CommandSpec:
        return COMMANDS[self.action]


def parse_frame(frame: str) -> Command:
    """One text frame to a Command, or ClientError(bad_message)."""
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
        command_id = _parse_command_id(data.get("id"))
    except ClientError as error:
        error.ref = ref
        raise
    try:
        return _json_command(data, ref, command_id)
    except ClientError as error:
        error.ref, error.command_id = ref, command_id
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


def _parse_command_id(command_id: object) -> str | None:
    """The command's `id`: 1 to 64 of A-Z, a-z, 0-9, _ and -, or none (null is none)."""
    if command_id is None:
        return None
    if isinstance(command_id, str) and COMMAND_ID_SHAPE.fullmatch(command_id):
        return command_id
    raise ClientError("invalid_id")


def _json_command(data: dict, ref: Ref | None, command_id: str | None) -> Command:
    action = data.get("action")
    if not isinstance(action, str) or action.lower() not in COMMANDS:
        raise ClientError("bad_message", "Unknown action.")
    action = action.lower()
    data["action"] = action
    return Command(action, COMMANDS[action].from_json(data), ref=ref, id=command_id)


def _parse_shorthand(frame: str) -> Command:
    word, _, argument = frame.partition(":")
    action = _SHORTHAND_WORDS.get(word.strip().lower())
    if action is None:
        raise ClientError("bad_message", "Unknown command; try add:<item>, vote:<item> or pick.")
    spec = COMMANDS[action]
    word = word.strip().lower()
    if word in spec.words:
        return Command(action, dict(spec.words[word]))
    return Command(action, spec.from_text(argument))


# --- Server to client ------------------------------------------------------------


class Decision(TypedDict):
    item: str
    by: str | None  # None: the server decided by itself (a deadline, a runoff)
    at: str
    auto: bool


class Deadline(TypedDict):
    at: str  # ISO 8601: when the server decides by itself


class Runoff(TypedDict):
    items: list[str]  # the tied items, the only ones that can be voted for
    ends_at: str  # ISO 8601


class Person(TypedDict):
    id: int
    name: str


class GroupInfo(TypedDict):
    slug: str
    name: str


class OrderState(TypedDict):
    id: int  # the participant's
    name: str
    text: str


class OrderLine(TypedDict):
    text: str  # as the first of them spelled it
    count: int
    ids: list[int]  # who ordered it, in the order first given


class ShareState(TypedDict):
    id: int  # the participant's
    name: str
    amount: int
    paid: bool


class BillState(TypedDict):
    total: int
    currency: str
    unit: int
    paid_by: Person
    shares: list[ShareState]


class RoomInfo(TypedDict):
    id: str
    expires_at: str
    decision: Decision | None
    locked: bool  # the host locked the list: `add` is refused
    going: list[Person]  # who said they are coming, online or not, in the order they said it
    group: GroupInfo | None  # the lunch group the room belongs to
    orders: list[OrderState]  # after the decision, in the order first given
    order_tally: list[OrderLine]  # the same dishes together, most first
    bill: BillState | None
    summary: str | None  # the message for the group's chat, in the room's language
    deadline: Deadline | None  # the host's deadline, while one is set
    runoff: Runoff | None  # the runoff between tied items, while one runs
    blind: bool  # blind votes: until the decision, no item says who voted for it or how many


class ItemState(TypedDict):
    name: str
    added_by: str | None
    added_by_id: int | None
    votes: int | None  # None in a blind room until the decision (voters are [] then)
    voters: list[str]
    voter_ids: list[int]  # same order as voters
    vetoed_by: list[str]
    vetoer_ids: list[int]  # same order as vetoed_by
    tags: list[str]
    # Who can't eat it (a tag they avoid), among those online and those coming: every
    # draw skips it.
    avoided_by: list[str]
    avoider_ids: list[int]  # same order as avoided_by


class ParticipantInfo(TypedDict):
    id: int
    name: str
    host: bool
    done: bool  # said they are done looking (reset by an add and by a decision)
    avoids: list[str]  # the tags they can't eat


class You(TypedDict):
    id: int
    name: str
    token: str  # the rejoin token: only ever sent to its owner, in `welcome`
    votes: list[str]  # the items it voted for (its own, even in a blind room)


class StateEvent(TypedDict, total=False):
    type: Literal["state"]
    version: int
    room: RoomInfo
    items: list[ItemState]
    participants: list[ParticipantInfo]


class WelcomeEvent(TypedDict):
    type: Literal["welcome"]
    you: You


class PickedEvent(TypedDict, total=False):
    type: Literal["picked"]
    item: str
    by: str | None  # None: the server decided by itself
    mode: PickMode
    auto: bool  # present (true) when the server decided by itself
    tied: list[str]  # mode top: the items that shared the most votes, when 2 or more did
    runoff: bool  # present (true) when a runoff decided
    tie_break: Literal["draw"]  # the runoff ended tied too: drawn among its leaders


class RunoffEvent(TypedDict):
    type: Literal["runoff"]
    items: list[str]
    ends_at: str


class DeadlineMissedEvent(TypedDict):
    type: Literal["deadline_missed"]
    reason: Literal["nothing_to_pick"]


class MineEvent(TypedDict):
    """A blind room: a participant's own votes, to each of its connections when they change."""

    type: Literal["mine"]
    votes: list[str]


class ErrorEvent(TypedDict, total=False):
    type: Literal["error"]
    code: str
    message: str
    ref: Ref  # present when the error answers a JSON command that carried one
    id: str  # likewise for the command's idempotency key


class AckEvent(TypedDict, total=False):
    """A command that carried an `id` was applied (now, or the first time it was seen)."""

    type: Literal["ack"]
    id: str
    version: int  # the room's version its change made (absent for `close`)
    ref: Ref


def error_event(
    code: ErrorCode, message: str | None = None, ref: Ref | None = None, id: str | None = None
) -> ErrorEvent:
    """The `error` event for a code; `ref` and `id` when it answers a JSON command that
    carried them."""
    event: ErrorEvent = {"type": "error", "code": code, "message": message or MESSAGES[code]}
    if ref is not None:
        event["ref"] = ref
    if id is not None:
        event["id"] = id
    return event


def ack_event(command: Command, version: int | None) -> AckEvent:
    """The `ack` of a command with an `id` that was applied (its `ref` too, if it had one)."""
    assert command.id is not None
    event: AckEvent = {"type": "ack", "id": command.id}
    if version is not None:
        event["version"] = version
    if command.ref is not None:
        event["ref"] = command.ref
    return event


# Every event the server sends a client.
ServerEvent = (
    StateEvent
    | WelcomeEvent
    | PickedEvent
    | RunoffEvent
    | DeadlineMissedEvent
    | MineEvent
    | ErrorEvent
    | AckEvent
)
# What may go out before a state, in the same broadcast (rooms/broadcast.py).
BeforeEvent = PickedEvent | RunoffEvent | DeadlineMissedEvent


def encode(event: ServerEvent) -> str:
    # Compact separators: the state is sent to every client on every change.
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))
