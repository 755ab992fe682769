"""The host and the headcount (issue 11), through the services: every action, refusal and code."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from rooms import commands, selectors, services
from rooms.errors import ClientError
from rooms.models import Connection, Item, Mark, Participant, Room
from rooms.protocol import Command
from tests.support.setups import join

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("channel_layer_memory")]


def leave(participant: Participant) -> None:
    for channel in Connection.objects.filter(participant=participant).values_list(
        "channel_name", flat=True
    ):
        services.participant_leave(channel_name=channel)


def run(room: Room, who: Participant, action: str, text: str = "", **fields) -> dict | None:
    """Run an action as the protocol would: `text` is the item, `participant` whom it names."""
    arguments = {"name": text} if text else {}
    if "participant" in fields:
        arguments["target_id"] = fields.pop("participant")
    command = Command(action, {**arguments, **fields})
    return commands.command_run(room_id=room.pk, participant_id=who.pk, command=command)


def refused(room: Room, who: Participant, action: str, text: str = "", **fields) -> str:
    with pytest.raises(ClientError) as caught:
        run(room, who, action, text, **fields)
    return caught.value.code


def join_refused(room: Room, **kwargs) -> str:
    with pytest.raises(ClientError) as caught:
        join(room, **kwargs)
    return caught.value.code


def state_of(room: Room) -> dict:
    return selectors.room_state(room=Room.objects.get(pk=room.pk))


def hosts(room: Room) -> list[str]:
    return [p["name"] for p in state_of(room)["participants"] if p["host"]]


@pytest.fixture
def room() -> Room:
    return services.room_create()


@pytest.fixture
def host(room: Room) -> Participant:
    return join(room, "host", token=room.host_token)


@pytest.fixture
def guest(room: Room, host: Participant) -> Participant:
    return join(room, "guest")


# --- Who is host -------------------------------------------------------------------


def test_the_host_token_makes_the_host_and_stays_its_rejoin_token(room: Room) -> None:
    """Joining with the API's host_token is the host; the token then rejoins as it."""
    guest = join(room, "early")  # the link travelled before its creator joined
    assert hosts(room) == ["early"]
    host = join(room, "creator", token=room.host_token)
    assert host.token == room.host_token
    assert hosts(room) == ["creator"]
    assert join(room, token=room.host_token).pk == host.pk
    assert [p["host"] for p in state_of(room)["participants"]] == [False, True]
    assert guest.pk != host.pk


def test_the_creating_browser_session_joins_as_host() -> None:
    """A room made through the page's form: that browser's session is the host."""
    room = services.room_create(host_session_key="k" * 32)
    join(room, "first")
    join(room, "me", session_key="k" * 32)
    assert hosts(room) == ["me"]


def test_the_form_stores_the_creating_session_on_the_room() -> None:
    """POST /rooms/ gives the browser a session, and the room remembers it as the host's."""
    client = Client()
    response = client.post("/rooms/")
    room = Room.objects.get(pk=response["Location"].split("/")[2])
    assert room.host_session_key == client.session.session_key != ""


def test_the_api_answers_a_host_token_it_keeps_only_as_a_hash() -> None:
    """POST /api/rooms/ answers host_token; the room stores its SHA-256, never the token."""
    data = Client().post("/api/rooms/").json()
    room = Room.objects.get(pk=data["id"])
    assert len(data["host_token"]) >= 22
    assert data["host_token"] not in room.host_token_hash
    assert room.host_token_hash
    participant = join(room, "api", token=data["host_token"])
    assert hosts(room) == ["api"] and participant.token == data["host_token"]


def test_a_room_without_a_claim_gets_its_first_joiner_as_host(room: Room) -> None:
    """Exactly one participant is host once someone joined."""
    join(room, "a")
    join(room, "b")
    assert hosts(room) == ["a"]


# --- Host-only actions -------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "fields"),
    [
        ("lock", {}),
        ("unlock", {}),
        ("close", {}),
        ("kick", {"participant": 1}),
        ("host", {"participant": 1}),
    ],
)
def test_others_get_not_host_and_nothing_changes(
    room: Room, host: Participant, guest: Participant, action: str, fields: dict
) -> None:
    """lock, unlock, close, kick and host are the host's alone."""
    fields = {"participant": host.pk} if fields else {}
    version = Room.objects.get(pk=room.pk).version
    assert refused(room, guest, action, **fields) == "not_host"
    after = Room.objects.get(pk=room.pk)
    assert (after.version, after.locked, after.closed_at, after.host_id) == (
        version,
        False,
        None,
        host.pk,
    )


def test_lock_refuses_adds_and_others_removes_but_not_votes_or_picks(
    room: Room, host: Participant, guest: Participant
) -> None:
    """Locked: add is room_locked for all, remove for all but the host; the rest works."""
    run(room, guest, "add", "pho")
    run(room, guest, "add", "ramen")
    state = run(room, host, "lock")
    assert state["room"]["locked"] is True
    assert refused(room, guest, "add", "curry") == "room_locked"
    assert refused(room, host, "add", "curry") == "room_locked"
    assert refused(room, guest, "remove", "pho") == "room_locked"
    run(room, guest, "vote", "pho")
    run(room, guest, "veto", "ramen")
    assert run(room, guest, "pick")["room"]["decision"]["item"] == "pho"
    state = run(room, host, "remove", "ramen")
    assert [i["name"] for i in state["items"]] == ["pho"]
    state = run(room, host, "unlock")
    assert state["room"]["locked"] is False
    assert [i["name"] for i in run(room, guest, "add", "curry")["items"]] == ["pho", "curry"]


def test_kick_removes_votes_keeps_items_and_bars_token_and_session(room: Room) -> None:
    """The kicked one's marks go, its items stay; its token and session answer kicked."""
    host = join(room, "host", token=room.host_token)
    troll = join(room, "troll", session_key="t" * 32)
    run(room, troll, "add", "glue")
    run(room, troll, "vote", "glue")
    run(room, host, "add", "pho")
    run(room, troll, "veto", "pho")
    run(room, troll, "going", going=True)
    state = run(room, host, "kick", participant=troll.pk)
    assert [(i["name"], i["added_by"], i["votes"]) for i in state["items"]] == [
        ("glue", "troll", 0),
        ("pho", "host", 0),
    ]
    assert state["items"][1]["vetoed_by"] == []
    assert [p["name"] for p in state["participants"]] == ["host"]
    assert state["room"]["going"] == []
    assert not Connection.objects.filter(participant=troll).exists()
    assert not Mark.objects.filter(participant=troll).exists()
    assert Item.objects.filter(added_by=troll).count() == 1
    assert join_refused(room, token=troll.token) == "kicked"
    assert join_refused(room, session_key="t" * 32) == "kicked"
    assert join_refused(room, name="x", token=troll.token, session_key="other") == "kicked"
    assert Participant.objects.filter(room=room).count() == 2


def test_a_kick_bars_the_token_of_every_tab_of_the_session(room: Room) -> None:
    """Two tabs of one browser are one participant with one token: the first tab's token,
    presented without the session after the kick, is answered kicked (issue 27)."""
    host = join(room, "host", token=room.host_token)
    first_tab = join(room, "troll", session_key="t" * 32)
    second_tab = join(room, session_key="t" * 32)
    assert (second_tab.pk, second_tab.token) == (first_tab.pk, first_tab.token)
    run(room, host, "kick", participant=first_tab.pk)
    assert join_refused(room, token=first_tab.token) == "kicked"
    assert join_refused(room, name="troll", token=first_tab.token, session_key="new") == "kicked"
    assert Participant.objects.filter(room=room).count() == 2


def test_kick_and_hand_over_need_someone_else_online(
    room: Room, host: Participant, guest: Participant
) -> None:
    """The host itself, nobody, someone offline or of another room: unknown_participant."""
    elsewhere = join(services.room_create(), "elsewhere")
    offline = join(room, "offline")
    leave(offline)
    for action in ("kick", "host"):
        for target in (host.pk, 999_999, offline.pk, elsewhere.pk):
            assert refused(room, host, action, participant=target) == "unknown_participant"
    assert hosts(room) == ["host"]


def test_hand_over_makes_the_other_the_host(
    room: Room, host: Participant, guest: Participant
) -> None:
    """After `host:ID` the other is host, and the old host gets not_host."""
    state = run(room, host, "host", participant=guest.pk)
    assert [(p["name"], p["host"]) for p in state["participants"]] == [
        ("host", False),
        ("guest", True),
    ]
    assert refused(room, host, "lock") == "not_host"
    assert run(room, guest, "lock")["room"]["locked"] is True


def test_close_by_the_host_ends_the_room_like_the_admin(
    room: Room, host: Participant, guest: Participant
) -> None:
    """Closed: joins are room_expired and the API answers 410."""
    assert run(room, host, "close") is None
    assert Room.objects.get(pk=room.pk).status == Room.Status.CLOSED
    assert join_refused(room, name="late") == "room_expired"
    assert Client().get(f"/api/rooms/{room.pk}/").status_code == 410
    assert refused(room, host, "extend") == "room_expired"


# --- The host goes away ------------------------------------------------------------


def test_the_role_passes_after_the_grace_to_who_joined_first(settings, room: Room) -> None:
    """Gone past ROOM_HOST_GRACE_SECONDS: the first-joined participant online is host."""
    settings.ROOM_HOST_GRACE_SECONDS = 60
    host = join(room, "host", token=room.host_token)
    join(room, "second")
    join(room, "third")
    leave(host)
    assert Room.objects.get(pk=room.pk).host_absent_since is not None
    assert selectors.rooms_host_overdue(room_ids=[room.pk]) == []
    services.host_pass_on(room_id=room.pk)
    assert Room.objects.get(pk=room.pk).host_id == host.pk  # still within the grace
    Room.objects.filter(pk=room.pk).update(host_absent_since=timezone.now() - timedelta(seconds=61))
    assert selectors.rooms_host_overdue(room_ids=[room.pk]) == [room.pk]
    services.host_pass_on(room_id=room.pk)
    assert hosts(room) == ["second"]
    assert join(room, token=room.host_token).pk == host.pk
    assert hosts(room) == ["second"]  # the creator is back as a participant like any other


def test_back_within_the_grace_the_host_keeps_the_role(settings, room: Room) -> None:
    """A reload (leave, rejoin) does not lose the role."""
    settings.ROOM_HOST_GRACE_SECONDS = 60
    host = join(room, "host", token=room.host_token)
    join(room, "other")
    leave(host)
    join(room, token=host.token)
    assert Room.objects.get(pk=room.pk).host_absent_since is None
    assert hosts(room) == ["host"]


def test_with_nobody_online_the_next_to_join_is_host(settings, room: Room) -> None:
    """Host and everyone gone past the grace: whoever joins next gets the role."""
    settings.ROOM_HOST_GRACE_SECONDS = 0
    host = join(room, "host", token=room.host_token)
    other = join(room, "other")
    leave(other)
    leave(host)
    services.host_pass_on(room_id=room.pk)
    assert Room.objects.get(pk=room.pk).host_id is None
    join(room, token=other.token)
    assert hosts(room) == ["other"]


def test_a_host_on_a_dead_worker_loses_the_role_too(settings, room: Room) -> None:
    """The host's connections go stale (its process died): its absence counts from then."""
    settings.ROOM_HOST_GRACE_SECONDS = 120
    host = join(room, "host", token=room.host_token)
    Connection.objects.filter(participant=host).update(
        last_seen=timezone.now() - timedelta(seconds=settings.ROOM_PRESENCE_TIMEOUT_SECONDS + 1)
    )
    join(room, "alive")  # sweeps the ghost
    assert hosts(room) == []
    absent = Room.objects.get(pk=room.pk).host_absent_since
    assert absent <= timezone.now() - timedelta(seconds=settings.ROOM_PRESENCE_TIMEOUT_SECONDS)
    services.host_pass_on(room_id=room.pk)
    assert hosts(room) == []  # not yet: 120 s of grace
    settings.ROOM_HOST_GRACE_SECONDS = 60
    services.host_pass_on(room_id=room.pk)
    assert hosts(room) == ["alive"]


# --- Ballot stuffing ---------------------------------------------------------------


def test_the_room_admits_so_many_people_over_its_life(settings, room: Room) -> None:
    """Past ROOM_MAX_PARTICIPANTS_EVER new ones are room_full; token and session rejoin."""
    settings.ROOM_MAX_PARTICIPANTS_EVER = 3
    first = join(room, "a")
    browser = join(room, "b", session_key="b" * 32)
    stuffer = join(room, "c")
    run(room, stuffer, "add", "pizza")
    for person in (first, browser, stuffer):
        run(room, person, "vote", "pizza")
        leave(person)
    assert join_refused(room, name="d") == "room_full"
    assert join_refused(room, name="e", token="made-up") == "room_full"
    assert join(room, token=first.token).pk == first.pk
    assert join(room, session_key="b" * 32).pk == browser.pk
    assert state_of(room)["items"][0]["votes"] == 3


def test_the_lifetime_cap_defaults_to_three_times_the_cap(settings) -> None:
    """ROOM_MAX_PARTICIPANTS_EVER is 30 with the default cap of 10."""
    assert settings.ROOM_MAX_PARTICIPANTS_EVER == 3 * settings.ROOM_MAX_PARTICIPANTS == 30
    assert settings.ROOM_HOST_GRACE_SECONDS == 60


# --- Headcount ---------------------------------------------------------------------


def test_going_in_the_order_said_through_leave_and_rejoin(room: Room) -> None:
    """room.going lists who said they are coming, online or not, in order; out removes."""
    mina, joon, kim = join(room, "Mina"), join(room, "Joon"), join(room, "Kim")
    run(room, joon, "going", going=True)
    run(room, mina, "going", going=True)
    run(room, joon, "going", going=True)  # saying it again keeps the place
    leave(joon)
    state = state_of(room)
    assert state["room"]["going"] == [
        {"id": joon.pk, "name": "Joon"},
        {"id": mina.pk, "name": "Mina"},
    ]
    assert "Joon" not in [p["name"] for p in state["participants"]]
    join(room, token=joon.token)
    run(room, kim, "going", going=True)
    state = run(room, mina, "going", going=False)
    assert [p["name"] for p in state["room"]["going"]] == ["Joon", "Kim"]


def test_going_counts_as_activity(settings, room: Room) -> None:
    """Saying I'm in keeps the room alive another ROOM_TTL_SECONDS."""
    person = join(room, "p")
    Room.objects.filter(pk=room.pk).update(expires_at=timezone.now() + timedelta(seconds=5))
    run(room, person, "going", going=True)
    remaining = (Room.objects.get(pk=room.pk).expires_at - timezone.now()).total_seconds()
    assert remaining > settings.ROOM_TTL_SECONDS - 5


def test_a_lost_kick_is_told_again_at_the_next_heartbeat(
    room: Room, django_capture_on_commit_callbacks
) -> None:
    """A kicked connection whose process still heartbeats it is not put back but told again."""
    import asyncio

    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    host = join(room, "host", token=room.host_token)
    troll = join(room, "troll")
    channel = Connection.objects.get(participant=troll).channel_name
    run(room, host, "kick", participant=troll.pk)
    layer = get_channel_layer()
    listener = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(room.channel_group, listener)
    with django_capture_on_commit_callbacks(execute=True):
        services.presence_refresh(connections=[(room.pk, channel, troll.pk)])
    assert not Connection.objects.filter(participant=troll).exists()

    async def next_message() -> dict:
        return await asyncio.wait_for(layer.receive(listener), timeout=3)

    assert async_to_sync(next_message)() == {"type": "room.kicked", "participant": troll.pk}


def test_a_kicked_connection_that_missed_its_kick_is_refused(room: Room) -> None:
    """Every action of a kicked participant answers kicked; nothing changes."""
    host = join(room, "host", token=room.host_token)
    troll = join(room, "troll")
    run(room, host, "add", "pho")
    run(room, host, "kick", participant=troll.pk)
    version = Room.objects.get(pk=room.pk).version
    for action, text, fields in [
        ("add", "glue", {}),
        ("remove", "pho", {}),
        ("vote", "pho", {}),
        ("veto", "pho", {}),
        ("rename", "again", {}),
        ("going", "", {"going": True}),
        ("pick", "", {}),
    ]:
        assert refused(room, troll, action, text, **fields) == "kicked", action
    assert Room.objects.get(pk=room.pk).version == version
    assert state_of(room)["room"]["going"] == []
