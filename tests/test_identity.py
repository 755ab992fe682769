"""Who is who: ids in the state, rejoin tokens and request ids (issue 12), services and consumer."""

import hashlib
import json
import logging
import re

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from lunchsite.asgi import application
from rooms import commands, selectors, services
from rooms.errors import ClientError
from rooms.models import Connection, Participant, Room
from rooms.protocol import parse_frame
from tests.support.setups import join


def run(room: Room, who: Participant, action: str, text: str = "") -> dict:
    return commands.command_run(
        room_id=room.pk, participant_id=who.pk, command=parse_frame(f"{action}:{text}")
    )


# --- Ids in the state (services) ---------------------------------------------------


@pytest.mark.django_db
@pytest.mark.usefixtures("channel_layer_memory")
def test_two_people_with_one_name_are_told_apart_by_id() -> None:
    """Two "Kim"s: the state's ids say which one added, voted and vetoed."""
    room = services.room_create()
    kim1, kim2 = join(room, "Kim"), join(room, "Kim")
    run(room, kim1, "add", "pho")
    run(room, kim2, "vote", "pho")
    run(room, kim1, "vote", "pho")
    state = run(room, kim2, "veto", "pho")
    [item] = state["items"]
    assert item["added_by"] == "Kim" and item["added_by_id"] == kim1.pk
    assert item["voters"] == ["Kim", "Kim"] and item["voter_ids"] == [kim2.pk, kim1.pk]
    assert item["vetoed_by"] == ["Kim"] and item["vetoer_ids"] == [kim2.pk]
    assert [p["id"] for p in state["participants"]] == [kim1.pk, kim2.pk]


# --- Rejoin tokens (services) ------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.usefixtures("channel_layer_memory")
def test_a_new_participant_gets_a_secret_token_kept_only_as_a_hash() -> None:
    """128+ random URL-safe bits, one per participant; the database holds only its SHA-256."""
    room = services.room_create()
    alice, bob = join(room, "alice"), join(room, "bob")
    for person in (alice, bob):
        assert re.fullmatch(r"[A-Za-z0-9_-]{22,}", person.token)  # 22 base64 chars = 132 bits
        stored = Participant.objects.get(pk=person.pk).token_hash
        assert stored == hashlib.sha256(person.token.encode()).hexdigest()
    assert alice.token != bob.token
    assert alice.token not in json.dumps(selectors.room_state(room=room))


@pytest.mark.django_db
@pytest.mark.usefixtures("channel_layer_memory")
def test_rejoin_by_token_is_the_same_participant_and_counts_once(settings) -> None:
    """Same id, name kept (or changed when given), one place under the cap while both are open."""
    settings.ROOM_MAX_PARTICIPANTS = 2
    room = services.room_create()
    alice = join(room, "alice")
    join(room, "bob")
    again = join(room, token=alice.token)  # the first connection is still open
    assert (again.pk, again.name, again.token) == (alice.pk, "alice", alice.token)
    assert Connection.objects.filter(participant_id=alice.pk).count() == 2
    renamed = join(room, "ally", token=alice.token)
    assert (renamed.pk, renamed.name) == (alice.pk, "ally")
    with pytest.raises(ClientError) as caught:
        join(room, "carol")
    assert caught.value.code == "room_full"
    names = [p["name"] for p in selectors.room_state(room=room)["participants"]]
    assert names == ["ally", "bob"]


@pytest.mark.django_db
@pytest.mark.usefixtures("channel_layer_memory")
def test_unknown_or_foreign_token_joins_as_someone_new() -> None:
    """A token of another room, or of nobody, is ignored: a new participant."""
    room, other = services.room_create(), services.room_create()
    stranger = join(other, "stranger")
    assert join(room, "x", token=stranger.token).pk != stranger.pk
    assert join(room, "y", token="not-a-token").token != "not-a-token"
    assert join(room, "z", token="t" * 10_000).name == "z"
    assert Participant.objects.filter(room=room).count() == 3


@pytest.mark.django_db
@pytest.mark.usefixtures("channel_layer_memory")
def test_token_beats_session_and_a_session_rejoin_gets_the_same_token() -> None:
    """The token names its participant over the session; back by session alone, the same
    token: one per participant for the life of the room."""
    room = services.room_create()
    browser = join(room, "browser", session_key="s" * 32)
    terminal = join(room, "terminal")
    assert join(room, token=terminal.token, session_key="s" * 32).pk == terminal.pk
    back = join(room, session_key="s" * 32)
    assert (back.pk, back.token) == (browser.pk, browser.token)
    assert join(room, token=browser.token).pk == browser.pk
    assert Participant.objects.filter(room=room).count() == 2


@pytest.mark.django_db
@pytest.mark.usefixtures("channel_layer_memory")
def test_tokens_are_made_again_only_with_the_secret_key(settings) -> None:
    """The table's seed and hash alone rejoin nobody; a new SECRET_KEY makes a new token at
    the next session rejoin, and the old one still names the participant until then."""
    room = services.room_create()
    alice = join(room, "alice", session_key="a" * 32)
    stored = Participant.objects.get(pk=alice.pk)
    assert alice.token not in {stored.token_seed, stored.token_hash}
    settings.SECRET_KEY = "another-secret-key-" + "y" * 40
    assert join(room, token=alice.token).pk == alice.pk
    back = join(room, session_key="a" * 32)
    assert back.pk == alice.pk and back.token != alice.token
    assert join(room, token=back.token).pk == alice.pk


@pytest.mark.django_db
@pytest.mark.usefixtures("channel_layer_memory")
def test_tokens_never_reach_the_logs(caplog) -> None:
    """Joining and rejoining log the room and participant, never the token."""
    caplog.set_level(logging.DEBUG)
    room = services.room_create()
    alice = join(room, "alice")
    join(room, token=alice.token)
    assert caplog.records
    assert alice.token not in caplog.text


# --- Request ids (protocol) --------------------------------------------------------


@pytest.mark.parametrize("ref", ["a1", "", "x" * 64, 0, 7, -3, 2**53 - 1])
def test_a_json_command_carries_its_ref(ref) -> None:
    """`ref` is a string of at most 64 characters or a safe integer."""
    assert parse_frame(json.dumps({"action": "add", "item": "x", "ref": ref})).ref == ref


@pytest.mark.parametrize("ref", ["x" * 65, 1.5, True, [1], {"a": 1}, 2**53])
def test_a_bad_ref_is_a_bad_message(ref) -> None:
    """Anything else in `ref` makes the command bad_message (which then has no ref)."""
    with pytest.raises(ClientError) as caught:
        parse_frame(json.dumps({"action": "add", "item": "x", "ref": ref}))
    assert caught.value.code == "bad_message" and caught.value.ref is None


def test_a_bad_command_with_a_good_ref_names_it() -> None:
    """A parse error after the ref was read carries the ref."""
    with pytest.raises(ClientError) as caught:
        parse_frame('{"action":"launch","ref":"r9"}')
    assert (caught.value.code, caught.value.ref) == ("bad_message", "r9")
    assert parse_frame("add:pizza").ref is None


# --- Over the WebSocket ------------------------------------------------------------


async def connect(room_id: str, query: str = "") -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, f"/ws/rooms/{room_id}/?{query}")
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def receive(communicator: WebsocketCommunicator, timeout: float = 3) -> dict:
    return json.loads(await communicator.receive_from(timeout))


async def welcome_and_state(communicator: WebsocketCommunicator) -> tuple[dict, dict]:
    welcome = await receive(communicator)
    assert welcome["type"] == "welcome", welcome
    state = await receive(communicator)
    assert state["type"] == "state"
    return welcome["you"], state


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("channel_layer_memory")
async def test_welcome_carries_the_token_and_a_reconnect_with_it_is_me() -> None:
    """No cookie: `?token=` from welcome brings back the same id and name."""
    room = await sync_to_async(services.room_create)()
    first = await connect(room.pk, "name=joon")
    you, state = await welcome_and_state(first)
    assert you["name"] == "joon" and len(you["token"]) >= 22
    assert "token" not in json.dumps(state["participants"])
    second = await connect(room.pk, f"token={you['token']}")
    again, state = await welcome_and_state(second)
    assert again == you
    assert state["participants"] == [
        {"id": you["id"], "name": "joon", "host": True, "done": False, "avoids": []}
    ]
    await first.disconnect()
    await second.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("channel_layer_memory")
async def test_errors_answering_a_json_command_echo_its_ref() -> None:
    """The error names the request (string or integer ref); shorthand and bad refs get none."""
    room = await sync_to_async(services.room_create)()
    alice = await connect(room.pk, "name=alice")
    await welcome_and_state(alice)
    frames = [
        ({"action": "vote", "item": "nothing", "ref": "vote-3"}, "unknown_item", "vote-3"),
        ({"action": "pick", "ref": 12}, "nothing_to_pick", 12),
        ({"action": "launch", "ref": "r1"}, "bad_message", "r1"),
        ({"action": "add", "item": "", "ref": "add-1"}, "empty_item", "add-1"),
        ({"action": "add", "item": "x", "ref": "r" * 65}, "bad_message", None),
    ]
    for frame, code, ref in frames:
        await alice.send_to(text_data=json.dumps(frame))
        event = await receive(alice)
        assert (event["code"], event.get("ref")) == (code, ref), frame
        assert ("ref" in event) == (ref is not None)
    await alice.send_to(text_data="vote:nothing")
    assert "ref" not in await receive(alice)
    await alice.send_to(text_data=json.dumps({"action": "add", "item": "pho", "ref": "ok"}))
    state = await receive(alice)
    assert state["type"] == "state" and "ref" not in state
    await alice.disconnect()


@pytest.mark.django_db
@pytest.mark.usefixtures("channel_layer_memory")
def test_tokens_and_their_hashes_stay_out_of_the_admin(admin_client) -> None:
    """Staff see rooms and participants, never a token or a token's hash."""
    room = services.room_create()
    alice = join(room, "alice", token=room.host_token)
    bob = join(room, "bob")
    secrets = [room.host_token, bob.token]
    secrets += list(Participant.objects.values_list("token_hash", flat=True))
    pages = [
        admin_client.get("/admin/rooms/room/").content.decode(),
        admin_client.get(f"/admin/rooms/room/{room.pk}/change/").content.decode(),
    ]
    assert "alice" in pages[1] and alice.token == room.host_token
    for page in pages:
        for secret in secrets:
            assert secret not in page
