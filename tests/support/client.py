"""A protocol client for end-to-end tests: HTTP for the API, `websockets` for rooms."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Callable

import websockets


def http_json(method: str, url: str, body: bytes | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, method=method, data=body)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def create_room(base_url: str) -> dict:
    status, body = http_json("POST", f"{base_url}/api/rooms/")
    assert status == 201, (status, body)
    return body


def room_state(base_url: str, room_id: str) -> dict:
    status, body = http_json("GET", f"{base_url}/api/rooms/{room_id}/")
    assert status == 200, (status, body)
    return body


class RoomClient:
    """One WebSocket participant; remembers every event and the newest state it saw."""

    def __init__(self, ws_url: str) -> None:
        self.ws_url = ws_url
        self.ws = None
        self.events: list[dict] = []
        self.state: dict | None = None
        self.you: dict | None = None
        self.versions: list[int] = []
        self.close_code: int | None = None
        self._new_event = asyncio.Event()
        self._reader: asyncio.Task | None = None

    async def connect(
        self,
        *,
        origin: str | None = None,
        cookie: str | None = None,
        welcome: bool = True,
        **connection: object,
    ) -> RoomClient:
        """Open the socket; `connection` goes to the event loop's create_connection (ssl, host,
        port, local_addr: through nginx, from a given loopback address)."""
        headers = {"Origin": origin} if origin else {}
        if cookie:
            headers["Cookie"] = cookie
        self.ws = await websockets.connect(
            self.ws_url,
            additional_headers=headers or None,
            open_timeout=10,
            max_size=2**21,
            **connection,
        )
        self._reader = asyncio.create_task(self._read())
        if welcome:
            await self.wait_for(lambda e: e["type"] == "state", timeout=10)
        return self

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                event = json.loads(frame)
                self.events.append(event)
                if event.get("type") == "welcome":
                    self.you = event["you"]
                if event.get("type") == "state":
                    self.versions.append(event["version"])
                    if self.state is None or event["version"] > self.state["version"]:
                        self.state = event
                self._new_event.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self._new_event.set()

    async def send(self, frame: str | dict) -> None:
        await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def wait_for(self, predicate: Callable[[dict], bool], *, timeout: float = 10.0) -> dict:
        """The first event (seen so far or arriving later) that satisfies `predicate`."""
        seen = 0
        async with asyncio.timeout(timeout):
            while True:
                for event in self.events[seen:]:
                    if predicate(event):
                        return event
                seen = len(self.events)
                if self.close_code is not None and self._reader.done():
                    raise ConnectionError(f"closed with {self.close_code} before the event came")
                self._new_event.clear()
                await self._new_event.wait()

    async def wait_state(self, predicate: Callable[[dict], bool], *, timeout: float = 10.0) -> dict:
        """Wait until the newest state satisfies `predicate`."""
        async with asyncio.timeout(timeout):
            while not (self.state is not None and predicate(self.state)):
                if self.close_code is not None and self._reader.done():
                    raise ConnectionError(f"closed with {self.close_code}")
                self._new_event.clear()
                await self._new_event.wait()
        return self.state

    async def wait_closed(self, timeout: float = 10.0) -> int | None:
        async with asyncio.timeout(timeout):
            await self._reader
        return self.close_code

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


async def next_answer(client: RoomClient, seen: int, timeout: float = 10.0) -> dict:
    """The first state or error after the first `seen` events (equal events are not skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            for event in client.events[seen:]:
                if event["type"] in {"error", "state"}:
                    return event
            if client.close_code is not None:
                raise ConnectionError(f"closed with {client.close_code}")
            await asyncio.sleep(0.02)


def item_names(state: dict) -> list[str]:
    return [item["name"] for item in state["items"]]


def state_frame(version: int, *names: str) -> str:
    """A `state` event as the server sends it, with these items and one participant (for the
    browser tests' scripted servers)."""
    items = [
        {"name": n, "added_by": "Mina", "votes": 0, "voters": [], "vetoed_by": []} for n in names
    ]
    return json.dumps(
        {
            "type": "state",
            "version": version,
            "room": {"id": "x", "expires_at": "2099-01-01T00:00:00+00:00", "decision": None},
            "items": items,
            "participants": [{"id": 1, "name": "Mina"}],
        }
    )
