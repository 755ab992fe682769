"""Statements per action: each is work for PostgreSQL (and, outside a pipeline, a round trip).

The budgets count every statement the database gets, BEGIN and COMMIT included (Django
records both), and the state read that every change ends with: each action <= 5, pick
<= 6, join <= 8, leave <= 5 (issue 8). Transactions are real (transaction=True) so they
count as they do live. SQLite has no data-modifying WITH, so a removal and a new vote or
veto (either way) take one statement more there; in process, a statement costs no round trip.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from rooms import commands, selectors, services
from rooms.models import Mark, Participant, Room
from rooms.protocol import Command, parse_frame

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
    command = parse_frame(f"{action}:{text}")
    return commands.command_run(room_id=room.pk, participant_id=person.pk, command=command)


def budget(postgresql: int, sqlite: int | None = None) -> int:
    """The statement budget on the database under test."""
    return postgresql if connection.vendor == "postgresql" else sqlite or postgresql


# Every action of the protocol (vote and veto both ways), with its budget on PostgreSQL
# and, where it differs, on SQLite.
CASES = [
    ("add", "dish new", 5, None),
    ("add", "dish tagged #hot #veg", 5, None),  # its tags go in with it (issue 29)
    ("remove", "dish 3", 5, 6),
    ("vote", "dish 1", 5, 6),  # a new vote
    ("vote", "dish 0", 5, 6),  # taking a vote back
    ("veto", "dish 2", 5, 6),
    ("rename", "newname", 5, None),
    ("extend", "", 5, None),
    ("done", "", 5, None),  # issue 29
    ("tag", "dish 1 #hot", 5, None),
    ("tag", "dish 1", 5, None),  # clearing
    ("avoid", "hot,veg", 5, None),
    ("avoid", "", 5, None),  # clearing
]


@pytest.mark.parametrize(
    ("action", "text", "postgresql", "sqlite"),
    CASES,
    ids=[f"{c[0]}-{c[1]}" for c in CASES],
)
def test_action_statement_count(
    room_with_people,
    django_assert_max_num_queries,
    action: str,
    text: str,
    postgresql: int,
    sqlite: int | None,
) -> None:
    """Each action, BEGIN, state and COMMIT included, stays within budget and takes effect."""
    room, people = room_with_people
    before = Room.objects.get(pk=room.pk).version
    with django_assert_max_num_queries(budget(postgresql, sqlite)):
        state = run(room, people[0], action, text)
    assert state["version"] == Room.objects.get(pk=room.pk).version == before + 1
    assert len(state["participants"]) == 10
    assert state == selectors.room_state(room=Room.objects.get(pk=room.pk))


def test_pick_statement_count(room_with_people, django_assert_max_num_queries) -> None:
    """A pick reads the state once, to draw from and to broadcast."""
    room, people = room_with_people
    with django_assert_max_num_queries(6):
        state = run(room, people[0], "pick")
    assert state["room"]["decision"]["item"] == "dish 0"
    assert state == selectors.room_state(room=Room.objects.get(pk=room.pk))


def test_a_runoff_vote_fits_the_vote_budget(
    room_with_people, django_assert_max_num_queries
) -> None:
    """Issue 29: during a runoff a vote that moves the voter's vote to another item, and one
    taken back, cost what any vote costs; a deadline or a runoff costs the everyday changes
    that do not use them nothing (the counts above are the ones from before them)."""
    room, people = room_with_people
    for person in people[5:]:
        run(room, person, "vote", "dish 1")  # 5-5: a tie
    run(room, people[0], "pick", "runoff")
    assert Room.objects.get(pk=room.pk).runoff_ends_at is not None
    run(room, people[0], "vote", "dish 0")
    for text in ("dish 1", "dish 1"):  # moved, then taken back
        with django_assert_max_num_queries(budget(5, 6)):
            state = run(room, people[0], "vote", text)
        assert state == selectors.room_state(room=Room.objects.get(pk=room.pk))
    assert [i["voter_ids"] for i in state["items"][:2]] == [[], []]


def test_pick_in_a_blind_room_with_avoids_statement_count(
    room_with_people, django_assert_max_num_queries
) -> None:
    """Blind votes and can't-eat add nothing to a pick: the draw reads the same one state."""
    room, people = room_with_people
    run(room, people[0], "blind")
    run(room, people[0], "tag", "dish 0 #hot")
    run(room, people[1], "avoid", "hot")
    with django_assert_max_num_queries(6):
        state = run(room, people[0], "pick")
    assert state["room"]["decision"]["item"] != "dish 0"  # the most voted, but avoided
    assert state == selectors.room_state(room=Room.objects.get(pk=room.pk))


def test_join_and_leave_statement_count(room_with_people, django_assert_max_num_queries) -> None:
    """Joining and leaving, which happen all at once at lunchtime, stay cheap."""
    room, _ = room_with_people
    services.participant_leave(channel_name="chan9")
    with django_assert_max_num_queries(8):
        _, state = services.participant_join(room_id=room.pk, channel_name="chan-new", name="late")
    assert "late" in [p["name"] for p in state["participants"]]
    with django_assert_max_num_queries(5):
        services.participant_leave(channel_name="chan-new")
    after = selectors.room_state(room=Room.objects.get(pk=room.pk))
    assert "late" not in [p["name"] for p in after["participants"]]
    with django_assert_max_num_queries(8):  # a browser: its session is looked up first
        services.participant_join(
            room_id=room.pk, channel_name="chan-again", session_key="s" * 32, name="again"
        )


def test_a_heartbeat_sends_each_list_as_one_parameter(room_with_people) -> None:
    """However many connections a process has, its heartbeat's statements and its version read
    have one parameter per list: ten thousand parameters cost 70 ms of the interpreter lock
    to bind, and each count was a prepared statement of its own."""
    room, people = room_with_people
    sent: list[tuple[str, int]] = []

    def recorded(execute, sql, params, many, context):
        sent.append((sql, len(params or ())))
        return execute(sql, params, many, context)

    def statements(size: int) -> list[tuple[str, int]]:
        sent.clear()
        connections = [(room.pk, f"chan{n}", person.pk) for n, person in enumerate(people[:size])]
        with connection.execute_wrapper(recorded):
            services.presence_refresh(connections=connections)
            selectors.rooms_open_versions(room_ids=[room.pk, *(f"gone{n}" for n in range(size))])
        return list(sent)

    assert statements(2) == statements(10)  # the same text and parameter count


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_heartbeats_are_heap_only_updates_on_postgresql(room_with_people) -> None:
    """PostgreSQL writes each connection's heartbeat without touching an index (HOT), so ten
    thousand of them every 20 s leave no index entries behind to slow the state reads."""
    room, people = room_with_people
    connections = [(room.pk, f"chan{n}", person.pk) for n, person in enumerate(people)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'rooms_connection'::regclass::oid")
        (table,) = cursor.fetchone()
        for _ in range(3):  # the page's free space is reused as the dead versions are pruned
            services.presence_refresh(connections=connections)
        cursor.execute(
            "SELECT pg_stat_get_xact_tuples_updated(%s), pg_stat_get_xact_tuples_hot_updated(%s)",
            [table, table],
        )
        updated, hot = cursor.fetchone()
    assert updated == 3 * len(people)
    assert hot == updated


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
    with django_assert_max_num_queries(1):
        state = selectors.room_state(room=fresh)
    assert [i["votes"] for i in state["items"]][:1] == [5]


# The host's actions and the headcount (issue 11): (frame, budget on PostgreSQL, on SQLite).
HOST_CASES = [
    ("in", 5, None),
    ("out", 5, None),
    ("lock", 5, None),
    ("unlock", 5, None),
    ("host:{other}", 5, None),
    ("kick:{other}", 5, 8),  # SQLite: the kick's mark, order and connection deletes apart
    ("close", 4, None),
    ("blind", 5, None),
    ("unblind", 5, None),
]


@pytest.mark.parametrize(
    ("frame", "postgresql", "sqlite"), HOST_CASES, ids=[c[0] for c in HOST_CASES]
)
def test_host_and_headcount_statement_count(
    room_with_people, django_assert_max_num_queries, frame: str, postgresql: int, sqlite: int | None
) -> None:
    """The host's actions and `in`/`out` fit the same budget as every other action."""
    room, people = room_with_people
    host, other = people[0], people[1]  # the first to join is host: no creator claimed it
    command = parse_frame(frame.format(other=other.pk))
    with django_assert_max_num_queries(budget(postgresql, sqlite)):
        state = commands.command_run(room_id=room.pk, participant_id=host.pk, command=command)
    if command.action == "close":
        assert state is None and Room.objects.get(pk=room.pk).closed_at is not None
    else:
        assert state == selectors.room_state(room=Room.objects.get(pk=room.pk))


def test_after_the_pick_statement_counts(room_with_people, django_assert_max_num_queries) -> None:
    """Orders and paid marks are everyday changes, as cheap as a vote (5, BEGIN to COMMIT);
    the bill, set rarely, locks the room, reads who shares, writes the shares and reads the
    state: 10 (issue 30)."""
    room, people = room_with_people
    run(room, people[0], "pick")
    for person, frame in [
        (people[1], "order:짬뽕"),
        (people[1], "order:짜장면"),
        (people[2], "order:"),
    ]:
        with django_assert_max_num_queries(5):
            run(room, person, *frame.split(":"))
    with django_assert_max_num_queries(9):
        state = run(room, people[0], "bill", "50000")
    assert len(state["room"]["bill"]["shares"]) == 2  # who ordered, and the payer
    with django_assert_max_num_queries(5):
        state = run(room, people[1], "paid")
    assert state["room"]["bill"]["shares"][0]["paid"]
    assert state == selectors.room_state(room=Room.objects.get(pk=room.pk))


def vars_of(command: Command) -> dict:
    return {"action": command.action, "arguments": command.arguments}


def run_keyed(room: Room, person: Participant, action: str, text: str, command_id: str) -> dict:
    """`run`, the command carrying an idempotency key (JSON's `id`)."""
    frame = parse_frame(f"{action}:{text}")
    command = Command(frame.action, frame.arguments, id=command_id)
    answer = commands.command_answer(room_id=room.pk, participant_id=person.pk, command=command)
    assert answer.state is not None
    return answer.state


# SQLite keeps a command's receipt on the service path (rooms/services/receipts.py): the
# room's row read with its receipt, the service's atomic block as a savepoint and its
# release, the receipt written.
SQLITE_KEYED_EXTRA = 4


@pytest.mark.parametrize(
    ("action", "text", "postgresql", "sqlite"),
    CASES,
    ids=[f"{c[0]}-{c[1]}" for c in CASES],
)
def test_an_id_costs_an_everyday_change_no_statement_on_postgresql(
    room_with_people, action: str, text: str, postgresql: int, sqlite: int | None
) -> None:
    """With an `id`, PostgreSQL sends exactly the statements it sends without one (the receipt
    is part of the change's statement); a resend of it is as many and changes nothing."""
    room, people = room_with_people
    with CaptureQueriesContext(connection) as plain:
        run(room, people[1], action, text)
    # The same action again, by someone else, on something it still applies to.
    second = {"add": "dish newer", "remove": "dish 4", "rename": "other"}.get(action, text)
    with CaptureQueriesContext(connection) as with_id:
        state = run_keyed(room, people[0], action, second, "cmd-1")
    extra = 0 if connection.vendor == "postgresql" else SQLITE_KEYED_EXTRA
    assert len(with_id) == len(plain) + extra <= budget(postgresql, sqlite) + extra
    assert state == selectors.room_state(room=Room.objects.get(pk=room.pk))
    version = state["version"]
    with CaptureQueriesContext(connection) as replayed:
        answer = commands.command_answer(
            room_id=room.pk,
            participant_id=people[0].pk,
            command=Command(**{**vars_of(parse_frame(f"{action}:{second}")), "id": "cmd-1"}),
        )
    assert answer.replayed and answer.version == version == Room.objects.get(pk=room.pk).version
    assert len(replayed) <= len(with_id)


@pytest.mark.parametrize("frame", ["pick", "lock"])
def test_an_id_costs_other_actions_four_or_five_statements(room_with_people, frame: str) -> None:
    """The service path (rooms/services/receipts.py): the room's lock (PostgreSQL), the
    receipt's lookup, the service's atomic block as a savepoint and its release, the receipt's
    INSERT. A resend of it is BEGIN, the lock, the lookup and COMMIT."""
    room, people = room_with_people
    host = Room.objects.get(pk=room.pk).host_id
    actor = next(person for person in people if person.pk == host)
    with CaptureQueriesContext(connection) as plain:
        run(room, actor, frame)
    command = Command(**vars_of(parse_frame(frame)), id="h-1")
    with CaptureQueriesContext(connection) as with_id:
        commands.command_answer(room_id=room.pk, participant_id=actor.pk, command=command)
    locks = 1 if connection.vendor == "postgresql" else 0
    assert len(with_id) == len(plain) + 4 + locks
    with CaptureQueriesContext(connection) as replayed:
        answer = commands.command_answer(room_id=room.pk, participant_id=actor.pk, command=command)
    assert answer.replayed and len(replayed) == 3 + locks
