"""The consumer through Channels' WebsocketCommunicator, on the in-memory layer and on Redis."""

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from lunchsite.asgi import application
from rooms import services
from rooms.models import Room

pytestmark = pytest.mark.django_db(transaction=True)


async def new_room() -> Room:
    return await sync_to_async(services.room_create)()


async def connect(room_id: str, query: str = "", headers=None) -> WebsocketCommunicator:
    path = f"/ws/rooms/{room_id}/" + (f"?{query}" if query else "")
    communicator = WebsocketCommunicator(application, path, headers=headers or [])
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def receive(communicator: WebsocketCommunicator, timeout: float = 3) -> dict:
    return json.loads(await communicator.receive_from(timeout))


async def until_state(communicator: WebsocketCommunicator, predicate, timeout: float = 3) -> dict:
    while True:
        event = await receive(communicator, timeout)
        if event["type"] == "state" and predicate(event):
            return event


async def joined(room_id: str, name: str) -> WebsocketCommunicator:
    communicator = await connect(room_id, f"name={name}")
    assert (await receive(communicator))["type"] == "welcome"
    assert (await receive(communicator))["type"] == "state"
    return communicator


async def test_welcome_then_state(layer: str) -> None:
    """The joiner gets welcome with its identity, then the room's state."""
    room = await new_room()
    communicator = await connect(room.pk, "name=minji")
    welcome = await receive(communicator)
    state = await receive(communicator)
    assert welcome["type"] == "welcome" and welcome["you"]["name"] == "minji"
    assert state["type"] == "state" and state["room"]["id"] == room.pk
    assert state["participants"] == [
        {"id": welcome["you"]["id"], "name": "minji", "host": True, "done": False, "avoids": []}
    ]
    await communicator.disconnect()


async def test_changes_reach_everyone(layer: str) -> None:
    """A shorthand add from one client is in the next state of both; the sender included."""
    room = await new_room()
    alice = await joined(room.pk, "alice")
    bob = await joined(room.pk, "bob")
    await until_state(alice, lambda s: len(s["participants"]) == 2)
    await alice.send_to(text_data="add:Bibimbap")
    for communicator in (alice, bob):
        state = await until_state(communicator, lambda s: s["items"])
        assert state["items"][0]["name"] == "Bibimbap"
        assert state["items"][0]["added_by"] == "alice"
    await bob.send_to(text_data=json.dumps({"action": "vote", "item": "bibimbap"}))
    state = await until_state(alice, lambda s: s["items"][0]["votes"] == 1)
    assert state["items"][0]["voters"] == ["bob"]
    await alice.disconnect()
    await bob.disconnect()


async def test_presence_is_live(layer: str) -> None:
    """Joins and leaves send a new state to the others."""
    room = await new_room()
    alice = await joined(room.pk, "alice")
    bob = await joined(room.pk, "bob")
    await until_state(alice, lambda s: [p["name"] for p in s["participants"]] == ["alice", "bob"])
    await bob.disconnect()
    await until_state(alice, lambda s: [p["name"] for p in s["participants"]] == ["alice"])
    await alice.disconnect()


async def test_errors_go_to_the_sender_only_and_keep_the_connection(layer: str) -> None:
    """A refused action answers the sender with its code; the connection stays usable."""
    room = await new_room()
    alice = await joined(room.pk, "alice")
    bob = await joined(room.pk, "bob")
    await until_state(alice, lambda s: len(s["participants"]) == 2)
    for frame, code in [
        ("add:", "empty_item"),
        ("name:", "invalid_name"),
        ('{"action":"add","item":5}', "bad_message"),
        ("x" * 3000, "message_too_large"),
        ("vote:nothing", "unknown_item"),
        ("pick", "nothing_to_pick"),
    ]:
        await alice.send_to(text_data=frame)
        event = await receive(alice)
        assert (event["type"], event["code"]) == ("error", code), frame
        assert event["message"]
    await alice.send_to(bytes_data=b"\x00\x01")
    assert (await receive(alice))["code"] == "bad_message"
    assert await bob.receive_nothing(0.3)
    await alice.send_to(text_data="add:still works")
    await until_state(bob, lambda s: [i["name"] for i in s["items"]] == ["still works"])
    await alice.disconnect()
    await bob.disconnect()


async def test_pick_reaches_everyone_with_the_same_result(layer: str) -> None:
    """`picked` then a state with the decision, identical for every client."""
    room = await new_room()
    alice = await joined(room.pk, "alice")
    bob = await joined(room.pk, "bob")
    await until_state(alice, lambda s: len(s["participants"]) == 2)
    for item in ["pho", "ramen", "curry"]:
        await alice.send_to(text_data=f"add:{item}")
    await until_state(bob, lambda s: len(s["items"]) == 3)
    await bob.send_to(text_data="pick:weighted")
    results = []
    for communicator in (alice, bob):
        while (event := await receive(communicator))["type"] != "picked":
            pass
        state = await receive(communicator)
        assert state["room"]["decision"]["item"] == event["item"]
        results.append((event["item"], event["by"], event["mode"]))
    assert results[0] == results[1]
    assert results[0][1:] == ("bob", "weighted")
    await alice.disconnect()
    await bob.disconnect()


async def test_unknown_room_is_refused_after_accept(layer: str) -> None:
    """An unknown (or malformed) id: error room_not_found, close 4404."""
    for room_id in ["doesNotExist1234", "%3Cscript%3E"]:
        communicator = await connect(room_id)
        event = await receive(communicator)
        assert event["code"] == "room_not_found"
        assert await communicator.receive_output(3) == {"type": "websocket.close", "code": 4404}


async def test_full_room_is_refused(layer: str, settings) -> None:
    """The participant over the cap gets room_full and close 4403."""
    settings.ROOM_MAX_PARTICIPANTS = 1
    room = await new_room()
    alice = await joined(room.pk, "alice")
    late = await connect(room.pk, "name=late")
    assert (await receive(late))["code"] == "room_full"
    assert await late.receive_output(3) == {"type": "websocket.close", "code": 4403}
    await alice.disconnect()


async def test_admin_close_disconnects_clients(layer: str) -> None:
    """Closing a room from the admin sends room_expired and closes with 4410."""
    room = await new_room()
    alice = await joined(room.pk, "alice")
    await sync_to_async(services.room_close)(room=room)
    assert (await receive(alice))["code"] == "room_expired"
    assert await alice.receive_output(3) == {"type": "websocket.close", "code": 4410}
    await alice.disconnect(code=4410, timeout=3)  # the leave runs before the teardown


async def test_room_expires_while_connected(layer: str, settings) -> None:
    """With no activity for ROOM_TTL_SECONDS, clients get room_expired and close 4410."""
    settings.ROOM_TTL_SECONDS = 1
    room = await new_room()
    alice = await joined(room.pk, "alice")
    event = await receive(alice, timeout=5)
    assert event["code"] == "room_expired"
    assert await alice.receive_output(3) == {"type": "websocket.close", "code": 4410}
    await alice.disconnect(code=4410, timeout=3)  # the leave runs before the teardown


async def test_rate_limit(layer: str, settings) -> None:
    """Past ROOM_ACTIONS_PER_10S actions, the connection gets rate_limited and stays open."""
    settings.ROOM_ACTIONS_PER_10S = 3
    room = await new_room()
    alice = await joined(room.pk, "alice")
    for n in range(3):
        await alice.send_to(text_data=f"add:item {n}")
        await until_state(alice, lambda s, n=n: len(s["items"]) == n + 1)
    await alice.send_to(text_data="add:one too many")
    assert (await receive(alice))["code"] == "rate_limited"
    await alice.disconnect()


async def test_a_message_for_a_client_that_left_is_dropped_quietly() -> None:
    """daphne raising Disconnected for a late room event does not crash the consumer."""
    from autobahn.exception import Disconnected

    from rooms.consumers import RoomConsumer

    sent: list[dict] = []

    async def closed_socket(message: dict) -> None:
        sent.append(message)
        raise Disconnected("Attempt to send on a closed protocol")

    consumer = RoomConsumer()
    consumer._backlog = lambda: 0
    await consumer._sender(closed_socket)({"type": "websocket.send", "text": "{}"})
    assert sent == [{"type": "websocket.send", "text": "{}"}]


async def until_error(communicator: WebsocketCommunicator) -> dict:
    while (event := await receive(communicator))["type"] != "error":
        pass
    return event


async def test_orders_bill_and_paid_reach_everyone(layer: str) -> None:
    """After the pick: orders (JSON and shorthand), the bill and a paid mark, as every client
    sees them (on PostgreSQL order and paid go from the event loop, bill on a thread); each
    refusal answers its sender."""
    room = await new_room()
    alice = await joined(room.pk, "alice")
    bob = await joined(room.pk, "bob")
    state = await until_state(alice, lambda s: len(s["participants"]) == 2)
    ids = {p["name"]: p["id"] for p in state["participants"]}
    for frame, code in [
        ("order:짬뽕", "not_decided"),
        ("announce", "not_decided"),
        ("paid", "no_share"),
        ("bill:lots", "invalid_amount"),
        ('{"action":"bill","total":54000,"paid_by":999999}', "unknown_participant"),
        ('{"action":"bill"}', "bad_message"),
    ]:
        await alice.send_to(text_data=frame)
        event = await receive(alice)
        assert (event["type"], event["code"]) == ("error", code), frame
    await alice.send_to(text_data="add:홍콩반점")
    await alice.send_to(text_data="pick")
    await until_state(bob, lambda s: s["room"]["decision"] is not None)
    await alice.send_to(text_data='{"action":"order","text":"짬뽕 곱빼기","ref":1}')
    # Alice's first: the tally lists ids in the order first given (sent at once, either
    # may commit first on the event loop's pool).
    await until_state(bob, lambda s: len(s["room"]["orders"]) == 1)
    await bob.send_to(text_data="order:짬뽕  곱빼기")
    state = await until_state(alice, lambda s: len(s["room"]["orders"]) == 2)
    assert state["room"]["order_tally"] == [
        {"text": "짬뽕 곱빼기", "count": 2, "ids": [ids["alice"], ids["bob"]]}
    ]
    await bob.send_to(text_data='{"action":"order","text":"' + "가" * 41 + '"}')
    assert (await until_error(bob))["code"] == "invalid_order"
    await alice.send_to(text_data=json.dumps({"action": "bill", "total": 27000}))
    state = await until_state(bob, lambda s: s["room"]["bill"] is not None)
    assert [(s["name"], s["amount"], s["paid"]) for s in state["room"]["bill"]["shares"]] == [
        ("alice", 13500, True),
        ("bob", 13500, False),
    ]
    await bob.send_to(text_data=json.dumps({"action": "paid", "paid": True}))
    state = await until_state(alice, lambda s: s["room"]["bill"]["shares"][1]["paid"])
    assert "bob" in state["room"]["summary"]
    await alice.send_to(text_data="announce")
    assert (await until_error(alice))["code"] == "not_in_group"
    await bob.send_to(text_data="bill:off")
    await until_state(alice, lambda s: s["room"]["bill"] is None)
    await alice.send_to(text_data='{"action":"order","text":null}')
    state = await until_state(bob, lambda s: len(s["room"]["orders"]) == 1)
    assert state["room"]["orders"][0]["name"] == "bob"
    await alice.disconnect()
    await bob.disconnect()
