"""Deciding on time (issue 29): the deadline, `done`, ties and the runoff, called directly.

Every rule and refusal, with what everyone is sent. Times that must have passed are set in
the past through the service the scheduler uses (`deadline_set` by the system), and what is
due is settled as each process's clock does it (`deadlines.rooms_due_settle`).
"""

from __future__ import annotations

import json
import random
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone

from rooms import commands, selectors, services
from rooms.models import Participant, Room
from rooms.protocol import Command, parse_frame
from rooms.services import deadlines, picks
from tests.test_services import error_code, join

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("channel_layer_memory")]


@pytest.fixture
def room() -> Room:
    return services.room_create()


@pytest.fixture
def host(room: Room) -> Participant:
    return join(room, "host")  # the first to join a room without a creator is its host


@pytest.fixture
def guest(room: Room, host: Participant) -> Participant:
    return join(room, "guest")


def act(room: Room, who: Participant, frame: str | dict) -> dict:
    command = parse_frame(frame if isinstance(frame, str) else json.dumps(frame))
    return commands.command_run(room_id=room.pk, participant_id=who.pk, command=command)


def refused(room: Room, who: Participant, frame: str | dict) -> str:
    return error_code(act, room, who, frame)


def fresh(room: Room) -> dict:
    return selectors.room_state(room=Room.objects.get(pk=room.pk))


def listen(room: Room) -> str:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(room.channel_group, channel)
    return channel


def heard(channel: str) -> list[dict]:
    """Every event the room's group was sent since `listen` (picked, runoff, states...)."""
    queue = get_channel_layer().channels.get(channel)  # the in-memory layer's, not waiting
    events = []
    while queue is not None and not queue.empty():
        _, message = queue.get_nowait()
        events.append(json.loads(message["text"]) if "text" in message else message)
    return events


def past(seconds: float = 1) -> object:
    return timezone.now() - timedelta(seconds=seconds)


def due(room: Room, django_capture_on_commit_callbacks) -> list[dict]:
    """Run one round of a process's clock; what the room's group was sent."""
    channel = listen(room)
    with django_capture_on_commit_callbacks(execute=True):
        deadlines.rooms_due_settle()
    return heard(channel)


def types(events: list[dict]) -> list[str]:
    return [e["type"] for e in events]


# --- Setting the deadline --------------------------------------------------------------


def test_the_host_sets_and_clears_a_deadline(room, host, guest) -> None:
    """deadline:N and {"seconds": N} set room.deadline N s ahead; off and null clear it."""
    before = timezone.now()
    state = act(room, host, "deadline:600")
    at = Room.objects.get(pk=room.pk).deadline_at
    assert state["room"]["deadline"] == {"at": at.isoformat()}
    assert before + timedelta(seconds=600) <= at <= timezone.now() + timedelta(seconds=600)
    assert act(room, host, "deadline:off")["room"]["deadline"] is None
    assert act(room, host, {"action": "deadline", "seconds": 30})["room"]["deadline"] is not None
    assert act(room, host, {"action": "deadline", "seconds": None})["room"]["deadline"] is None
    assert fresh(room)["room"]["deadline"] is None


@pytest.mark.parametrize(
    "frame",
    [
        "deadline:29",
        "deadline:3601",
        "deadline:30.5",
        "deadline:soon",
        "deadline:",
        "deadline:٣٠",  # Arabic-Indic digits are not seconds
        {"action": "deadline", "seconds": "60"},
        {"action": "deadline", "seconds": 30.5},
        {"action": "deadline", "seconds": True},
        {"action": "deadline", "seconds": 0},
        {"action": "deadline", "seconds": 3601},
        {"action": "deadline", "seconds": [60]},
    ],
    ids=str,
)
def test_a_bad_deadline_is_invalid_deadline_and_not_host_comes_first(
    room, host, guest, frame
) -> None:
    assert refused(room, host, frame) == "invalid_deadline"
    assert refused(room, guest, frame) == "not_host"
    assert fresh(room)["room"]["deadline"] is None


def test_only_the_host_sets_a_deadline(room, host, guest) -> None:
    assert refused(room, guest, "deadline:60") == "not_host"
    assert refused(room, guest, "deadline:off") == "not_host"
    assert refused(room, guest, {"action": "deadline"}) == "bad_message"


def test_deadline_set_by_the_system_or_a_participant(room, host, guest) -> None:
    """The scheduler's entry: participant None is the system (no host check)."""
    at = timezone.now() + timedelta(minutes=5)
    state = deadlines.deadline_set(room_id=room.pk, at=at, participant_id=None)
    assert state["room"]["deadline"] == {"at": at.isoformat()}
    assert (
        error_code(deadlines.deadline_set, room_id=room.pk, at=None, participant_id=guest.pk)
        == "not_host"
    )
    state = deadlines.deadline_set(room_id=room.pk, at=None, participant_id=host.pk)
    assert state["room"]["deadline"] is None


def test_a_deadline_keeps_the_room_open_past_it(room, host, guest, settings) -> None:
    """Setting is activity; the room cannot expire before the deadline plus 60 s, whatever
    happens meanwhile (an everyday change's bump never shortens the expiry)."""
    settings.ROOM_TTL_SECONDS = 60
    act(room, host, "deadline:3600")
    at = Room.objects.get(pk=room.pk).deadline_at
    assert Room.objects.get(pk=room.pk).expires_at >= at + timedelta(seconds=60)
    act(room, guest, "add:pho")
    act(room, guest, "vote:pho")
    act(room, host, "extend")
    assert Room.objects.get(pk=room.pk).expires_at >= at + timedelta(seconds=60)


# --- The deadline decides -------------------------------------------------------------


def test_the_deadline_decides_once_by_itself(
    room, host, guest, django_capture_on_commit_callbacks
) -> None:
    """Past its deadline the room is decided by the server, once: picked with by null and
    auto, a state with the decision (by null, auto) and no deadline."""
    act(room, guest, "add:pho")
    act(room, guest, "add:bibimbap")
    act(room, host, "vote:bibimbap")
    deadlines.deadline_set(room_id=room.pk, at=past(), participant_id=None)
    events = due(room, django_capture_on_commit_callbacks)
    assert types(events) == ["picked", "state"]
    picked, state = events
    assert picked == {"type": "picked", "item": "bibimbap", "by": None, "mode": "top", "auto": True}
    assert state["room"]["decision"]["item"] == "bibimbap"
    assert state["room"]["decision"]["by"] is None and state["room"]["decision"]["auto"]
    assert state["room"]["deadline"] is None
    assert state == fresh(room)
    assert due(room, django_capture_on_commit_callbacks) == []  # exactly once


def test_a_deadline_not_yet_due_waits(room, host, django_capture_on_commit_callbacks) -> None:
    act(room, host, "add:pho")
    act(room, host, "deadline:30")
    assert due(room, django_capture_on_commit_callbacks) == []
    assert fresh(room)["room"]["deadline"] is not None


def test_a_deadline_with_nothing_to_pick_is_missed(
    room, host, guest, django_capture_on_commit_callbacks
) -> None:
    act(room, guest, "add:pho")
    act(room, host, "veto:pho")
    deadlines.deadline_set(room_id=room.pk, at=past(), participant_id=None)
    events = due(room, django_capture_on_commit_callbacks)
    assert events[0] == {"type": "deadline_missed", "reason": "nothing_to_pick"}
    assert types(events) == ["deadline_missed", "state"]
    assert events[1]["room"]["deadline"] is None and events[1]["room"]["decision"] is None


def test_a_manual_pick_clears_the_deadline(room, host, guest) -> None:
    act(room, guest, "add:pho")
    act(room, host, "deadline:600")
    state = act(room, guest, "pick")
    assert state["room"]["deadline"] is None and state["room"]["decision"]["by"] == "guest"
    assert state["room"]["decision"]["auto"] is False
    assert state == fresh(room)


def test_a_closed_room_forgets_its_deadline(room, host, django_capture_on_commit_callbacks):
    act(room, host, "add:pho")
    deadlines.deadline_set(room_id=room.pk, at=past(), participant_id=None)
    services.room_close(room=Room.objects.get(pk=room.pk))
    assert due(room, django_capture_on_commit_callbacks) == []
    assert Room.objects.get(pk=room.pk).deadline_at is None
    assert Room.objects.get(pk=room.pk).decided_at is None


# --- Done ------------------------------------------------------------------------------


def test_done_and_undone(room, host, guest) -> None:
    """Every participant carries `done`; done/undone and the JSON form set it."""
    state = act(room, guest, "done")
    assert {p["name"]: p["done"] for p in state["participants"]} == {"host": False, "guest": True}
    state = act(room, guest, "undone")
    assert not any(p["done"] for p in state["participants"])
    state = act(room, guest, {"action": "done", "done": True})
    assert [p["done"] for p in state["participants"]] == [False, True]
    assert state == fresh(room)
    assert refused(room, guest, {"action": "done", "done": "yes"}) == "bad_message"


def test_an_add_or_a_decision_resets_everyones_done(room, host, guest) -> None:
    act(room, host, "done")
    act(room, guest, "done")
    state = act(room, guest, "add:pho")
    assert not any(p["done"] for p in state["participants"])
    assert state == fresh(room)
    act(room, host, "done")
    state = act(room, guest, "remove:pho")  # only an add resets it
    assert [p["done"] for p in state["participants"]] == [True, False]
    act(room, guest, "add:ramen")
    act(room, host, "done")
    state = act(room, host, "pick")
    assert not any(p["done"] for p in state["participants"])
    assert state == fresh(room)


def test_everyone_done_fires_the_deadline_early(
    room, host, guest, django_capture_on_commit_callbacks
) -> None:
    act(room, guest, "add:pho")
    act(room, host, "deadline:600")
    act(room, host, "done")
    assert fresh(room)["room"]["deadline"] is not None  # one of two
    channel = listen(room)
    with django_capture_on_commit_callbacks(execute=True):
        act(room, guest, "done")
    events = heard(channel)
    assert types(events) == ["state", "picked", "state"]
    assert events[1]["auto"] is True and events[1]["by"] is None
    assert events[2]["room"]["deadline"] is None and events[2]["room"]["decision"]["auto"]


def test_everyone_done_without_a_deadline_or_alone_decides_nothing(room, host) -> None:
    act(room, host, "add:pho")
    act(room, host, "deadline:600")
    act(room, host, "done")  # alone: two at least
    state = fresh(room)
    assert state["room"]["deadline"] is not None and state["room"]["decision"] is None
    guest = join(room, "guest")
    act(room, host, "deadline:off")
    act(room, guest, "done")
    assert fresh(room)["room"]["decision"] is None


def test_the_last_not_done_leaving_fires_the_deadline(
    room, host, guest, django_capture_on_commit_callbacks
) -> None:
    third = join(room, "third")
    act(room, guest, "add:pho")
    act(room, host, "deadline:600")
    act(room, host, "done")
    act(room, guest, "done")
    channel = third.connections.get().channel_name
    with django_capture_on_commit_callbacks(execute=True):
        services.participant_leave(channel_name=channel)
    assert fresh(room)["room"]["decision"]["auto"] is True


# --- Ties and the runoff ----------------------------------------------------------------


def tie(room: Room, host: Participant, guest: Participant) -> None:
    """A 1-1 tie between pho and ramen, and bibimbap with no vote."""
    for item in ("pho", "ramen", "bibimbap"):
        act(room, host, f"add:{item}")
    act(room, host, "vote:pho")
    act(room, guest, "vote:ramen")


def test_a_drawn_tie_names_the_tied_items(room, host, guest, django_capture_on_commit_callbacks):
    tie(room, host, guest)
    channel = listen(room)
    with django_capture_on_commit_callbacks(execute=True):
        act(room, host, "pick")
    picked = heard(channel)[0]
    assert picked["tied"] == ["pho", "ramen"] and picked["item"] in ("pho", "ramen")
    assert "auto" not in picked


def test_no_tie_no_tied(room, host, guest, django_capture_on_commit_callbacks) -> None:
    tie(room, host, guest)
    act(room, host, "vote:ramen")
    channel = listen(room)
    with django_capture_on_commit_callbacks(execute=True):
        act(room, host, "pick")
    assert "tied" not in heard(channel)[0]


def runoff_by_pick(room, host, django_capture_on_commit_callbacks, frame="pick:runoff"):
    channel = listen(room)
    with django_capture_on_commit_callbacks(execute=True):
        state = act(room, host, frame)
    return state, heard(channel)


@pytest.mark.parametrize("frame", ["pick:runoff", {"action": "pick", "on_tie": "runoff"}], ids=str)
def test_pick_runoff_starts_a_runoff_on_a_tie(
    room, host, guest, django_capture_on_commit_callbacks, frame, settings
) -> None:
    settings.ROOM_RUNOFF_SECONDS = 30
    tie(room, host, guest)
    before = timezone.now()
    state, events = runoff_by_pick(room, host, django_capture_on_commit_callbacks, frame)
    assert types(events) == ["runoff", "state"]
    ends = Room.objects.get(pk=room.pk).runoff_ends_at
    assert events[0] == {"type": "runoff", "items": ["pho", "ramen"], "ends_at": ends.isoformat()}
    assert before + timedelta(seconds=30) <= ends <= timezone.now() + timedelta(seconds=30)
    assert state["room"]["runoff"] == {"items": ["pho", "ramen"], "ends_at": ends.isoformat()}
    assert [i["votes"] for i in state["items"]] == [0, 0, 0]  # every vote cleared
    assert state["room"]["decision"] is None and state == fresh(room)


def test_pick_runoff_without_a_tie_draws(room, host, guest) -> None:
    tie(room, host, guest)
    act(room, host, "vote:ramen")
    state = act(room, host, "pick:runoff")
    assert state["room"]["decision"]["item"] == "ramen" and state["room"]["runoff"] is None


def test_the_runoff_rules(room, host, guest, django_capture_on_commit_callbacks) -> None:
    """One vote each (another item moves it, the same again takes it back), only for runoff
    items (vetoes as ever); no add, remove or pick while it runs."""
    tie(room, host, guest)
    third = join(room, "third")
    runoff_by_pick(room, host, django_capture_on_commit_callbacks)
    assert refused(room, host, "vote:bibimbap") == "not_in_runoff"
    assert refused(room, host, "add:curry") == "runoff_in_progress"
    assert refused(room, host, "remove:pho") == "runoff_in_progress"
    assert refused(room, host, "pick") == "runoff_in_progress"
    state = act(room, host, "vote:pho")
    assert [i["voter_ids"] for i in state["items"]] == [[host.pk], [], []]
    state = act(room, host, "vote:ramen")  # moved
    assert [i["voter_ids"] for i in state["items"]] == [[], [host.pk], []]
    state = act(room, host, "vote:ramen")  # taken back
    assert [i["voter_ids"] for i in state["items"]] == [[], [], []]
    state = act(room, host, "veto:bibimbap")
    assert state["items"][2]["vetoer_ids"] == [host.pk]
    act(room, host, "vote:pho")
    state = act(room, guest, "vote:pho")
    assert state["items"][0]["voter_ids"] == [host.pk, guest.pk]
    assert state["room"]["runoff"] is not None  # third has not voted
    assert state == fresh(room)
    assert third


def test_the_runoff_ends_when_everyone_voted(
    room, host, guest, django_capture_on_commit_callbacks
) -> None:
    tie(room, host, guest)
    runoff_by_pick(room, host, django_capture_on_commit_callbacks)
    act(room, host, "vote:ramen")
    channel = listen(room)
    with django_capture_on_commit_callbacks(execute=True):
        act(room, guest, "vote:ramen")
    events = heard(channel)
    assert types(events) == ["state", "picked", "state"]
    assert events[1] == {
        "type": "picked",
        "item": "ramen",
        "by": None,
        "mode": "top",
        "auto": True,
        "runoff": True,
    }
    assert events[2]["room"]["runoff"] is None and events[2]["room"]["decision"]["auto"]
    assert events[2] == fresh(room)
    assert act(room, host, "add:curry")["items"][-1]["name"] == "curry"  # over


def test_the_runoff_ends_when_its_time_is_up_drawn_if_still_tied(
    room, host, guest, django_capture_on_commit_callbacks
) -> None:
    tie(room, host, guest)
    runoff_by_pick(room, host, django_capture_on_commit_callbacks)
    act(room, host, "vote:pho")
    act(room, guest, "vote:ramen")  # 1-1 again, and everyone voted: the draw, at once
    state = fresh(room)
    assert state["room"]["runoff"] is None and state["room"]["decision"]["item"] in ("pho", "ramen")


def test_the_runoff_times_out_once(room, host, guest, django_capture_on_commit_callbacks) -> None:
    tie(room, host, guest)
    runoff_by_pick(room, host, django_capture_on_commit_callbacks)
    act(room, host, "vote:pho")
    Room.objects.filter(pk=room.pk).update(runoff_ends_at=past())
    events = due(room, django_capture_on_commit_callbacks)
    assert types(events) == ["picked", "state"]
    assert events[0]["item"] == "pho" and events[0]["runoff"] and "tie_break" not in events[0]
    assert due(room, django_capture_on_commit_callbacks) == []


def test_a_runoff_with_no_votes_is_drawn(room, host, guest, django_capture_on_commit_callbacks):
    tie(room, host, guest)
    runoff_by_pick(room, host, django_capture_on_commit_callbacks)
    Room.objects.filter(pk=room.pk).update(runoff_ends_at=past())
    picked = due(room, django_capture_on_commit_callbacks)[0]
    assert picked["tie_break"] == "draw" and picked["item"] in ("pho", "ramen")
    assert "tied" not in picked  # nobody voted: no tie of votes to name


def test_the_last_non_voter_leaving_ends_the_runoff(
    room, host, guest, django_capture_on_commit_callbacks
) -> None:
    tie(room, host, guest)
    runoff_by_pick(room, host, django_capture_on_commit_callbacks)
    act(room, host, "vote:pho")
    with django_capture_on_commit_callbacks(execute=True):
        services.participant_leave(channel_name=guest.connections.get().channel_name)
    state = fresh(room)
    assert state["room"]["runoff"] is None and state["room"]["decision"]["item"] == "pho"


def test_a_tie_at_the_deadline_starts_a_runoff(
    room, host, guest, django_capture_on_commit_callbacks
) -> None:
    tie(room, host, guest)
    deadlines.deadline_set(room_id=room.pk, at=past(), participant_id=None)
    events = due(room, django_capture_on_commit_callbacks)
    assert types(events) == ["runoff", "state"]
    assert events[1]["room"]["deadline"] is None
    assert events[1]["room"]["runoff"]["items"] == ["pho", "ramen"]
    act(room, host, "vote:ramen")
    act(room, guest, "vote:ramen")
    state = fresh(room)
    assert state["room"]["decision"] == {**state["room"]["decision"], "item": "ramen", "by": None}


def test_every_draw_takes_its_candidates_from_one_place(room, host, guest, monkeypatch) -> None:
    """Manual, deadline and runoff draws all go through picks.pick_candidates, so a rule
    there (the can't-eat filter) applies to each."""
    calls = []
    original = picks.pick_candidates

    def spy(*args, **kwargs):
        calls.append(kwargs.get("among"))
        return original(*args, **kwargs)

    monkeypatch.setattr(picks, "pick_candidates", spy)
    tie(room, host, guest)
    act(room, host, "pick")
    deadlines.deadline_set(room_id=room.pk, at=past(), participant_id=None)
    deadlines.rooms_due_settle()  # a tie: the runoff
    act(room, host, "vote:pho")
    act(room, guest, "vote:pho")
    assert calls == [None, None, ["pho", "ramen"]]


def test_the_pick_choice_is_random_among_the_runoff_leaders(room, host, guest) -> None:
    state = fresh(room)
    state["items"] = [
        {"name": n, "votes": v, "vetoed_by": [], "avoider_ids": []}
        for n, v in (("a", 1), ("b", 1), ("c", 0))
    ]
    assert picks.pick_candidates(room, state, among=["a", "c"]) == [("a", 1), ("c", 0)]
    assert picks.pick_tied([("a", 1), ("b", 1), ("c", 0)]) == ["a", "b"]
    assert picks.pick_tied([("a", 0), ("b", 0)]) == []
    assert picks.pick_choose([("a", 1), ("b", 1)], mode="top", rng=random.Random(1)) in "ab"


def test_command_table_knows_the_new_actions() -> None:
    assert parse_frame("deadline:off") == Command("deadline", {"seconds": None})
    assert parse_frame("deadline:60") == Command("deadline", {"seconds": 60})
    assert parse_frame("done") == Command("done", {"done": True})
    assert parse_frame("undone") == Command("done", {"done": False})
    assert parse_frame("pick:runoff") == Command("pick", {"mode": "top", "on_tie": "runoff"})
    assert parse_frame("pick:fresh:runoff").arguments["on_tie"] == "runoff"
    for frame in ("pick:weighted:runoff", "pick:runoff:runoff", '{"action":"pick","on_tie":1}'):
        with pytest.raises(Exception) as caught:
            parse_frame(frame)
        assert caught.value.code == "bad_message"


# --- A lunch group's room decided by itself ------------------------------------------------


def test_a_group_hears_a_decision_made_on_time(client) -> None:
    """The webhook and the group's history say the room decided by itself (no "picked by")."""
    from groups import services as group_services
    from groups.webhooks import decision_payload

    group = group_services.group_create(name="Team", language="en")
    room, _ = group_services.group_room_open(group=group)
    host = join(room, "host")
    act(room, host, "add:pho")
    deadlines.deadline_set(room_id=room.pk, at=past(), participant_id=None)
    deadlines.rooms_due_settle()
    room = Room.objects.get(pk=room.pk)
    payload = decision_payload(group=group, room=room)
    assert payload["text"] == "Lunch for Team: pho (decided on time)" and payload["by"] is None
    page = client.get(f"/g/{group.slug}/").content.decode()
    assert "decided on time · " in page and "picked by" not in page


def test_a_deadline_that_passes_during_a_runoff_just_ends(
    room, host, guest, django_capture_on_commit_callbacks
) -> None:
    tie(room, host, guest)
    runoff_by_pick(room, host, django_capture_on_commit_callbacks)
    deadlines.deadline_set(room_id=room.pk, at=past(), participant_id=None)
    events = due(room, django_capture_on_commit_callbacks)
    assert types(events) == ["state"]  # no picked, no second runoff
    assert events[0]["room"]["deadline"] is None and events[0]["room"]["runoff"] is not None


def test_an_early_decision_that_fails_leaves_the_change_done(room, host, guest, monkeypatch):
    """The vote that completes a runoff is accepted even if deciding at once fails; the
    runoff's time decides instead."""
    tie(room, host, guest)
    act(room, host, "pick:runoff")
    act(room, host, "vote:pho")

    def broken(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(deadlines, "runoff_end", broken)
    state = act(room, guest, "vote:pho")
    assert state["items"][0]["votes"] == 2 and fresh(room)["room"]["runoff"] is not None
