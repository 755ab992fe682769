"""The per-process upkeep: expiry hang-ups and lost-broadcast repair, without a database."""

import asyncio
from dataclasses import dataclass, field

import pytest

from rooms import selectors
from rooms.errors import ErrorCode
from rooms.realtime import liveness


@dataclass(eq=False)
class FakeConnection:
    room_id: str
    channel_name: str = "c"
    participant_id: int | None = 1
    version: int = 0
    sent: list = field(default_factory=list)
    refused: list = field(default_factory=list)
    reading: bool = True

    async def send_state(self, state: dict) -> None:
        self.sent.append(state)
        self.version = state["version"]

    async def refuse(self, code: ErrorCode, message: str | None = None) -> None:
        self.refused.append(code)

    def backlogged(self) -> bool:
        return not self.reading


@pytest.fixture
def local(monkeypatch, settings) -> liveness.LocalRooms:
    settings.ROOM_HEARTBEAT_SECONDS = 3600  # heartbeats are not under test here
    monkeypatch.setattr(liveness, "GRACE_SECONDS", 0)
    rooms = liveness.LocalRooms()
    rooms._next_beat = float("inf")
    return rooms


def answer(monkeypatch, versions: dict, states: dict | None = None, during=None) -> None:
    async def call(service, **kwargs):
        if service is selectors.rooms_open_versions:
            if during:
                during()
            return {k: v for k, v in versions.items() if k in kwargs["room_ids"]}
        if service is selectors.rooms_host_overdue:
            return []  # host hand-over is tested in tests/test_host.py
        return (states or {}).get(kwargs["room_id"])

    monkeypatch.setattr(liveness.database, "call", call)


async def test_dead_rooms_are_hung_up(local, monkeypatch) -> None:
    """Connections of a room the database no longer calls open get room_expired."""
    alive, dead = FakeConnection("alive"), FakeConnection("dead")
    local.rooms["alive"].add(alive)
    local.rooms["dead"].add(dead)
    answer(monkeypatch, {"alive": 0})
    await local.tick()
    assert (alive.refused, dead.refused) == ([], ["room_expired"])
    assert "dead" not in local.rooms


async def test_a_room_joined_during_the_read_is_not_taken_for_dead(local, monkeypatch) -> None:
    """A connection added while the versions are read is left alone until the next tick."""
    first, late = FakeConnection("a"), FakeConnection("b")
    local.rooms["a"].add(first)
    answer(monkeypatch, {"a": 0, "b": 0}, during=lambda: local.rooms["b"].add(late))
    await local.tick()
    assert late.refused == []


async def test_lagging_connections_get_the_state_after_the_grace(local, monkeypatch) -> None:
    """A connection behind the database's version is sent the current state; others not."""
    behind, current = FakeConnection("r", version=3), FakeConnection("r", version=5)
    local.rooms["r"].update({behind, current})
    answer(monkeypatch, {"r": 5}, states={"r": {"version": 5}})
    await local.tick()  # first sight of the lag starts the grace period
    await local.tick()
    assert behind.sent == [{"version": 5}]
    assert current.sent == []


async def test_a_busy_room_keeping_up_is_not_resent_states(local, monkeypatch) -> None:
    """One change always in flight, each arriving within the grace: no resync, no state read."""
    monkeypatch.setattr(liveness, "GRACE_SECONDS", 0.01)
    keeping_up = FakeConnection("r", version=4)
    local.rooms["r"].add(keeping_up)
    for version in (5, 6, 7, 8):
        answer(monkeypatch, {"r": version}, states={"r": {"version": version}})
        await local.tick()
        keeping_up.version = version  # its broadcast arrives before the next tick
        await asyncio.sleep(0.02)  # the grace passes between ticks
    assert keeping_up.sent == []


async def test_a_connection_that_is_not_reading_waits_for_the_newest_state(
    local, monkeypatch
) -> None:
    """A backlogged connection is not resent states; once it drains it gets the newest one."""
    stuck = FakeConnection("r", version=-1, reading=False)
    local.rooms["r"].add(stuck)
    answer(monkeypatch, {"r": 7}, states={"r": {"version": 7}})
    for _ in range(3):
        await local.tick()
    assert stuck.sent == []
    stuck.reading = True
    await local.tick()
    await local.tick()
    assert stuck.sent == [{"version": 7}]


async def test_the_heartbeat_skips_connections_whose_task_ended(local, monkeypatch) -> None:
    """A connection whose serving task ended (daphne killed it) is not kept fresh."""
    import asyncio

    refreshed: list[list] = []

    async def call(service, **kwargs):
        if service is liveness.services.presence_refresh:
            refreshed.append(sorted(c for _, c, _ in kwargs["connections"]))
            return None
        return {"r": 0}

    monkeypatch.setattr(liveness.database, "call", call)
    served, killed = FakeConnection("r", "served"), FakeConnection("r", "killed")

    async def serve(connection: FakeConnection, forever: bool) -> None:
        local.add(connection)
        if forever:
            await asyncio.Event().wait()

    alive = asyncio.create_task(serve(served, forever=True))
    await asyncio.create_task(serve(killed, forever=False))  # ends without remove()
    local._next_beat = 0
    await local.tick()
    assert refreshed == [["served"]]
    assert killed not in local.rooms["r"]
    alive.cancel()
    local._task.cancel()


async def test_absent_hosts_are_handed_on_a_few_times_per_grace(
    local, monkeypatch, settings
) -> None:
    """The tick asks which rooms' hosts are overdue and passes their role on, not every tick."""
    from rooms import services

    settings.ROOM_HOST_GRACE_SECONDS = 60
    settings.ROOM_RESYNC_SECONDS = 1
    local.rooms["r"].add(FakeConnection("r"))
    calls: list = []

    async def call(service, **kwargs):
        calls.append((service, kwargs))
        if service is selectors.rooms_open_versions:
            return {"r": 0}
        if service is selectors.rooms_host_overdue:
            return ["r"]
        return None

    monkeypatch.setattr(liveness.database, "call", call)
    await local.tick()
    await local.tick()  # within the same twelfth of the grace: no second check
    assert [c for c in calls if c[0] is selectors.rooms_host_overdue] == [
        (selectors.rooms_host_overdue, {"room_ids": ["r"]})
    ]
    assert [c for c in calls if c[0] is services.host_pass_on] == [
        (services.host_pass_on, {"room_id": "r"})
    ]
