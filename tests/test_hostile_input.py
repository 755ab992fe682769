"""Hostile input, fast: property tests of the parser and rules, and frames through the consumer.

Every frame a client can send gets a state (accepted) or one documented error code; a
rejected frame changes nothing, and the connection keeps working.
"""

from __future__ import annotations

import json
import logging
import string
import unicodedata
from collections.abc import AsyncIterator

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connection as db_connection
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from lunchsite.asgi import application
from rooms import commands, protocol, services, text
from rooms.errors import CLOSE_CODES, ClientError
from rooms.models import Participant, Room


@pytest.fixture
async def close_db_thread() -> AsyncIterator[None]:
    """Close the database connection of sync_to_async's thread, so the test DB can be dropped."""
    yield
    # looked up inside the thread: each thread has its own connection
    await sync_to_async(lambda: db_connection.close())()


# The codes a rejected action may get while the connection stays open (the contract's list).
ACTION_ERRORS = {
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
    "invalid_tag",
    "not_host",  # blind, unblind (issue 29), from someone who is not the host
}

ACTIONS = ["add", "remove", "vote", "veto", "rename", "name", "pick", "extend"]
ACTIONS += ["tag", "avoid", "blind", "unblind"]  # issue 29

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
# Commands with every field of every type: some valid, most not.
json_commands = st.dictionaries(
    st.sampled_from(["action", "item", "name", "mode", "extra", "tags", "blind"]),
    json_values | st.sampled_from(ACTIONS) | st.sampled_from(["top", "weighted", "ADD", "Vote"]),
    max_size=4,
)
shorthand = st.builds(
    lambda word, sep, arg: f"{word}{sep}{arg}",
    st.sampled_from([*ACTIONS, "ADD", " Vote ", "dance", ""]),
    st.sampled_from([":", "", " :", "::"]),
    st.text(max_size=80),
)
frames = (
    st.text(max_size=200)
    | shorthand
    | json_commands.map(json.dumps)
    | json_values.map(json.dumps)
    | st.text(alphabet='{}[]":,', max_size=60)
)


# --- Parsing and text rules (no database) -------------------------------------------


@given(frames)
def test_any_frame_parses_to_a_command_or_bad_message(frame: str) -> None:
    """The parser never raises anything but ClientError(bad_message)."""
    try:
        command = protocol.parse_frame(frame)
    except ClientError as error:
        assert error.code == "bad_message"
    else:
        assert command.action in protocol.COMMANDS
        for name, value in command.arguments.items():
            if name == "tags":  # the service checks each (invalid_tag)
                assert isinstance(value, list) and all(isinstance(tag, str) for tag in value)
            elif name == "blind":
                assert isinstance(value, bool)
            else:
                assert value in {"top", "weighted"} if name == "mode" else isinstance(value, str)


@pytest.mark.parametrize("action", ["add", "remove", "vote", "veto"])
@given(value=json_values.filter(lambda v: not isinstance(v, str)))
def test_wrong_json_types_are_bad_message(action: str, value: object) -> None:
    """A number, object, list, null or bool where a string belongs is bad_message."""
    with pytest.raises(ClientError) as caught:
        protocol.parse_frame(json.dumps({"action": action, "item": value}))
    assert caught.value.code == "bad_message"


@pytest.mark.parametrize("depth", [1_000, 10_000, 100_000])
def test_deep_nesting_is_bad_message_not_a_crash(depth: int) -> None:
    """JSON nested past the interpreter's recursion limit is bad_message, not RecursionError."""
    for frame in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
        with pytest.raises(ClientError) as caught:
            protocol.parse_frame(frame)
        assert caught.value.code == "bad_message"


@given(st.lists(st.text(max_size=16), max_size=7))
def test_tags_are_clean_or_refused(raw: list[str]) -> None:
    """Accepted tags are at most 3, each 1-12 visible characters, cleaned, one per key."""
    try:
        tags = text.tag_names(raw, at_most=text.TAGS_PER_ITEM)
    except ClientError as error:
        assert error.code == "invalid_tag"
        return
    assert len(tags) <= 3
    assert len({text.item_key(tag) for tag in tags}) == len(tags)
    for tag in tags:
        assert 1 <= len(tag) <= 12 and tag == text.clean(tag) and text.has_visible_text(tag)


@given(st.text(max_size=120))
def test_item_names_are_clean_or_refused(raw: str) -> None:
    """An accepted item is 1-60 visible characters without control characters or edge spaces."""
    try:
        name = text.item_name(raw)
    except ClientError as error:
        assert error.code in {"empty_item", "item_too_long"}
        if error.code == "empty_item":
            assert not text.has_visible_text(text.clean(raw))
        return
    assert 1 <= len(name) <= 60
    assert name == name.strip()
    assert not any(unicodedata.category(ch) in {"Cc", "Cs", "Co", "Cn"} for ch in name)
    assert text.has_visible_text(name)
    assert unicodedata.is_normalized("NFC", name)
    assert text.item_key(name) == text.item_key(raw)


@given(st.text(max_size=40))
def test_nicknames_are_clean_or_invalid_name(raw: str) -> None:
    """A nickname is 1-24 visible characters or invalid_name."""
    try:
        name = text.participant_name(raw)
    except ClientError as error:
        assert error.code == "invalid_name"
        return
    assert 1 <= len(name) <= 24 and text.has_visible_text(name)


@given(
    st.text(alphabet=string.ascii_letters + " ", min_size=1, max_size=20).filter(str.strip),
    st.lists(st.sampled_from([" ", "  ", "\t", "\u00a0", "\u3000", "\u200b"]), max_size=3),
)
def test_case_and_spacing_variants_share_a_key(name: str, padding: list[str]) -> None:
    """Case, surrounding or doubled spaces and zero-width characters do not make a new item."""
    variant = "".join(padding) + name.upper().replace(" ", "  ") + "".join(padding)
    assert text.item_key(variant) == text.item_key(name)


# --- The rules on the database ----------------------------------------------------------


@pytest.mark.django_db
@hypothesis_settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(frame=frames)
def test_a_rejected_command_changes_nothing(frame: str) -> None:
    """command_run accepts (version + 1) or refuses with a documented code and no change."""
    room = Room.objects.first() or services.room_create()
    participant = room.participants.first() or Participant.objects.create(room=room, name="p")
    if not room.items.exists():
        services.item_add(room_id=room.pk, participant_id=participant.pk, name="pizza")
    room.refresh_from_db()
    before = (room.version, list(room.items.values_list("name", flat=True)), room.decided_at)
    names = list(Participant.objects.values_list("name", flat=True))
    try:
        command = protocol.parse_frame(frame)
        commands.command_run(room_id=room.pk, participant_id=participant.pk, command=command)
    except ClientError as error:
        assert error.code in ACTION_ERRORS
        room.refresh_from_db()
        after = (room.version, list(room.items.values_list("name", flat=True)), room.decided_at)
        assert after == before
        assert list(Participant.objects.values_list("name", flat=True)) == names
    else:
        room.refresh_from_db()
        assert room.version == before[0] + 1


# --- Frames through the consumer --------------------------------------------------------


async def joined(room_id: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, f"/ws/rooms/{room_id}/?name=tester")
    connected, _ = await communicator.connect()
    assert connected
    assert json.loads(await communicator.receive_from(3))["type"] == "welcome"
    assert json.loads(await communicator.receive_from(3))["type"] == "state"
    return communicator


async def send_raw(communicator: WebsocketCommunicator, frame: str | bytes) -> None:
    """Send any frame, the empty one included (send_to refuses an empty string)."""
    key = "bytes" if isinstance(frame, bytes) else "text"
    await communicator.send_input({"type": "websocket.receive", key: frame})


async def answer(communicator: WebsocketCommunicator) -> dict:
    """The next state or error (a `picked` comes before its state)."""
    while True:
        event = json.loads(await communicator.receive_from(3))
        if event["type"] in {"state", "error"}:
            return event


async def room_snapshot(room_id: str) -> tuple:
    def read() -> tuple:
        room = Room.objects.get(pk=room_id)
        items = list(room.items.values_list("name", "key"))
        return room.version, items, room.decided_at, list(room.participants.values("name"))

    return await sync_to_async(read)()


# (frame, the code it must get); every one leaves the room unchanged.
REJECTED: list[tuple[str | bytes, str]] = [
    ("", "bad_message"),
    ("   ", "bad_message"),
    ("hello", "bad_message"),
    ("dance:now", "bad_message"),
    ("{", "bad_message"),
    ('{"action":', "bad_message"),
    ("[]", "bad_message"),
    ('["add","x"]', "bad_message"),
    ("null", "bad_message"),
    ("5", "bad_message"),
    ('"add:x"', "bad_message"),
    ("{}", "bad_message"),
    ('{"action":5}', "bad_message"),
    ('{"action":["add"]}', "bad_message"),
    ('{"action":"explode"}', "bad_message"),
    ('{"action":"add"}', "bad_message"),
    ('{"action":"add","item":5}', "bad_message"),
    ('{"action":"add","item":null}', "bad_message"),
    ('{"action":"add","item":true}', "bad_message"),
    ('{"action":"add","item":{"name":"x"}}', "bad_message"),
    ('{"action":"add","item":["x"]}', "bad_message"),
    ('{"action":"rename","name":42}', "bad_message"),
    ('{"action":"pick","mode":"best"}', "bad_message"),
    ("pick:best", "bad_message"),
    ("[" * 1000 + "]" * 1000, "bad_message"),
    ("[" * 10_000 + "]" * 10_000, "message_too_large"),
    ("add:" + "x" * 3000, "message_too_large"),
    ("add:" + "가" * 700, "message_too_large"),  # 2,104 bytes in UTF-8, 704 characters
    (b"add:pizza", "bad_message"),
    (b"\x00\xff" * 10, "bad_message"),
    ("add:", "empty_item"),
    ("add:   ", "empty_item"),
    ("add:\x00\x01\x07\x1b\x7f", "empty_item"),
    ("add:\u200b\u200c\u200d\u2060\ufeff", "empty_item"),
    ("add:\u202e\u202d\u200f\u200e", "empty_item"),
    ("add:\u3164\u115f\u2800", "empty_item"),
    ('{"action":"add","item":"\\u0000"}', "empty_item"),
    ("add:" + "🍕" * 61, "item_too_long"),
    ("add:" + "e\u0301" * 61, "item_too_long"),
    ("add:" + "👨\u200d👩\u200d👧" * 13, "item_too_long"),
    ("add:PIZZA", "duplicate_item"),
    ("add:\u200b pizza\u00a0", "duplicate_item"),
    ("add:pizza\u0000", "duplicate_item"),
    ("vote:sushi", "unknown_item"),
    ("remove:\u200b", "unknown_item"),
    ("name:", "invalid_name"),
    ("name:\u200b\u200b", "invalid_name"),
    ("name:" + "x" * 25, "invalid_name"),
    ("veto:pizza\u202e", None),  # accepted: the RTL override is not part of the key
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_db_thread")
async def test_rejected_frames_get_their_code_and_change_nothing(settings, caplog) -> None:
    """Each hostile frame gets its documented error, the room is untouched, the socket lives."""
    settings.ROOM_ACTIONS_PER_10S = 0
    room = await sync_to_async(services.room_create)()
    communicator = await joined(room.pk)
    await communicator.send_to(text_data="add:pizza")
    assert (await answer(communicator))["type"] == "state"
    caplog.set_level(logging.WARNING)
    for frame, code in REJECTED:
        before = await room_snapshot(room.pk)
        await send_raw(communicator, frame)
        event = await answer(communicator)
        if code is None:
            assert event["type"] == "state", (frame, event)
            continue
        assert event == {"type": "error", "code": code, "message": event["message"]}, frame[:80]
        assert "Traceback" not in event["message"] and "Error" not in event["message"]
        assert await room_snapshot(room.pk) == before, frame[:80]
    # Still connected and working.
    await communicator.send_to(text_data="add:sushi")
    state = await answer(communicator)
    assert [item["name"] for item in state["items"]] == ["pizza", "sushi"]
    assert not communicator.future.done()
    await communicator.disconnect()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


ACCEPTED_VERBATIM = [
    "🍕" * 60,  # 60 emoji: exactly at the limit
    "é" * 60,  # composed
    "👨\u200d👩\u200d👧" * 12,  # 60 code points of ZWJ families
    "\u1100\u1161" * 31,  # 62 jamo, 31 syllables after NFC: the limit counts after NFC
    "שווארמה בפיתה",  # right-to-left text
    "مطعم الشاورما",
    "<script>alert(1)</script>",
    "Robert'); DROP TABLE rooms_item;--",
    "{{ 7*7 }} ${7*7} %s %n",
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_db_thread")
async def test_boundary_and_unusual_items_are_kept_as_written(settings) -> None:
    """Emoji, combining sequences at 60, RTL and markup are stored and returned as data."""
    settings.ROOM_ACTIONS_PER_10S = 0
    room = await sync_to_async(services.room_create)()
    communicator = await joined(room.pk)
    for raw in ACCEPTED_VERBATIM:
        await communicator.send_to(text_data=json.dumps({"action": "add", "item": raw}))
        event = await answer(communicator)
        assert event["type"] == "state", (raw, event)
        assert event["items"][-1]["name"] == unicodedata.normalize("NFC", raw)
    # composed and decomposed forms are one item
    await communicator.send_to(text_data="add:" + "e\u0301" * 60)
    assert (await answer(communicator))["code"] == "duplicate_item"
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_db_thread")
async def test_actions_past_the_limit_are_rate_limited(settings) -> None:
    """Past ROOM_ACTIONS_PER_10S a connection gets rate_limited and stays open, nothing applied."""
    settings.ROOM_ACTIONS_PER_10S = 3
    room = await sync_to_async(services.room_create)()
    communicator = await joined(room.pk)
    for n in range(3):
        await communicator.send_to(text_data=f"add:dish {n}")
        assert (await answer(communicator))["type"] == "state"
    before = await room_snapshot(room.pk)
    for _ in range(3):
        await communicator.send_to(text_data="add:one too many")
        assert (await answer(communicator))["code"] == "rate_limited"
    assert await room_snapshot(room.pk) == before
    assert not communicator.future.done()
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_db_thread")
async def test_oversized_and_binary_frames_count_toward_the_limit(settings) -> None:
    """A flood of frames the server refuses anyway is rate-limited like any other."""
    settings.ROOM_ACTIONS_PER_10S = 4
    room = await sync_to_async(services.room_create)()
    communicator = await joined(room.pk)
    codes = []
    for frame in ["x" * 5000, b"\x00" * 5000, "y" * 5000, b"add:z", "z" * 5000, b"\x01"]:
        await send_raw(communicator, frame)
        codes.append((await answer(communicator))["code"])
    assert codes == [
        "message_too_large",
        "bad_message",
        "message_too_large",
        "bad_message",
        "rate_limited",
        "rate_limited",
    ]
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_db_thread")
async def test_deep_nesting_within_the_frame_limit_is_bad_message(settings) -> None:
    """With a frame limit raised to 1 MiB, 10,000-deep JSON is still only bad_message."""
    settings.ROOM_MAX_FRAME_BYTES = 2**20
    room = await sync_to_async(services.room_create)()
    communicator = await joined(room.pk)
    for frame in ("[" * 10_000 + "]" * 10_000, '{"a":' * 10_000 + "0" + "}" * 10_000):
        await communicator.send_to(text_data=frame)
        assert (await answer(communicator))["code"] == "bad_message"
    await communicator.send_to(text_data="extend")
    assert (await answer(communicator))["type"] == "state"
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_db_thread")
@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=st.lists(frames, min_size=1, max_size=5))
async def test_any_frames_through_the_consumer(settings, batch: list[str]) -> None:
    """Arbitrary frames: each answered by a state or a documented error; the socket stays up."""
    settings.ROOM_ACTIONS_PER_10S = 0
    room = await sync_to_async(services.room_create)()
    communicator = await joined(room.pk)
    try:
        for frame in batch:
            before = await room_snapshot(room.pk)
            await send_raw(communicator, frame)
            event = await answer(communicator)
            if event["type"] == "error":
                assert event["code"] in ACTION_ERRORS and event["code"] not in CLOSE_CODES
                assert await room_snapshot(room.pk) == before
            else:
                assert event["version"] == before[0] + 1
        await communicator.send_to(text_data="extend")
        assert (await answer(communicator))["type"] == "state"
        assert not communicator.future.done()
    finally:
        await communicator.disconnect()
