"""Queries per action: the database thread of a process is its capacity, so these must not grow.

All database work of a daphne process runs on one thread (channels' database_sync_to_async),
so every query an action makes is paid by every room on that process. The ceilings are the
counts measured when the benchmark in bench/ was tuned (docs/performance.md); raise one only
with a reason. Transactions are real (transaction=True) so BEGIN/COMMIT count as they do live.
"""

from __future__ import annotations

import pytest

from rooms import selectors, services
from rooms.models import Mark, Participant, Room
from rooms.protocol import COMMANDS, Command

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _memory_layer(channel_layer_memory: None) -> None:
    """Broadcasts go to the in-memory layer; only database queries are counted."""


@pytest.fixture
def room_with_people() -> tuple[Room, list[Participant]]:
    """A room with 10 participants online, 10 items and some votes: a busy lunch."""
    room = services.room_create()
    people = [
        services.participant_join(room_id=room.pk, channel_name=f"chan{i}", name=f"p{i}")[0]
        for i in range(10)
    ]
    for i in range(10):
        services.item_add(room_id=room.pk, participant_id=people[i].pk, name=f"dish {i}")
    for i in range(5):
        services.mark_toggle(
            room_id=room.pk, participant_id=people[i].pk, name="dish 0", kind=Mark.Kind.VOTE
        )
    return room, people


def run(room: Room, person: Participant, action: str, text: str = "") -> dict:
    command = Command(action, COMMANDS[action].from_text(text))
    return services.command_run(room_id=room.pk, participant_id=person.pk, command=command)


# What the benchmark's workload does on every action, and what every connection does.
CASES = [
    ("add", "dish new", 11),
    ("remove", "dish 3", 10),
    ("vote", "dish 1", 10),
    ("veto", "dish 2", 10),
    ("rename", "newname", 9),
    ("extend", "", 8),
]


@pytest.mark.parametrize(("action", "text", "ceiling"), CASES, ids=[c[0] for c in CASES])
def test_action_query_count(
    room_with_people, django_assert_max_num_queries, action: str, text: str, ceiling: int
) -> None:
    """Each action, state included, stays within its query budget and still takes effect."""
    room, people = room_with_people
    with django_assert_max_num_queries(ceiling):
        state = run(room, people[1], action, text)
    assert state["version"] == Room.objects.get(pk=room.pk).version
    assert len(state["participants"]) == 10


def test_pick_query_count(room_with_people, django_assert_max_num_queries) -> None:
    """A pick reads the state once to draw and once to broadcast it."""
    room, people = room_with_people
    with django_assert_max_num_queries(13):
        state = services.command_run(
            room_id=room.pk, participant_id=people[0].pk, command=Command("pick", {"mode": "top"})
        )
    assert state["room"]["decision"]["item"] == "dish 0"


def test_join_and_leave_query_count(room_with_people, django_assert_max_num_queries) -> None:
    """Joining and leaving, which happen all at once at lunchtime, stay cheap."""
    room, _ = room_with_people
    services.participant_leave(channel_name="chan9")
    with django_assert_max_num_queries(16):
        _, state = services.participant_join(room_id=room.pk, channel_name="chan-new", name="late")
    assert "late" in [p["name"] for p in state["participants"]]
    with django_assert_max_num_queries(10):
        services.participant_leave(channel_name="chan-new")


def test_background_query_counts(room_with_people, django_assert_max_num_queries) -> None:
    """A process's heartbeat (all its connections) and its version read: a few queries."""
    room, people = room_with_people
    connections = [(room.pk, f"chan{n}", person.pk) for n, person in enumerate(people)]
    with django_assert_max_num_queries(3):
        services.presence_refresh(connections=connections)
    with django_assert_max_num_queries(1):
        versions = selectors.rooms_open_versions(room_ids=[room.pk])
    assert versions == {room.pk: Room.objects.get(pk=room.pk).version}
    fresh = Room.objects.get(pk=room.pk)
    with django_assert_max_num_queries(3):
        state = selectors.room_state(room=fresh)
    assert [i["votes"] for i in state["items"]][:1] == [5]
