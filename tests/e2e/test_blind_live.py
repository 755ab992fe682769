"""Blind votes and can't eat against running daphne processes (issue 29), read as raw frames.

The promise of a blind room is about the bytes on the wire, not about what a page chooses to
show: every frame a connection receives before the pick is read as it came, and none may carry
a voter's id, a voter's name in `voters`, or a count.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import websockets

from tests.support.client import RoomClient, create_room, http_json

pytestmark = pytest.mark.e2e

# What would betray a vote in a frame: a count, a voter's id, a voter's name.
_BETRAYALS = [
    re.compile(rb'"votes":\d'),
    re.compile(rb'"voter_ids":\[\d'),
    re.compile(rb'"voters":\["'),
]


class RawClient:
    """A WebSocket participant that keeps every frame exactly as it arrived (bytes)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.frames: list[bytes] = []
        self._arrived = asyncio.Event()

    async def connect(self) -> RawClient:
        self.ws = await websockets.connect(self.url, open_timeout=10)
        self._reader = asyncio.create_task(self._read())
        self.you = (await self.event(lambda e: e["type"] == "welcome"))["you"]
        await self.event(lambda e: e["type"] == "state")
        return self

    async def _read(self) -> None:
        try:
            while True:
                self.frames.append(await self.ws.recv(decode=False))
                self._arrived.set()
        except websockets.ConnectionClosed:
            pass

    def events(self) -> list[dict]:
        return [json.loads(frame) for frame in self.frames]

    async def event(self, predicate, *, after: int = 0, timeout: float = 10) -> dict:
        """The first event from frame `after` on that satisfies `predicate`."""
        seen = after
        async with asyncio.timeout(timeout):
            while True:
                for frame in self.frames[seen:]:
                    event = json.loads(frame)
                    if predicate(event):
                        return event
                seen = len(self.frames)
                self._arrived.clear()
                await self._arrived.wait()

    async def send(self, frame: str) -> None:
        await self.ws.send(frame)

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.gather(self._reader, return_exceptions=True)


def betrayals(frames: list[bytes]) -> list[bytes]:
    return [frame for frame in frames if any(pattern.search(frame) for pattern in _BETRAYALS)]


async def test_a_blind_room_s_frames_carry_no_vote_before_the_pick_on_two_processes(
    daphne_factory, redis_server
) -> None:
    """Two daphne processes on one Redis. The voter has a tab on each; the host and a
    watcher look on. Until the pick no frame anyone receives carries a count, a voter id or
    a voter's name in `voters`; both of the voter's tabs are told its own votes (`mine`);
    the pick's state then shows every count and voter."""
    one = daphne_factory(redis_url=redis_server.url)
    two = daphne_factory(redis_url=redis_server.url)
    room = create_room(one.http_url)
    ws_two = room["ws_url"].replace(f":{one.port}/", f":{two.port}/")
    host = await RawClient(f"{room['ws_url']}?name=host&token={room['host_token']}").connect()
    await host.send("blind")
    await host.event(lambda e: e["type"] == "state" and e["room"]["blind"])
    await host.send("add:짬뽕 #해산물")
    await host.send("add:짜장면")
    await host.event(lambda e: e["type"] == "state" and len(e["items"]) == 2)
    voter = await RawClient(f"{room['ws_url']}?name=voter").connect()
    voter_tab = await RawClient(f"{ws_two}?token={voter.you['token']}").connect()
    watcher = await RawClient(f"{ws_two}?name=watcher").connect()
    everyone = [host, voter, voter_tab, watcher]
    await voter.send("vote:짬뽕")
    await voter.send("vote:짜장면")
    await host.send("vote:짬뽕")
    for tab in (voter, voter_tab):
        mine = await tab.event(lambda e: e == {"type": "mine", "votes": ["짬뽕", "짜장면"]})
        assert mine
    await host.event(lambda e: e == {"type": "mine", "votes": ["짬뽕"]})
    _, api = http_json("GET", f"{two.http_url}/api/rooms/{room['id']}/")
    for client in everyone:  # everyone has caught up with the last vote
        await client.event(lambda e, v=api["version"]: e["type"] == "state" and e["version"] >= v)
    before = {id(client): len(client.frames) for client in everyone}
    for client in everyone:
        assert betrayals(client.frames) == [], client.url
        states = [e for e in client.events() if e["type"] == "state"]
        assert states and all(e["room"]["blind"] for e in states[-3:])
        for state in states:
            for item in state["items"]:
                if state["room"]["blind"]:
                    assert (item["votes"], item["voters"], item["voter_ids"]) == (None, [], [])
    assert b'"type":"mine"' not in b"".join(watcher.frames)  # it never voted
    # The HTTP API hides them as well.
    assert all(item["votes"] is None and item["voter_ids"] == [] for item in api["items"])
    await host.send("pick")
    for client in everyone:
        picked = await client.event(lambda e: e["type"] == "picked", after=before[id(client)])
        assert picked["item"] == "짬뽕"
        decided = await client.event(
            lambda e: e["type"] == "state" and e["room"]["decision"], after=before[id(client)]
        )
        jjamppong = decided["items"][0]
        assert jjamppong["votes"] == 2
        assert sorted(jjamppong["voter_ids"]) == sorted([voter.you["id"], host.you["id"]])
        assert decided["items"][1]["voter_ids"] == [voter.you["id"]]
        assert betrayals(client.frames[before[id(client)] :])  # now the counts are there
    for client in everyone:
        await client.close()


async def test_websocat_tags_and_avoids_skip_what_someone_cannot_eat(daphne_url: str) -> None:
    """The terminal flow: `add:짬뽕 #해산물` and `avoid:해산물` typed into websocat; the pick
    then never lands on 짬뽕, and with only 짬뽕 left it is nothing_to_pick."""
    websocat = shutil.which("websocat", path=str(Path(sys.executable).parent)) or shutil.which(
        "websocat"
    )
    assert websocat, "websocat is installed by requirements-dev.txt"
    room = create_room(daphne_url)
    watcher = await RoomClient(room["ws_url"] + "?name=watcher").connect()
    terminal = subprocess.Popen(
        [websocat, "-t", room["ws_url"] + "?name=terminal"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        await watcher.wait_state(lambda s: len(s["participants"]) == 2)
        for line in ["add:짬뽕 #해산물 #매운", "add:짜장면 #면", "avoid:해산물", "vote:짬뽕"]:
            terminal.stdin.write(line + "\n")
            terminal.stdin.flush()
        state = await watcher.wait_state(
            lambda s: (
                len(s["items"]) == 2 and s["items"][0]["avoided_by"] and s["items"][0]["votes"]
            )
        )
        assert state["items"][0]["tags"] == ["해산물", "매운"]
        assert state["items"][0]["avoided_by"] == ["terminal"]
        assert state["items"][1]["tags"] == ["면"]
        await watcher.send("pick")
        decided = await watcher.wait_state(lambda s: s["room"]["decision"] is not None)
        assert decided["room"]["decision"]["item"] == "짜장면"  # not the most voted: avoided
        await watcher.send("remove:짜장면")
        await watcher.wait_state(lambda s: len(s["items"]) == 1)
        seen = len(watcher.events)
        await watcher.send("pick")
        error = await watcher.wait_for(lambda e: e["type"] == "error")
        assert error["code"] == "nothing_to_pick" and len(watcher.events) > seen
    finally:
        time.sleep(0.2)  # let websocat print what it received
        terminal.terminate()
        output = terminal.communicate(timeout=5)[0]
        await watcher.close()
    assert '"avoids":["해산물"]' in output
