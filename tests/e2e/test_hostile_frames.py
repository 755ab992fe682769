"""Raw hostile frames against a running daphne: what the network can really deliver.

Frames the consumer can read get their documented error and the connection stays open;
frames daphne cannot read (invalid UTF-8, over 1 MiB) end that connection with a proper
close, and the server goes on serving everyone else. The server log shows no traceback.
"""

from __future__ import annotations

import asyncio
import json
import unicodedata
from collections.abc import Callable

import pytest

from tests.support.client import RoomClient, create_room, item_names, next_answer, room_state
from tests.support.processes import DaphneServer

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(daphne_factory: Callable[..., DaphneServer]) -> DaphneServer:
    return daphne_factory()


@pytest.fixture
async def room_and_client(server: DaphneServer):
    """A room with one item and a connected client."""
    room = create_room(server.http_url)
    client = await RoomClient(room["ws_url"]).connect()
    await client.send("add:pizza")
    await client.wait_state(lambda s: item_names(s) == ["pizza"])
    yield room, client
    await client.close()
    assert "Traceback" not in server.log(), server.log()


# daphne's autobahn fails a connection it cannot read by dropping it (failByDrop), so the
# client sees 1006 rather than the 1007/1009 close frame; either way only that one ends.
UNREADABLE_CLOSE = {1006}


async def gone(server: DaphneServer, room: dict, client: RoomClient) -> None:
    """Wait until the server has recorded that `client` left the room."""
    async with asyncio.timeout(10):
        while client.you in room_state(server.http_url, room["id"])["participants"]:
            await asyncio.sleep(0.05)


async def expect_error(client: RoomClient, frame: str | bytes, code: str, server, room) -> None:
    """The frame gets `code`, the room's state stays as it was, the connection stays open."""
    before = room_state(server.http_url, room["id"])
    seen = len(client.events)
    await client.ws.send(frame)
    event = await next_answer(client, seen)
    assert event["type"] == "error" and event["code"] == code, (frame[:60], event)
    assert room_state(server.http_url, room["id"]) == before
    assert client.close_code is None


async def expect_added(client: RoomClient, frame: str, name: str) -> None:
    await client.ws.send(frame)
    state = await client.wait_state(lambda s: name in item_names(s))
    assert state["items"][-1]["name"] == name


async def test_binary_frame_is_bad_message(server, room_and_client) -> None:
    """A binary frame, even one holding a valid command, is bad_message."""
    room, client = room_and_client
    await expect_error(client, b"add:sushi", "bad_message", server, room)
    await expect_error(client, bytes(range(256)), "bad_message", server, room)
    await expect_added(client, "add:sushi", "sushi")


async def test_oversized_frames(server, room_and_client) -> None:
    """Over 2 KiB: message_too_large, still connected; over 1 MiB: daphne closes with 1009."""
    room, client = room_and_client
    await expect_error(client, "add:" + "x" * 2100, "message_too_large", server, room)
    await expect_error(client, "add:" + "ü" * 1100, "message_too_large", server, room)
    await expect_error(client, "[" * 10_000 + "]" * 10_000, "message_too_large", server, room)
    await expect_error(client, "[" * 1_000 + "]" * 1_000, "bad_message", server, room)
    await expect_added(client, "add:" + "y" * 60, "y" * 60)
    before = room_state(server.http_url, room["id"])
    await client.ws.send("add:" + "z" * (2**20 + 1))
    assert await client.wait_closed() in UNREADABLE_CLOSE | {1009}
    # The server lives on, saw the connection go, and nothing else changed.
    await gone(server, room, client)
    assert item_names(room_state(server.http_url, room["id"])) == item_names(before)
    other = await RoomClient(room["ws_url"]).connect()
    await other.close()


async def test_invalid_utf8_text_frame_is_closed_cleanly(server, room_and_client) -> None:
    """A text frame that is not UTF-8 ends that connection with 1007; the room is untouched."""
    room, client = room_and_client
    before = room_state(server.http_url, room["id"])
    await client.ws.send(b"add:\xff\xfe\xc3\x28", text=True)
    assert await client.wait_closed() in UNREADABLE_CLOSE | {1007}
    await gone(server, room, client)
    assert item_names(room_state(server.http_url, room["id"])) == item_names(before)
    again = await RoomClient(room["ws_url"]).connect()
    await again.send("add:after")
    await again.wait_state(lambda s: item_names(s) == ["pizza", "after"])
    await again.close()


async def test_invisible_and_control_text(server, room_and_client) -> None:
    """NUL, control, zero-width-only and direction-only text is empty; hidden parts are dropped."""
    room, client = room_and_client
    for frame in (
        "add:\x00",
        "add:\x01\x02\x1b\x7f",
        "add:\u200b\u200c\u200d\u2060\ufeff",
        "add:\u202e\u202b\u200f",
        '{"action":"add","item":"\\u0000\\u0008"}',
    ):
        await expect_error(client, frame, "empty_item", server, room)
    await expect_error(client, "name:\u200b", "invalid_name", server, room)
    await expect_error(client, "add:\u200bPIZZA\u0000", "duplicate_item", server, room)
    # NUL inside a name is not stored (PostgreSQL could not store it anyway).
    await client.ws.send("add:ta\x00cos")
    state = await client.wait_state(lambda s: len(s["items"]) == 2)
    stored = state["items"][-1]["name"]
    assert not any(unicodedata.category(ch) == "Cc" for ch in stored)
    assert stored.replace(" ", "") == "tacos"


async def test_rtl_emoji_and_combining_at_the_limit(server, room_and_client) -> None:
    """RTL text is kept as written; 60 characters of emoji or combined letters fit, 61 do not."""
    room, client = room_and_client
    await expect_added(client, "add:שווארמה", "שווארמה")
    await expect_added(client, "add:\u202eazzip", "azzip")  # the override is an invisible edge
    await expect_added(client, "add:" + "🍕" * 60, "🍕" * 60)
    await expect_error(client, "add:" + "🍜" * 61, "item_too_long", server, room)
    await expect_added(client, "add:" + "e\u0301" * 60, "é" * 60)  # 120 code points, 60 after NFC
    await expect_error(client, "add:" + "a\u0301" * 61, "item_too_long", server, room)
    await expect_error(client, "add:" + "é" * 60, "duplicate_item", server, room)
    family = "👨\u200d👩\u200d👧"
    await expect_added(client, "add:" + family * 12, family * 12)
    await expect_error(client, "add:" + family * 13, "item_too_long", server, room)


async def test_burst_of_200_is_answered_and_rate_limited(server, room_and_client) -> None:
    """200 frames at once: 20 per 10 s applied, the rest rate_limited, all answered, still open."""
    room, client = room_and_client
    start_version = room_state(server.http_url, room["id"])["version"]
    seen = len(client.events)
    await asyncio.gather(*(client.ws.send(f"add:burst {n}") for n in range(200)))

    def answered() -> tuple[int, int]:
        version = room_state(server.http_url, room["id"])["version"] - start_version
        limited = sum(
            1 for e in client.events[seen:] if e["type"] == "error" and e["code"] == "rate_limited"
        )
        return version, limited

    async with asyncio.timeout(30):
        while sum(answered()) < 200:
            await asyncio.sleep(0.1)
    # The fixture's add:pizza was this connection's first action of the 10 s window.
    assert answered() == (19, 181)
    other_errors = [e for e in client.events[seen:] if e["type"] == "error"]
    assert {e["code"] for e in other_errors} == {"rate_limited"}
    final = room_state(server.http_url, room["id"])
    assert len(final["items"]) == 20
    await client.wait_state(lambda s: s["version"] == final["version"])
    assert client.close_code is None
    # Another connection in the same room is not slowed by the first one's limit.
    other = await RoomClient(room["ws_url"]).connect()
    await other.send(json.dumps({"action": "vote", "item": "pizza"}))
    await other.wait_state(lambda s: s["items"][0]["votes"] == 1)
    await other.close()


HOSTILE_NAMES = {
    "name=%00": "guest-1",
    "name=%ff%fe": "\ufffd\ufffd",  # undecodable bytes become U+FFFD, visible
    "name=" + "a" * 4000: "guest-1",
    "name=%E2%80%AE": "guest-1",  # a lone right-to-left override renders as nothing
    "name=%3Cb%3E": "<b>",
    "name&name": "guest-1",
}


async def test_hostile_names_in_the_query_string(server) -> None:
    """A bad ?name= never refuses the join: the guest name stands, markup is kept as text."""
    for query, expected in HOSTILE_NAMES.items():
        room = create_room(server.http_url)
        client = await RoomClient(f"{room['ws_url']}?{query}").connect()
        assert client.you["name"] == expected, query[:40]
        await client.send("add:soup")
        await client.wait_state(lambda s: item_names(s) == ["soup"])
        await client.close()
    assert "Traceback" not in server.log()
