"""The room against a running daphne, the way API and terminal clients use it."""

import asyncio

import pytest
import websockets

from tests.support.client import RoomClient, create_room, item_names, room_state

pytestmark = pytest.mark.e2e


async def join_all(ws_url: str, count: int) -> list[RoomClient]:
    return list(
        await asyncio.gather(*(RoomClient(f"{ws_url}?name=p{n}").connect() for n in range(count)))
    )


async def settle(clients: list[RoomClient], predicate) -> None:
    await asyncio.gather(*(client.wait_state(predicate) for client in clients))


async def close_all(clients: list[RoomClient]) -> None:
    await asyncio.gather(*(client.close() for client in clients))


async def test_concurrent_adds_lose_nothing(daphne_url: str) -> None:
    """Ten clients adding at the same moment: every item kept, the same state everywhere."""
    room = create_room(daphne_url)
    clients = await join_all(room["ws_url"], 10)
    await settle(clients, lambda s: len(s["participants"]) == 10)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.gather(*(c.send(f"add:dish {n}") for n, c in enumerate(clients)))
    await settle(clients, lambda s: len(s["items"]) == 10)
    converged = loop.time() - started
    api = room_state(daphne_url, room["id"])
    assert sorted(item_names(api)) == sorted(f"dish {n}" for n in range(10))
    for client in clients:
        assert client.state["version"] == api["version"]
        assert client.state["items"] == api["items"]
        assert client.versions == sorted(client.versions)
    print(f"10-client concurrent add burst converged in {converged * 1000:.0f} ms")
    await close_all(clients)


async def test_concurrent_duplicate_adds_make_one_item(daphne_url: str) -> None:
    """Ten clients adding the same dish in different spellings: one item, nine duplicates."""
    room = create_room(daphne_url)
    clients = await join_all(room["ws_url"], 10)
    await settle(clients, lambda s: len(s["participants"]) == 10)
    spellings = [
        "Pizza",
        "pizza",
        " PIZZA",
        "pizza ",
        "PiZzA",
        "pIzza",
        "PIZZA ",
        " pizza",
        "piZZa",
        "Pizza  ",
    ]
    await asyncio.gather(*(c.send(f"add:{s}") for c, s in zip(clients, spellings, strict=True)))
    await settle(clients, lambda s: len(s["items"]) == 1)
    duplicates = 0
    for client in clients:
        try:
            await client.wait_for(lambda e: e.get("code") == "duplicate_item", timeout=2)
            duplicates += 1
        except TimeoutError:
            pass
    assert duplicates == 9
    assert len(room_state(daphne_url, room["id"])["items"]) == 1
    await close_all(clients)


async def test_participant_cap_under_concurrent_joins(daphne_url: str) -> None:
    """Fourteen joining at once: exactly ten admitted, four refused with room_full / 4403."""
    room = create_room(daphne_url)
    clients = [RoomClient(f"{room['ws_url']}?name=p{n}") for n in range(14)]
    await asyncio.gather(*(c.connect(welcome=False) for c in clients))

    async def outcome(client: RoomClient) -> str:
        event = await client.wait_for(lambda e: e["type"] in {"welcome", "error"})
        if event["type"] == "error":
            assert await client.wait_closed() == 4403
            return event["code"]
        return "admitted"

    outcomes = await asyncio.gather(*(outcome(c) for c in clients))
    assert outcomes.count("admitted") == 10
    assert outcomes.count("room_full") == 4
    admitted = [c for c, o in zip(clients, outcomes, strict=True) if o == "admitted"]
    await settle(admitted, lambda s: len(s["participants"]) == 10)
    assert len(room_state(daphne_url, room["id"])["participants"]) == 10
    await close_all(clients)


async def test_room_expires_for_connected_clients(daphne_factory) -> None:
    """With a short ROOM_TTL_SECONDS an idle room tells its clients and closes 4410."""
    server = daphne_factory(ROOM_TTL_SECONDS=2)
    room = create_room(server.http_url)
    client = await RoomClient(room["ws_url"]).connect()
    event = await client.wait_for(lambda e: e["type"] == "error", timeout=6)
    assert event["code"] == "room_expired"
    assert await client.wait_closed() == 4410
    status_code = await asyncio.to_thread(_status, f"{server.http_url}/api/rooms/{room['id']}/")
    assert status_code == 410


def _status(url: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


async def test_foreign_origin_is_refused(daphne_url: str) -> None:
    """A browser page from another site cannot open the room's WebSocket; our own can."""
    room = create_room(daphne_url)
    with pytest.raises(websockets.InvalidStatus) as refused:
        await RoomClient(room["ws_url"]).connect(origin="http://evil.example")
    assert refused.value.response.status_code == 403
    own = await RoomClient(room["ws_url"]).connect(origin=daphne_url)
    assert own.you is not None
    await own.close()
