"""The drain's pieces in-process (lunchsite/drain.py): its batches, what it counts, and that a
draining process takes no new WebSocket. The drain on a real daphne: tests/e2e/test_drain.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from channels.testing import WebsocketCommunicator

from lunchsite import drain


@pytest.fixture
def draining() -> Iterator[None]:
    drain.served.draining_since = 1.0
    yield
    drain.served.draining_since = None


def test_batches_spread_every_socket_over_the_window_once() -> None:
    """Every socket is in one batch; the batches are in order, within the window, spread."""
    sockets = [object() for _ in range(100)]
    batches = drain._batches(sockets, 2.0)
    assert sorted(map(id, (s for _, batch in batches for s in batch))) == sorted(map(id, sockets))
    moments = [at for at, _ in batches]
    assert moments == sorted(moments)
    assert 0 <= moments[0] < 0.1 and 1.9 <= moments[-1] < 2.0
    assert len(batches) == 20
    assert drain._batches([], 2.0) == []
    assert len(drain._batches(sockets[:3], 2.0)) == 3


async def test_a_draining_process_refuses_a_new_websocket(draining: None) -> None:
    """Once the drain began the handshake is refused, before the room is ever looked at."""
    reached = []

    async def room(scope, receive, send) -> None:
        reached.append(scope)

    communicator = WebsocketCommunicator(drain.with_drain(room), "/ws/rooms/x/")
    connected, code = await communicator.connect()
    assert not connected and code == drain.RESTART_CLOSE_CODE
    assert reached == []
    await communicator.disconnect()


async def test_websockets_and_their_rooms_are_counted_while_served() -> None:
    """What the metrics read: connections and rooms while served, none once they end."""
    seen = []

    async def room(scope, receive, send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        seen.append((len(drain.served.websockets), drain.served.rooms()))
        await receive()

    first = WebsocketCommunicator(drain.with_drain(room), "/ws/rooms/a/")
    second = WebsocketCommunicator(drain.with_drain(room), "/ws/rooms/a/")
    assert (await first.connect())[0] and (await second.connect())[0]
    assert seen == [(1, 1), (2, 1)]
    await first.disconnect()
    await second.disconnect()
    assert drain.served.websockets == {}
