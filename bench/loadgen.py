"""The load generator: rooms of WebSocket clients speaking the public protocol, and what they saw.

One asyncio process holds every client. Each change it sends (add, remove, vote) waits for
the first `state` on every other client of the room that shows it; the time from the send to
that frame is one delivery's fan-out latency.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field

import websockets

# A change not seen by a client within this long counts as lost (an error).
CHANGE_TIMEOUT_S = 15.0
MIN_ITEMS, MAX_ITEMS = 4, 12
# A room's clients read each change within milliseconds of each other: a few dozen frames
# of decoding to share are plenty.
PARSED_FRAMES_PER_ROOM = 64


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (nearest rank) of values, or None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def summary_ms(values: list[float]) -> dict:
    """p50/p90/p99/max of seconds, in milliseconds."""
    out = {f"p{q}": percentile(values, q) for q in (50, 90, 99)}
    out["max"] = max(values) if values else None
    out["count"] = len(values)
    return {
        k: (round(v * 1000, 2) if k != "count" and v is not None else v) for k, v in out.items()
    }


@dataclass
class Change:
    """One action in flight: what it must look like in a state, and who has not seen it yet."""

    kind: str
    item: str
    actor: str
    expect_on: bool
    sent_at: float
    waiting: set[int]
    # A remove's votes, dropped from the room's book when it was sent: put back if refused.
    dropped_votes: set[tuple[str, str]] = field(default_factory=set)

    def shown_in(self, state: dict) -> bool:
        for entry in state["items"]:
            if entry["name"] == self.item:
                if self.kind == "add":
                    return True
                if self.kind == "remove":
                    return False
                return (self.actor in entry["voters"]) == self.expect_on
        return self.kind == "remove"


@dataclass
class Room:
    id: str
    ws_urls: list[str]
    clients: list[Client] = field(default_factory=list)
    pending: list[Change] = field(default_factory=list)
    items: set[str] = field(default_factory=set)  # items whose add every client has seen
    busy: set[str] = field(default_factory=set)  # items with a change in flight
    votes: set[tuple[str, str]] = field(default_factory=set)  # (client name, item) voted
    next_actor: int = 0
    parsed: dict[str, dict] = field(default_factory=dict)  # recent frames, decoded

    def decoded(self, frame: str) -> dict:
        """The frame as JSON, decoded once for the whole room.

        Every client of a room receives the same text for a change (the server encodes it
        once), so the first client to read it decodes it and the others share that event,
        which nobody modifies. Decoding and freeing ten copies of every state was a third
        of the generator's profile samples, on the cores the servers share with it.
        """
        event = self.parsed.get(frame)
        if event is None:
            if len(self.parsed) >= PARSED_FRAMES_PER_ROOM:
                self.parsed.clear()
            event = self.parsed[frame] = json.loads(frame)
        return event


class Client:
    """One participant: its connection, its newest state and what went wrong."""

    def __init__(self, run: LoadRun, room: Room, index: int) -> None:
        self.run, self.room, self.index = run, room, index
        self.name = f"c{index}"
        self.ws = None
        self.state: dict | None = None
        self.joined = asyncio.Event()
        self.join_seconds: float | None = None
        self.closed_by_us = False
        self.welcomed = False
        self.reader: asyncio.Task | None = None

    def _lists_me(self, state: dict) -> bool:
        """A joiner's first state comes after its welcome and lists it (issue 8)."""
        return self.welcomed and self.name in [p["name"] for p in state["participants"]]

    async def connect(self) -> None:
        url = f"{self.room.ws_urls[self.index % len(self.room.ws_urls)]}?name={self.name}"
        started = time.perf_counter()
        try:
            self.ws = await websockets.connect(
                url, open_timeout=30, max_size=2**21, ping_interval=None, compression=None
            )
        except Exception as exc:
            self.run.errors[f"connect:{type(exc).__name__}"] += 1
            return
        self.reader = asyncio.create_task(self._read())
        try:
            await asyncio.wait_for(self.joined.wait(), 30)
            self.join_seconds = time.perf_counter() - started
        except TimeoutError:
            self.run.errors["join_timeout"] += 1

    async def _read(self) -> None:
        run = self.run
        try:
            async for frame in self.ws:
                now = time.perf_counter()
                event = self.room.decoded(frame)
                kind = event.get("type")
                if kind == "welcome":
                    self.welcomed = True
                elif kind == "state":
                    run.states_received += 1
                    if self.state is None and not self._lists_me(event):
                        run.errors["first_state_without_self"] += 1
                    if self.state is None or event["version"] > self.state["version"]:
                        self.state = event
                        self.joined.set()
                        self._match(event, now)
                elif kind == "error":
                    run.errors[f"error:{event.get('code')}"] += 1
                    self._refused(event.get("code", ""), now)
        except websockets.ConnectionClosed:
            pass
        except Exception as exc:  # a bug of ours or a garbled frame: count it, do not hide it
            run.errors[f"client:{type(exc).__name__}"] += 1
        if not self.closed_by_us:
            run.disconnects += 1
            run.close_codes[str(self.ws.close_code)] += 1

    def _refused(self, code: str, now: float) -> None:
        """The server refused this client's oldest change in flight (`server_busy` while the
        database is down): it will never show, so the room's book forgets it was sent."""
        room = self.room
        change = next((c for c in room.pending if c.actor == self.name), None)
        if change is None:
            return
        room.pending.remove(change)
        room.busy.discard(change.item)
        self.run.refused.append((change.sent_at, now, code))
        if change.kind == "vote":
            key = (change.actor, change.item)
            (room.votes.discard if change.expect_on else room.votes.add)(key)
        elif change.kind == "remove":
            room.items.add(change.item)
            room.votes |= change.dropped_votes

    def _match(self, state: dict, now: float) -> None:
        room = self.room
        done = []
        for change in room.pending:
            if self.index in change.waiting and change.shown_in(state):
                change.waiting.discard(self.index)
                if change.actor != self.name:
                    self.run.latencies.append(now - change.sent_at)
                    self.run.timeline.append((change.sent_at, now - change.sent_at))
                if not change.waiting:
                    done.append(change)
        for change in done:
            self.run.done += 1
            room.pending.remove(change)
            room.busy.discard(change.item)
            if change.kind == "add":
                room.items.add(change.item)

    async def close(self) -> None:
        self.closed_by_us = True
        if self.ws is not None:
            await self.ws.close()


class LoadRun:
    """R rooms x C clients against one or more server processes."""

    def __init__(self, http_urls: list[str], *, rooms: int, clients: int, seed: int = 1) -> None:
        self.http_urls = http_urls
        self.n_rooms, self.n_clients = rooms, clients
        self.random = random.Random(seed)
        self.rooms: list[Room] = []
        self.errors: Counter[str] = Counter()
        self.close_codes: Counter[str] = Counter()
        self.disconnects = 0
        self.states_received = 0
        self.latencies: list[float] = []
        # (sent at, fan-out) of every delivery: how latency moved during a step (faults).
        self.timeline: list[tuple[float, float]] = []
        # (sent at, refused at, error code) of every change the server refused.
        self.refused: list[tuple[float, float, str]] = []
        self.sent = 0
        self.done = 0  # changes that reached every client of their room
        self.skipped = 0
        self._names = itertools.count()

    # --- Setup ---------------------------------------------------------------------

    async def create_rooms(self) -> None:
        """POST /api/rooms/ once per room, spread over the processes."""
        ws_bases = [u.replace("http://", "ws://", 1) for u in self.http_urls]
        sem = asyncio.Semaphore(8)

        async def create(i: int) -> Room:
            async with sem:
                body = await asyncio.to_thread(
                    _post_json, f"{self.http_urls[i % len(self.http_urls)]}/api/rooms/"
                )
            ws_urls = [f"{base}/ws/rooms/{body['id']}/" for base in ws_bases]
            return Room(body["id"], ws_urls[i % len(ws_urls) :] + ws_urls[: i % len(ws_urls)])

        self.rooms = await asyncio.gather(*(create(i) for i in range(self.n_rooms)))

    async def join_all(self, concurrency: int) -> dict:
        """Every client connects at once (at most `concurrency` handshakes in flight)."""
        sem = asyncio.Semaphore(concurrency)

        async def join(client: Client) -> None:
            async with sem:
                await client.connect()

        for room in self.rooms:
            room.clients = [Client(self, room, i) for i in range(self.n_clients)]
        started = time.perf_counter()
        await asyncio.gather(*(join(c) for c in self.clients()))
        all_joined = time.perf_counter() - started
        times = [c.join_seconds for c in self.clients() if c.join_seconds is not None]
        joined = len(times)
        return {
            "clients": self.n_rooms * self.n_clients,
            "joined": joined,
            "p50_ms": _ms(percentile(times, 50)),
            "p99_ms": _ms(percentile(times, 99)),
            "all_joined_s": round(all_joined, 2)
            if joined == self.n_rooms * self.n_clients
            else None,
        }

    def full_presence(self) -> int:
        """How many clients' newest state lists every client of their room."""
        return sum(
            1
            for room in self.rooms
            for client in room.clients
            if client.state is not None
            and {c.name for c in room.clients} <= {p["name"] for p in client.state["participants"]}
        )

    def clients(self) -> list[Client]:
        return [c for room in self.rooms for c in room.clients]

    # --- Actions -------------------------------------------------------------------

    async def actions(self, rate: float, duration: float) -> dict:
        """Send `rate` actions per second in total, round-robin over the rooms, for `duration`."""
        self.latencies = []
        self.timeline = []
        self.refused = []
        states_before = self.states_received
        errors_before = sum(self.errors.values())
        sent_before, done_before = self.sent, self.done
        rooms = itertools.cycle(self.rooms)
        started = time.perf_counter()
        total = int(rate * duration)
        for n in range(total):
            delay = started + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await self._act(next(rooms))
        elapsed_send = time.perf_counter() - started
        await self.drain(CHANGE_TIMEOUT_S)
        elapsed = max(duration, elapsed_send)
        deliveries = self.states_received - states_before
        return {
            "rate": rate,
            "duration_s": round(elapsed_send, 2),
            "actions": self.sent - sent_before,
            "done": self.done - done_before,
            "deliveries_per_s": round(deliveries / elapsed, 1),
            "fanout_ms": summary_ms(self.latencies),
            "errors": sum(self.errors.values()) - errors_before,
        }

    async def _act(self, room: Room) -> None:
        clients = [c for c in room.clients if c.state is not None and not c.reader.done()]
        if not clients:
            self.skipped += 1
            return
        actor = clients[room.next_actor % len(clients)]
        room.next_actor += 1
        free = sorted(room.items - room.busy)
        in_flight_adds = sum(1 for ch in room.pending if ch.kind == "add")
        size = len(room.items) + in_flight_adds
        roll = self.random.random()
        if size < MIN_ITEMS or (not free and size < MAX_ITEMS):
            kind = "add"
        elif not free:
            self.skipped += 1
            return
        elif size >= MAX_ITEMS:
            kind = "remove" if roll < 0.4 else "vote"
        else:
            kind = "add" if roll < 0.3 else "remove" if roll < 0.5 else "vote"
        if kind == "add":
            item = f"dish {next(self._names)}"
            frame = f"add:{item}"
            expect_on = True
        else:
            item = self.random.choice(free)
            frame = f"{kind}:{item}"
            expect_on = True
            if kind == "vote":
                key = (actor.name, item)
                expect_on = key not in room.votes
                (room.votes.add if expect_on else room.votes.discard)(key)
            else:
                room.items.discard(item)
                dropped = {v for v in room.votes if v[1] == item}
                room.votes -= dropped
        room.busy.add(item)
        waiting = {c.index for c in clients}
        change = Change(kind, item, actor.name, expect_on, time.perf_counter(), waiting)
        if kind == "remove":
            change.dropped_votes = dropped
        room.pending.append(change)
        self.sent += 1
        try:
            await actor.ws.send(frame)
        except websockets.ConnectionClosed:
            self.errors["send_on_closed"] += 1

    async def drain(self, timeout: float) -> None:
        """Wait for every change in flight to reach every client; count the rest as lost."""
        deadline = time.perf_counter() + timeout
        while any(room.pending for room in self.rooms) and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        for room in self.rooms:
            for change in room.pending:
                self.errors["change_not_delivered"] += len(change.waiting)
                room.busy.discard(change.item)
            room.pending.clear()

    # --- Checks and teardown -------------------------------------------------------

    async def consistency(self, *, with_api: bool) -> dict:
        """Every room's newest state equal on all its clients (and the API's, for the product)."""
        bad_rooms = []
        for room in self.rooms:
            states = [_comparable(c.state) for c in room.clients if c.state is not None]
            if with_api:
                states.append(
                    await asyncio.to_thread(_get_json, f"{self.http_urls[0]}/api/rooms/{room.id}/")
                )
            if any(s != states[0] for s in states[1:]):
                bad_rooms.append(room.id)
        return {"rooms": len(self.rooms), "inconsistent": len(bad_rooms), "examples": bad_rooms[:3]}

    async def close_all(self) -> None:
        clients = self.clients()
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        readers = [c.reader for c in clients if c.reader is not None]
        await asyncio.wait_for(asyncio.gather(*readers, return_exceptions=True), 30)


def _comparable(state: dict) -> dict:
    return {k: v for k, v in state.items() if k != "type"}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _post_json(url: str) -> dict:
    request = urllib.request.Request(url, method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())
