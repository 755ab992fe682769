"""The room's rules, called directly: each rule, each error code, each broadcast."""

import json
import random
import re
from collections import Counter
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone

from rooms import commands, selectors, services
from rooms.errors import ClientError
from rooms.models import Connection, Mark, Participant, Room
from rooms.protocol import COMMANDS, Command

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("channel_layer_memory")]

_channel_counter = iter(range(1_000_000))


def join(room: Room, name: str = "", session_key: str = "") -> Participant:
    participant, _ = services.participant_join(
        room_id=room.pk,
        channel_name=f"test.channel.{next(_channel_counter)}",
        session_key=session_key,
        name=name,
    )
    return participant


def run(room: Room, who: Participant, frame_action: str, text: str = "", mode: str = "top") -> dict:
    argument = mode if frame_action == "pick" else text
    command = Command(frame_action, COMMANDS[frame_action].from_text(argument))
    return commands.command_run(room_id=room.pk, participant_id=who.pk, command=command)


def error_code(call, *args, **kwargs) -> str:
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    return caught.value.code


@pytest.fixture
def room() -> Room:
    return services.room_create()


@pytest.fixture
def alice(room: Room) -> Participant:
    return join(room, "alice")


@pytest.fixture
def bob(room: Room) -> Participant:
    return join(room, "bob")


# --- Rooms -----------------------------------------------------------------------


def test_room_ids_are_random_and_url_safe() -> None:
    """Ids carry at least 64 random bits in URL-safe characters and never repeat."""
    ids = {services.room_create().pk for _ in range(50)}
    assert len(ids) == 50
    for room_id in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{16,}", room_id)  # 16 base64 chars = 96 bits


def test_new_room_expires_after_ttl(settings) -> None:
    """A fresh room lives ROOM_TTL_SECONDS."""
    settings.ROOM_TTL_SECONDS = 120
    room = services.room_create()
    remaining = (room.expires_at - timezone.now()).total_seconds()
    assert 115 < remaining <= 120


def test_version_strictly_increases(room: Room, alice: Participant) -> None:
    """Every accepted change raises the version; the state reports it."""
    versions = [Room.objects.get(pk=room.pk).version]
    for action, argument in [
        ("add", "pizza"),
        ("vote", "pizza"),
        ("veto", "pizza"),
        ("extend", ""),
    ]:
        versions.append(run(room, alice, action, argument)["version"])
    assert versions == sorted(set(versions))
    assert selectors.room_state(room=Room.objects.get(pk=room.pk))["version"] == versions[-1]


# --- Joining and presence --------------------------------------------------------


def test_join_uses_requested_name_or_a_guest_name(room: Room) -> None:
    """?name= becomes the nickname; without (or with an invalid) one, a guest name."""
    assert join(room, "  민지 ").name == "민지"
    assert join(room).name.startswith("guest-")
    assert join(room, "x" * 40).name.startswith("guest-")


def test_participant_cap(settings, room: Room) -> None:
    """The eleventh distinct participant online is refused with room_full."""
    settings.ROOM_MAX_PARTICIPANTS = 3
    for name in ["a", "b", "c"]:
        join(room, name)
    assert error_code(join, room, "d") == "room_full"
    assert len(selectors.room_state(room=room)["participants"]) == 3


def test_same_session_is_one_participant(settings, room: Room) -> None:
    """A second tab of a browser session joins as the same participant, even when full."""
    settings.ROOM_MAX_PARTICIPANTS = 2
    first = join(room, "tab1", session_key="s" * 32)
    join(room, "other")
    second = join(room, "", session_key="s" * 32)
    assert second.pk == first.pk
    state = selectors.room_state(room=room)
    assert sorted(p["name"] for p in state["participants"]) == ["other", "tab1"]


def test_leave_frees_a_place_and_updates_presence(settings, room: Room) -> None:
    """A participant whose last connection closes goes offline and stops counting."""
    settings.ROOM_MAX_PARTICIPANTS = 1
    alice = join(room, "alice")
    channel = Connection.objects.get(participant=alice).channel_name
    services.participant_leave(channel_name=channel)
    assert selectors.room_state(room=room)["participants"] == []
    assert join(room, "bob").name == "bob"


def test_ghost_connections_stop_counting(settings, room: Room) -> None:
    """Connections of a dead worker (no heartbeat) do not keep the room full."""
    settings.ROOM_MAX_PARTICIPANTS = 1
    join(room, "ghost")
    Connection.objects.update(
        last_seen=timezone.now() - timedelta(seconds=settings.ROOM_PRESENCE_TIMEOUT_SECONDS + 1)
    )
    assert join(room, "alive").name == "alive"
    assert [p["name"] for p in selectors.room_state(room=room)["participants"]] == ["alive"]


def test_presence_refresh_sweeps_ghosts_and_restores_its_own(settings, room: Room) -> None:
    """A process's heartbeat keeps its connections (even swept ones) and removes ghosts."""
    alice = join(room, "alice")
    bob = join(room, "bob")
    join(room, "ghost")
    mine = {p: Connection.objects.get(participant=p).channel_name for p in (alice, bob)}
    Connection.objects.exclude(channel_name__in=mine.values()).update(
        last_seen=timezone.now() - timedelta(hours=1)
    )
    Connection.objects.filter(participant=bob).delete()  # swept while its worker stalled
    version = Room.objects.get(pk=room.pk).version
    services.presence_refresh(connections=[(room.pk, channel, p.pk) for p, channel in mine.items()])
    assert set(Connection.objects.values_list("channel_name", flat=True)) == set(mine.values())
    state = selectors.room_state(room=Room.objects.get(pk=room.pk))
    assert [p["name"] for p in state["participants"]] == ["alice", "bob"]
    assert state["version"] == version + 1


def test_open_versions_leave_out_dead_rooms(room: Room) -> None:
    """The liveness read reports open rooms' versions; expired and closed rooms are absent."""
    expired = services.room_create()
    Room.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    closed = services.room_create()
    services.room_close(room=closed)
    versions = selectors.rooms_open_versions(room_ids=[room.pk, expired.pk, closed.pk, "gone"])
    assert versions == {room.pk: room.version}


def test_join_refused_for_unknown_expired_and_closed_rooms(room: Room) -> None:
    """Unknown ids are room_not_found; expired and closed rooms are room_expired."""
    assert error_code(join, Room(id="nope")) == "room_not_found"
    Room.objects.filter(pk=room.pk).update(expires_at=timezone.now())
    assert error_code(join, room) == "room_expired"
    other = services.room_create()
    services.room_close(room=other)
    assert error_code(join, other) == "room_expired"


# --- Items -----------------------------------------------------------------------


def test_add_and_remove(room: Room, alice: Participant, bob: Participant) -> None:
    """Items appear in insertion order with their author; removing drops item and marks."""
    run(room, alice, "add", "Kimchi stew")
    run(room, bob, "add", "pizza")
    run(room, bob, "vote", "kimchi STEW")
    state = run(room, alice, "remove", " KIMCHI  stew ")
    assert [(i["name"], i["added_by"]) for i in state["items"]] == [("pizza", "bob")]
    assert Mark.objects.count() == 0


@pytest.mark.parametrize(
    ("raw", "code"),
    [("", "empty_item"), ("\u200b \u200b", "empty_item"), ("x" * 61, "item_too_long")],
)
def test_add_rejects_bad_names(room: Room, alice: Participant, raw: str, code: str) -> None:
    """Empty, invisible and overlong names are refused with their codes."""
    assert error_code(run, room, alice, "add", raw) == code


def test_duplicates_compare_normalised(room: Room, alice: Participant, bob: Participant) -> None:
    """' PIZZA ' is 'pizza' again: duplicate_item, and the list keeps one."""
    run(room, alice, "add", "pizza")
    assert error_code(run, room, bob, "add", " PIZZA ") == "duplicate_item"
    assert [i["name"] for i in selectors.room_state(room=room)["items"]] == ["pizza"]


def test_too_many_items(settings, room: Room, alice: Participant) -> None:
    """The room holds ROOM_MAX_ITEMS items."""
    settings.ROOM_MAX_ITEMS = 2
    run(room, alice, "add", "a")
    run(room, alice, "add", "b")
    assert error_code(run, room, alice, "add", "c") == "too_many_items"


@pytest.mark.parametrize("action", ["remove", "vote", "veto"])
def test_unknown_item(room: Room, alice: Participant, action: str) -> None:
    """Acting on an item that is not there is unknown_item."""
    assert error_code(run, room, alice, action, "ghost pepper") == "unknown_item"


def test_vote_and_veto_toggle(room: Room, alice: Participant, bob: Participant) -> None:
    """A second vote (or veto) by the same person takes the first back."""
    run(room, alice, "add", "pho")
    run(room, alice, "vote", "pho")
    state = run(room, bob, "vote", "PHO")
    assert state["items"][0]["votes"] == 2
    assert state["items"][0]["voters"] == ["alice", "bob"]
    state = run(room, alice, "vote", "pho")
    assert (state["items"][0]["votes"], state["items"][0]["voters"]) == (1, ["bob"])
    state = run(room, bob, "veto", "pho")
    assert state["items"][0]["vetoed_by"] == ["bob"]
    state = run(room, bob, "veto", "pho")
    assert state["items"][0]["vetoed_by"] == []


def test_rename_shows_everywhere(room: Room, alice: Participant) -> None:
    """A new name shows in presence, as author and as voter; bad names are refused."""
    run(room, alice, "add", "ramen")
    run(room, alice, "vote", "ramen")
    state = run(room, alice, "rename", "  Alice K ")
    assert state["participants"] == [
        {"id": alice.pk, "name": "Alice K", "host": True, "done": False, "avoids": []}
    ]
    assert state["items"][0]["added_by"] == "Alice K"
    assert state["items"][0]["voters"] == ["Alice K"]
    assert error_code(run, room, alice, "rename", "") == "invalid_name"
    assert error_code(run, room, alice, "rename", "n" * 25) == "invalid_name"


# --- Activity and expiry ---------------------------------------------------------


def test_extend_and_changes_keep_the_room_alive(room: Room, alice: Participant) -> None:
    """Accepted changes and extend push expires_at; rejected actions do not."""
    Room.objects.filter(pk=room.pk).update(expires_at=timezone.now() + timedelta(seconds=30))
    state = run(room, alice, "extend")
    extended = Room.objects.get(pk=room.pk).expires_at
    assert (extended - timezone.now()).total_seconds() > 500
    assert state["room"]["expires_at"] == extended.isoformat()
    Room.objects.filter(pk=room.pk).update(expires_at=timezone.now() + timedelta(seconds=30))
    before = Room.objects.get(pk=room.pk)
    error_code(run, room, alice, "remove", "not there")
    after = Room.objects.get(pk=room.pk)
    assert (after.expires_at, after.version) == (before.expires_at, before.version)


def test_actions_on_expired_room(room: Room, alice: Participant) -> None:
    """Once expired, every action is refused with room_expired."""
    Room.objects.filter(pk=room.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    for action, argument in [("add", "x"), ("extend", ""), ("pick", "")]:
        assert error_code(run, room, alice, action, argument) == "room_expired"


# --- Picking ---------------------------------------------------------------------


def test_nothing_to_pick(room: Room, alice: Participant) -> None:
    """An empty list, or one where everything is vetoed, has nothing to pick."""
    assert error_code(run, room, alice, "pick") == "nothing_to_pick"
    run(room, alice, "add", "sushi")
    run(room, alice, "veto", "sushi")
    assert error_code(run, room, alice, "pick") == "nothing_to_pick"


def test_pick_sets_the_decision(room: Room, alice: Participant, bob: Participant) -> None:
    """The pick is the only non-vetoed item and is recorded with who picked it."""
    for item in ["sushi", "bibimbap", "burger"]:
        run(room, alice, "add", item)
    run(room, alice, "veto", "sushi")
    run(room, bob, "veto", "burger")
    state = run(room, bob, "pick")
    assert state["room"]["decision"]["item"] == "bibimbap"
    assert state["room"]["decision"]["by"] == "bob"


def _candidates(votes: dict[str, int]) -> list[tuple[str, int]]:
    return list(votes.items())


def test_top_mode_draws_uniformly_among_the_most_voted() -> None:
    """Mode top: only the items with the most votes win, each about equally often."""
    rng = random.Random(1234)
    draws = Counter(
        services.pick_choose(_candidates({"a": 2, "b": 2, "c": 1, "d": 0}), mode="top", rng=rng)
        for _ in range(4000)
    )
    assert set(draws) == {"a", "b"}
    assert abs(draws["a"] - 2000) < 200


def test_weighted_mode_follows_the_votes() -> None:
    """Mode weighted: chance proportional to votes; zero votes never win."""
    rng = random.Random(99)
    draws = Counter(
        services.pick_choose(_candidates({"a": 3, "b": 1, "c": 0}), mode="weighted", rng=rng)
        for _ in range(8000)
    )
    assert "c" not in draws
    assert abs(draws["a"] / 8000 - 0.75) < 0.03


def test_weighted_mode_without_votes_is_uniform() -> None:
    """Mode weighted with no votes anywhere: every item equally likely."""
    rng = random.Random(7)
    draws = Counter(
        services.pick_choose(_candidates({"a": 0, "b": 0, "c": 0}), mode="weighted", rng=rng)
        for _ in range(6000)
    )
    assert all(abs(count - 2000) < 200 for count in draws.values())


# --- Broadcasts ------------------------------------------------------------------


def _listen(room: Room) -> str:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(room.channel_group, channel)
    return channel


def _received(channel: str, count: int) -> list[dict]:
    layer = get_channel_layer()
    return [async_to_sync(layer.receive)(channel) for _ in range(count)]


def test_state_is_broadcast_after_commit(
    room: Room, alice: Participant, django_capture_on_commit_callbacks
) -> None:
    """A change is sent to the room's group only once its transaction commits."""
    channel = _listen(room)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run(room, alice, "add", "tteokbokki")
    assert len(callbacks) == 1  # queued, not sent
    callbacks[0]()
    message = _received(channel, 1)[0]
    event = json.loads(message["text"])
    assert (event["type"], event["items"][0]["name"]) == ("state", "tteokbokki")
    assert message["version"] == event["version"]


def test_rejected_action_broadcasts_nothing(
    room: Room, alice: Participant, django_capture_on_commit_callbacks
) -> None:
    """A refused change leaves no queued broadcast behind."""
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        error_code(run, room, alice, "remove", "nothing")
    assert callbacks == []


def test_pick_sends_picked_then_state(
    room: Room, alice: Participant, django_capture_on_commit_callbacks
) -> None:
    """Everyone gets the same `picked` event, then the state with the decision."""
    run(room, alice, "add", "naengmyeon")
    channel = _listen(room)
    with django_capture_on_commit_callbacks(execute=True):
        run(room, alice, "pick", mode="weighted")
    picked, state = (json.loads(m["text"]) for m in _received(channel, 2))
    assert picked == {"type": "picked", "item": "naengmyeon", "by": "alice", "mode": "weighted"}
    assert state["room"]["decision"]["item"] == "naengmyeon"


def test_close_tells_the_group(room: Room, django_capture_on_commit_callbacks) -> None:
    """Closing a room sends room.closed to its group."""
    channel = _listen(room)
    with django_capture_on_commit_callbacks(execute=True):
        services.room_close(room=room)
    assert _received(channel, 1)[0]["type"] == "room.closed"
    assert Room.objects.get(pk=room.pk).status == Room.Status.CLOSED


# --- Purging ---------------------------------------------------------------------


def test_purge_deletes_only_long_gone_rooms() -> None:
    """Rooms expired or closed longer than the age go; active and recent ones stay."""
    now = timezone.now()
    active = services.room_create()
    recent = services.room_create()
    old = services.room_create()
    old_closed = services.room_create()
    Room.objects.filter(pk=recent.pk).update(expires_at=now - timedelta(minutes=5))
    Room.objects.filter(pk=old.pk).update(expires_at=now - timedelta(days=2))
    Room.objects.filter(pk=old_closed.pk).update(closed_at=now - timedelta(days=2))
    assert services.rooms_purge(older_than=timedelta(days=1)) == 2
    assert set(Room.objects.values_list("pk", flat=True)) == {active.pk, recent.pk}
