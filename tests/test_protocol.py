"""Frames to commands: the JSON form and the text shorthand mean the same thing."""

import json

import pytest

from rooms.errors import ClientError
from rooms.protocol import Command, parse_frame


@pytest.mark.parametrize(
    ("json_frame", "shorthand", "expected"),
    [
        ({"action": "add", "item": "pizza"}, "add:pizza", Command("add", {"name": "pizza"})),
        ({"action": "remove", "item": "x"}, "remove:x", Command("remove", {"name": "x"})),
        ({"action": "vote", "item": "pizza"}, "vote:pizza", Command("vote", {"name": "pizza"})),
        ({"action": "veto", "item": "pizza"}, "veto:pizza", Command("veto", {"name": "pizza"})),
        ({"action": "rename", "name": "minji"}, "name:minji", Command("rename", {"name": "minji"})),
        ({"action": "pick"}, "pick", Command("pick", {"mode": "top"})),
        (
            {"action": "pick", "mode": "weighted"},
            "pick:weighted",
            Command("pick", {"mode": "weighted"}),
        ),
        ({"action": "extend"}, "extend", Command("extend")),
    ],
)
def test_json_and_shorthand_parse_alike(
    json_frame: dict, shorthand: str, expected: Command
) -> None:
    """Both forms of each command parse to the same Command."""
    assert parse_frame(json.dumps(json_frame)) == expected
    assert parse_frame(shorthand) == expected


def test_command_words_are_case_insensitive() -> None:
    """`ADD:` and `Pick:Weighted` work like their lower-case forms."""
    assert parse_frame("ADD:Pizza") == Command("add", {"name": "Pizza"})
    assert parse_frame("Pick:Weighted") == Command("pick", {"mode": "weighted"})
    assert parse_frame('{"action":"VOTE","item":"x"}') == Command("vote", {"name": "x"})


def test_shorthand_keeps_colons_in_the_argument() -> None:
    """Only the first colon separates the command word."""
    assert parse_frame("add:pho: the good one") == Command("add", {"name": "pho: the good one"})


def test_empty_arguments_reach_the_rules() -> None:
    """`add:` parses; the services then answer empty_item (see test_services)."""
    assert parse_frame("add:") == Command("add", {"name": ""})
    assert parse_frame("name:") == Command("rename", {"name": ""})


@pytest.mark.parametrize(
    "frame",
    [
        "",
        "hello",
        "eat:pizza",
        "{not json",
        "[1, 2]",
        '"add:pizza"',
        '{"action": "add", "item": 5}',
        '{"action": "add", "item": {"x": 1}}',
        '{"action": "add", "item": ["pizza"]}',
        '{"action": "add"}',
        '{"action": "launch"}',
        '{"action": 3}',
        '{"action": "pick", "mode": "random"}',
        "pick:random",
        "[" * 10_000 + "]" * 10_000,
        '{"a":' * 10_000 + "1" + "}" * 10_000,
    ],
)
def test_bad_messages(frame: str) -> None:
    """Anything that is not a command is bad_message, including very deep JSON."""
    with pytest.raises(ClientError) as caught:
        parse_frame(frame)
    assert caught.value.code == "bad_message"


def test_every_command_names_a_service_that_takes_its_arguments() -> None:
    """The command table points only at real services, called with parameters they accept."""
    import inspect

    from rooms.commands import ACTIONS
    from rooms.protocol import COMMANDS

    assert ACTIONS.keys() == COMMANDS.keys()
    for action, entry in ACTIONS.items():
        spec = entry.spec
        assert spec is COMMANDS[action], action
        parameters = inspect.signature(entry.service).parameters
        sample = {"pick": "", "kick": "1", "host": "1"}.get(action, "x")
        arguments = next(iter(spec.words.values()), None) or spec.from_text(sample)
        given = {"room_id", *entry.fixed, *arguments}
        if entry.by_participant:
            given.add("participant_id")
        required = {name for name, p in parameters.items() if p.default is inspect.Parameter.empty}
        assert required <= given <= set(parameters), action
        if entry.change is not None:  # an everyday change is built from the same arguments
            built = inspect.signature(entry.change).parameters
            needed = {name for name, p in built.items() if p.default is inspect.Parameter.empty}
            assert needed <= given - {"room_id", "participant_id"} <= set(built), action


@pytest.mark.parametrize(
    ("json_frame", "shorthand", "expected"),
    [
        ({"action": "lock"}, "lock", Command("lock")),
        ({"action": "unlock"}, "UNLOCK", Command("unlock")),
        ({"action": "close"}, "close", Command("close")),
        ({"action": "kick", "participant": 7}, "kick:7", Command("kick", {"target_id": 7})),
        ({"action": "host", "participant": 12}, "host: 12", Command("host", {"target_id": 12})),
        ({"action": "going", "going": True}, "in", Command("going", {"going": True})),
        ({"action": "going", "going": False}, "OUT", Command("going", {"going": False})),
    ],
)
def test_host_and_headcount_commands_parse_alike(
    json_frame: dict, shorthand: str, expected: Command
) -> None:
    """The host's actions and the headcount: JSON and shorthand give the same Command."""
    assert parse_frame(json.dumps(json_frame)) == expected
    assert parse_frame(shorthand) == expected


@pytest.mark.parametrize(
    ("frame", "mode", "avoid_recent"),
    [
        ("pick", "top", False),
        ("pick:fresh", "top", True),
        ("PICK:Fresh", "top", True),
        ("pick:weighted:fresh", "weighted", True),
        ("pick:fresh:weighted", "weighted", True),
        ("pick:top:fresh", "top", True),
        ('{"action":"pick","avoid_recent":true}', "top", True),
        ('{"action":"pick","mode":"weighted","avoid_recent":true}', "weighted", True),
        ('{"action":"pick","avoid_recent":false}', "top", False),
    ],
)
def test_pick_avoid_recent_forms(frame: str, mode: str, avoid_recent: bool) -> None:
    """`pick:fresh` (with either mode) is the shorthand of "avoid_recent": true."""
    command = parse_frame(frame)
    assert command.action == "pick"
    assert command.arguments["mode"] == mode
    assert command.arguments.get("avoid_recent", False) is avoid_recent


@pytest.mark.parametrize(
    "frame",
    [
        '{"action": "kick"}',
        '{"action": "kick", "participant": "7"}',
        '{"action": "kick", "participant": true}',
        '{"action": "kick", "participant": 0}',
        '{"action": "host", "participant": 1.5}',
        '{"action": "host", "participant": 9223372036854775808}',
        '{"action": "going"}',
        '{"action": "going", "going": 1}',
        "kick:",
        "kick:abc",
        "host:-3",
        "kick:\u0661",  # an Arabic-Indic digit is a digit to Python, not an id
        "going:yes",
    ],
)
def test_bad_host_and_headcount_commands(frame: str) -> None:
    """Ids are positive JSON integers (digits in the shorthand); going is a JSON boolean."""
    with pytest.raises(ClientError) as caught:
        parse_frame(frame)
    assert caught.value.code == "bad_message"


@pytest.mark.parametrize(
    "frame",
    [
        "pick:fresh:fresh",
        "pick:top:weighted",
        "pick:stale",
        "pick:fresh:",
        '{"action":"pick","avoid_recent":1}',
        '{"action":"pick","avoid_recent":"yes"}',
    ],
)
def test_bad_pick_avoid_recent_forms(frame: str) -> None:
    """A repeated or unknown pick word, or a non-boolean flag, is bad_message."""
    with pytest.raises(ClientError) as caught:
        parse_frame(frame)
    assert caught.value.code == "bad_message"
