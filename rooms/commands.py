"""What each protocol action does: its parser, its service and, for an everyday one, its Change.

The table below is the one place a WebSocket action meets the code that decides it: `vote`
is `items.mark_toggle`, whose rule (the item must be on the list) is a check of
`items.mark_toggle_change`, beside the SQL it guards. `command_run` runs a parsed command on
a database thread; `command_dispatch` is the consumer's entry, which sends an everyday change
from the event loop where it can (rooms/everyday.py) and everything else to `command_run`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from . import backend, database, everyday, protocol
from .protocol import Command, CommandSpec, StateEvent
from .services import bills, deadlines, host, items, participants, picks, receipts, rooms
from .services.changes import Change
from .services.runner import CommandKey, Replay, committed_state, keyed_change_run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Action:
    """One protocol action: how a frame says it, the service that runs it, its everyday Change.

    The service is called with `room_id`, with `participant_id` when `by_participant`, with
    `fixed` and with the parsed command's arguments; `change`, given `fixed` and the same
    arguments, builds the Change the service applies, for the event loop to send itself.
    """

    spec: CommandSpec
    service: Callable[..., StateEvent | None]
    change: Callable[..., Change] | None = None
    fixed: Mapping[str, Any] = field(default_factory=dict)
    by_participant: bool = True

    def arguments(self, command: Command) -> dict[str, Any]:
        """The keyword arguments the command gives its service and its change (not the ids)."""
        return {**self.fixed, **command.arguments}


_SPEC = protocol.COMMANDS

# Every action of the protocol: how it is parsed, which service decides it, whether it is an
# everyday change (and which). docs/engine.md explains the columns.
ACTIONS: dict[str, Action] = {
    "add": Action(_SPEC["add"], items.item_add, items.item_add_change),
    "remove": Action(_SPEC["remove"], items.item_remove, items.item_remove_change),
    "vote": Action(
        _SPEC["vote"], items.mark_toggle, items.mark_toggle_change, fixed={"kind": "vote"}
    ),
    "veto": Action(
        _SPEC["veto"], items.mark_toggle, items.mark_toggle_change, fixed={"kind": "veto"}
    ),
    "rename": Action(
        _SPEC["rename"], participants.participant_rename, participants.participant_rename_change
    ),
    "going": Action(
        _SPEC["going"], participants.participant_going, participants.participant_going_change
    ),
    "extend": Action(
        _SPEC["extend"], rooms.room_extend, rooms.room_extend_change, by_participant=False
    ),
    "done": Action(
        _SPEC["done"], participants.participant_done, participants.participant_done_change
    ),
    "tag": Action(_SPEC["tag"], items.item_tag, items.item_tag_change),
    "avoid": Action(
        _SPEC["avoid"], participants.participant_avoid, participants.participant_avoid_change
    ),
    "pick": Action(_SPEC["pick"], picks.room_pick),
    # The host's actions (the services answer not_host to anyone else).
    "deadline": Action(_SPEC["deadline"], deadlines.room_deadline),
    "lock": Action(_SPEC["lock"], host.room_lock, fixed={"locked": True}),
    "unlock": Action(_SPEC["unlock"], host.room_lock, fixed={"locked": False}),
    "kick": Action(_SPEC["kick"], host.participant_kick),
    "host": Action(_SPEC["host"], host.host_hand_over),
    "close": Action(_SPEC["close"], rooms.room_close_by_host),
    # After the pick.
    "order": Action(_SPEC["order"], bills.order_set, bills.order_set_change),
    "paid": Action(_SPEC["paid"], bills.share_paid, bills.share_paid_change),
    "bill": Action(_SPEC["bill"], bills.bill_set),
    "announce": Action(_SPEC["announce"], bills.room_announce),
    "blind": Action(_SPEC["blind"], host.room_blind),
}


@dataclass(frozen=True)
class Answer:
    """How a command was answered: the new state it made (none for `close`, or a command seen
    before), and the version the ack names. `replayed`: seen before, not applied now."""

    state: StateEvent | None
    version: int | None
    replayed: bool = False

    @classmethod
    def of(cls, outcome: StateEvent | Replay | None) -> Answer:
        if isinstance(outcome, Replay):
            return cls(state=None, version=outcome.version, replayed=True)
        return cls(state=outcome, version=None if outcome is None else outcome["version"])


def command_run(
    *, room_id: str, participant_id: int, command: Command, unless_committed: UUID | None = None
) -> StateEvent | None:
    """Apply one parsed protocol command for a participant; return the room's new state.

    `close` returns none: the room is gone, and everyone is told so instead. (A command with
    an `id` seen before returns none too: `command_answer` says how it was answered.)
    """
    return command_answer(
        room_id=room_id,
        participant_id=participant_id,
        command=command,
        unless_committed=unless_committed,
    ).state


def command_answer(
    *, room_id: str, participant_id: int, command: Command, unless_committed: UUID | None = None
) -> Answer:
    """Apply one parsed protocol command for a participant, on a database thread; then, if
    its state says the room can be decided now (everyone done, everyone voted in the
    runoff), decide it."""
    answer = _command_apply(
        room_id=room_id,
        participant_id=participant_id,
        command=command,
        unless_committed=unless_committed,
    )
    if answer.state is not None:
        _settle_if_needed(room_id, answer.state)
    return answer


def _command_apply(
    *, room_id: str, participant_id: int, command: Command, unless_committed: UUID | None
) -> Answer:
    """Apply one parsed protocol command for a participant, on a database thread.

    `unless_committed` is the receipt of the same command sent from the event loop, whose
    connection failed before its answer came (rooms/everyday.py). If that went through, the
    command is not applied again: the room's state, which nobody was sent, goes out instead.
    A command with an `id` needs no such receipt: its own (CommandReceipt) says.
    """
    action = ACTIONS[command.action]
    arguments = action.arguments(command)
    if command.id is not None:
        key = CommandKey(participant_id, command.id)
        if action.change is not None and backend.vendor() == "postgresql":
            # The everyday change's one round trip keeps the receipt (runner.py).
            by = participant_id if action.by_participant else None
            change = action.change(**arguments)
            return Answer.of(keyed_change_run(room_id, change, by=by, key=key))
        if action.by_participant:
            arguments["participant_id"] = participant_id
        return Answer.of(
            receipts.run_once(room_id, key, lambda: action.service(room_id=room_id, **arguments))
        )
    if unless_committed is not None:
        state = committed_state(room_id, unless_committed)
        if state is not None:
            return Answer.of(state)
    if action.by_participant:
        arguments["participant_id"] = participant_id
    return Answer.of(action.service(room_id=room_id, **arguments))


def _settle_if_needed(room_id: str, state: StateEvent) -> None:
    """After a change (on a database thread): decide now if its state says the room can be
    decided (deadlines.settle_needed). The change went through whatever happens here: a
    failure is logged, and the deadline or the runoff's time decides later instead."""
    if not deadlines.settle_needed(state):
        return
    try:
        deadlines.room_settle(room_id=room_id, state=state)
    except Exception:
        log.exception("early decision failed room=%s; the clock decides in time", room_id)


async def change_from_loop(
    *, room_id: str, participant_id: int, command: Command
) -> StateEvent | Replay | None:
    """Apply an everyday command from the event loop and publish its state; None if it is not
    an everyday one or the loop does not send changes (SQLite, or switched off). A command
    with an `id` seen before is not applied again: Replay (or its first ClientError).

    A refusal raises its ClientError (one round trip); a failed connection everyday.Unanswered.
    """
    action = ACTIONS[command.action]
    if action.change is None or not everyday.enabled():
        return None
    change = action.change(**action.arguments(command))  # a bad argument raises ClientError
    by = participant_id if action.by_participant else None
    key = None if command.id is None else CommandKey(participant_id, command.id)
    outcome = await everyday.change_send(room_id=room_id, change=change, by=by, key=key)
    # Everyone done before the deadline, everyone voted in the runoff: decide now. Read from
    # the state the change returned; only then does it cost a trip to a database thread.
    if not isinstance(outcome, Replay) and deadlines.settle_needed(outcome):
        await database.call(_settle_if_needed, room_id=room_id, state=outcome)
    return outcome


async def command_dispatch(*, room_id: str, participant_id: int, command: Command) -> Answer:
    """Run a participant's command for the consumer: an everyday change from the event loop
    where it can go, anything else, or a change whose connection failed, on a database thread."""
    unless_committed = None
    try:
        outcome = await change_from_loop(
            room_id=room_id, participant_id=participant_id, command=command
        )
        if outcome is not None:
            return Answer.of(outcome)
    except everyday.Unanswered as unanswered:
        unless_committed = unanswered.receipt
    answer: Answer = await database.call(
        command_answer,
        room_id=room_id,
        participant_id=participant_id,
        command=command,
        unless_committed=unless_committed,
    )
    return answer
