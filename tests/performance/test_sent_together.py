"""A change's statements are sent together (rooms/services/runner.py, `change_apply`).

The room's bump, the change and the state read go out in one round trip, so the change runs
before its rules are checked; a refusal must leave nothing, as if it had never been tried.
On PostgreSQL the statements are sent in pipeline mode, COMMIT included: one round trip, and
a refused change wrote nothing. On SQLite a refusal rolls the change back.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import psycopg
import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from psycopg.pq import TransactionStatus

from rooms import commands, selectors, services
from rooms.errors import ClientError
from rooms.models import Item, Mark, Participant, Room
from rooms.protocol import parse_frame
from rooms.services.changes import Change
from rooms.services.runner import change_apply
from rooms.services.states import state_publish
from tests.support.setups import group_with_history, join

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("channel_layer_memory"),
]


def run(room: Room, who: Participant, frame: str) -> dict | None:
    return commands.command_run(room_id=room.pk, participant_id=who.pk, command=parse_frame(frame))


def refusal(room: Room, who: Participant, frame: str) -> str:
    with pytest.raises(ClientError) as caught:
        run(room, who, frame)
    return caught.value.code


def snapshot(room: Room) -> tuple:
    """Everything a refused change could have touched: the room row, items, marks, people."""
    fresh = Room.objects.get(pk=room.pk)
    return (
        fresh.version,
        fresh.expires_at,
        sorted(Item.objects.filter(room=room).values_list("key", flat=True)),
        sorted(
            Mark.objects.filter(item__room=room).values_list("item__key", "kind", "participant")
        ),
        sorted(Participant.objects.filter(room=room).values_list("name", "going_since", "avoids")),
        sorted(Item.objects.filter(room=room).values_list("key", "tags")),
    )


@pytest.fixture
def lunch() -> tuple[Room, Participant, Participant]:
    """A room with its host and a guest, two items and a vote."""
    room = services.room_create()
    host = join(room, "host", token=room.host_token)
    guest = join(room, "guest")
    run(room, guest, "add:pho")
    run(room, guest, "add:ramen")
    run(room, host, "vote:pho")
    return room, host, guest


def test_refused_in_a_locked_room_the_change_is_rolled_back(lunch) -> None:
    """A new item in a locked list was inserted before the check; nothing of it stays."""
    room, host, guest = lunch
    run(room, host, "lock")
    before = snapshot(room)
    assert refusal(room, guest, "add:curry") == "room_locked"
    assert refusal(room, guest, "remove:pho") == "room_locked"
    assert snapshot(room) == before


def test_refused_for_a_kicked_participant_every_change_is_rolled_back(lunch) -> None:
    """A kicked connection whose `kicked` was lost: its add, vote, rename and in all vanish."""
    room, host, guest = lunch
    run(room, host, f"kick:{guest.pk}")
    before = snapshot(room)
    frames = ["add:curry", "vote:ramen", "veto:pho", "remove:ramen", "name:sneaky", "in"]
    for frame in [*frames, "tag:pho #x", "avoid:x", "add:curry #x"]:
        assert refusal(room, guest, frame) == "kicked", frame
    assert snapshot(room) == before


def test_refused_in_an_expired_room_the_change_is_rolled_back(lunch) -> None:
    """Past its expiry the room's UPDATE finds nothing; the statements after it still ran."""
    room, _, guest = lunch
    Room.objects.filter(pk=room.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    before = snapshot(room)
    for frame in ["add:curry", "vote:ramen", "remove:pho", "name:late", "in", "extend", "pick"]:
        assert refusal(room, guest, frame) == "room_expired", frame
    assert snapshot(room) == before


def test_unknown_items_and_duplicates_leave_no_bump(lunch) -> None:
    """The bump went out with a change that did nothing; the refusal takes it back."""
    room, _, guest = lunch
    before = snapshot(room)
    assert refusal(room, guest, "vote:sushi") == "unknown_item"
    assert refusal(room, guest, "remove:sushi") == "unknown_item"
    assert refusal(room, guest, "add:PHO") == "duplicate_item"
    assert refusal(room, guest, "add:PHO #soup") == "duplicate_item"
    assert refusal(room, guest, "tag:sushi #raw") == "unknown_item"
    assert snapshot(room) == before


def test_a_vote_toggles_on_and_off(lunch) -> None:
    """Vote, take it back, vote again: the toggle decides in the database (both vendors)."""
    room, _, guest = lunch
    votes = [run(room, guest, "vote:ramen")["items"][1]["voters"] for _ in range(3)]
    assert votes == [["guest"], [], ["guest"]]
    vetoes = [run(room, guest, "veto:ramen")["items"][1]["vetoed_by"] for _ in range(2)]
    assert vetoes == [["guest"], []]


def test_a_failing_statement_raises_a_database_error_and_leaves_nothing(lunch) -> None:
    """An error in one statement of the batch is Django's DatabaseError; the bump goes too."""
    room, _, guest = lunch
    before = snapshot(room)
    with pytest.raises(DatabaseError), transaction.atomic():
        broken = "UPDATE rooms_item SET name = NULL WHERE room_id IN (SELECT id FROM room)"
        change_apply(room.pk, Change(Change.spelled_once(broken), {}), by=guest.pk)
    assert snapshot(room) == before
    assert run(room, guest, "add:curry")["version"] == before[0] + 1  # the connection still works


def test_the_state_sent_is_the_state_after_the_change(lunch) -> None:
    """The state read goes out with the change and sees it, as a later read does."""
    room, _, guest = lunch
    with transaction.atomic():
        rename = "UPDATE rooms_participant SET name = %(name)s WHERE id = %(by)s RETURNING id"
        change = Change(Change.spelled_once(rename), {"name": "renamed"})
        applied = change_apply(room.pk, change, by=guest.pk)
        state = state_publish(applied.room, applied.state)
    assert "renamed" in [p["name"] for p in state["participants"]]
    assert state == selectors.room_state(room=Room.objects.get(pk=room.pk))


def test_a_group_room_s_state_names_its_group() -> None:
    """A lunch group's room learns its group from the bump; its state still shows the group."""
    group, room = group_with_history("Team Kimchi", item="bibimbap", by="joon", days_ago=1)
    joon = join(room, "joon")
    state = run(room, joon, "add:naengmyeon")
    assert state["room"]["group"] == {"slug": group.slug, "name": "Team Kimchi"}
    assert state == selectors.room_state(room=Room.objects.get(pk=room.pk))


def test_adds_racing_for_the_last_places_keep_exactly_the_cap(lunch, settings) -> None:
    """Eight adds at once for three free places: three kept, five told too_many_items.

    Each change reads the item count after the room's lock, with a snapshot of its own, so
    an add that waited for another sees the item that one added."""
    room, host, guest = lunch
    settings.ROOM_MAX_ITEMS = 5  # two are on the list
    people = [host, guest, *(join(room, f"p{n}") for n in range(6))]
    before = Room.objects.get(pk=room.pk).version
    start = threading.Barrier(len(people))
    outcomes: list[str] = []

    def add(who: Participant, name: str) -> None:
        try:
            start.wait()
            run(room, who, f"add:{name}")
            outcomes.append("added")
        except ClientError as refused:
            outcomes.append(refused.code)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=add, args=(who, f"dish {n}")) for n, who in enumerate(people)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["added"] * 3 + ["too_many_items"] * 5
    assert Item.objects.filter(room=room).count() == 5
    assert Room.objects.get(pk=room.pk).version == before + 3  # a bump per item kept


def test_inside_an_outer_transaction_the_change_rolls_back_with_it(lunch) -> None:
    """A change made inside a caller's atomic block is that block's to commit: its own
    pipeline does not commit it, whichever database."""
    room, _, guest = lunch
    before = snapshot(room)
    with pytest.raises(RuntimeError), transaction.atomic():
        assert run(room, guest, "add:curry")["version"] == before[0] + 1
        raise RuntimeError("the caller fails after the change")
    assert snapshot(room) == before


# --- PostgreSQL: one round trip, COMMIT included -----------------------------------

ACTIONS = [
    "add:new dish",
    "add:new dish #tagged",
    "tag:ramen #soup",
    "avoid:soup",
    "remove:ramen",
    "vote:ramen",
    "vote:pho",
    "veto:ramen",
    "name:newname",
    "in",
    "out",
    "extend",
]


@pytest.mark.skipif("connection.vendor != 'postgresql'")
@pytest.mark.parametrize("frame", [*ACTIONS, "pick"])
def test_a_change_is_one_pipeline_commit_included(lunch, monkeypatch, frame: str) -> None:
    """Every statement of an action, its COMMIT too, goes out in one pipeline; a pick's
    decision is written after its draw, and Django's COMMIT ends that transaction."""
    room, host, _ = lunch
    seen: list[bool] = []
    open_at_commit: list[bool] = []
    commit = psycopg.Connection.commit

    def in_pipeline(execute, sql, params, many, context):
        seen.append(connection.connection._pipeline is not None)
        return execute(sql, params, many, context)

    def recording_commit(raw: psycopg.Connection) -> None:
        open_at_commit.append(raw.info.transaction_status != TransactionStatus.IDLE)
        commit(raw)

    monkeypatch.setattr(psycopg.Connection, "commit", recording_commit)
    with connection.execute_wrapper(in_pipeline):
        state = run(room, host, frame)
    outside = 1 if frame == "pick" else 0  # the decision is written once it is drawn
    assert seen.count(False) == outside
    assert seen.count(True) >= 3  # the lock, the change with the bump, the state read
    assert open_at_commit == [frame == "pick"]  # else committed in the pipeline already
    assert state == selectors.room_state(room=Room.objects.get(pk=room.pk))


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_refused_in_one_pipeline_nothing_was_written_so_nothing_rolls_back(lunch) -> None:
    """A refusal's pipeline committed an empty transaction: no ROLLBACK goes out, and the
    connection keeps its prepared statements (psycopg drops them all on a ROLLBACK)."""
    room, _, guest = lunch
    for _ in range(6):  # psycopg prepares a statement on its fifth run
        run(room, guest, "vote:ramen")
    prepared = len(connection.connection._prepared._names)
    assert refusal(room, guest, "add:pho") == "duplicate_item"
    assert connection.connection.info.transaction_status == TransactionStatus.IDLE
    assert len(connection.connection._prepared._names) == prepared > 0
    assert run(room, guest, "vote:ramen")["version"] == Room.objects.get(pk=room.pk).version


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_a_refused_add_is_one_round_trip(lunch, monkeypatch) -> None:
    """An add to a locked list, on a database thread: one pipeline with every statement in
    it says room_locked, and nothing was written (no second query to find the code)."""
    room, host, guest = lunch
    run(room, host, "lock")
    before = snapshot(room)
    pipelines: list[psycopg.Connection] = []
    seen: list[bool] = []
    pipeline = psycopg.Connection.pipeline

    def counting(raw: psycopg.Connection):
        pipelines.append(raw)
        return pipeline(raw)

    def in_pipeline(execute, sql, params, many, context):
        seen.append(connection.connection._pipeline is not None)
        return execute(sql, params, many, context)

    monkeypatch.setattr(psycopg.Connection, "pipeline", counting)
    with connection.execute_wrapper(in_pipeline):
        assert refusal(room, guest, "add:curry") == "room_locked"
    assert len(pipelines) == 1
    assert len(seen) == 3 and all(seen)  # the lock, the checks with the change, the state
    assert snapshot(room) == before


# --- After the pick (issue 30) -----------------------------------------------------


@pytest.mark.skipif("connection.vendor != 'postgresql'")
@pytest.mark.parametrize("frame", ["order:짬뽕", "order:", "paid", "unpaid"])
def test_orders_and_paid_marks_are_one_pipeline_commit_included(
    lunch, monkeypatch, frame: str
) -> None:
    """`order` and `paid` are everyday changes: every statement, COMMIT too, in one pipeline."""
    room, host, guest = lunch
    run(room, host, "pick")
    run(room, guest, "order:짜장면")
    run(room, host, "bill:20000")
    seen: list[bool] = []

    def in_pipeline(execute, sql, params, many, context):
        seen.append(connection.connection._pipeline is not None)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(in_pipeline):
        state = run(room, guest, frame)
    assert seen and all(seen)
    assert state == selectors.room_state(room=Room.objects.get(pk=room.pk))


@pytest.mark.parametrize("frame", ["order:짬뽕", "paid"])
def test_refused_after_the_pick_leaves_nothing(lunch, frame: str) -> None:
    """Before a decision an order is not_decided, without a bill a paid mark no_share: no bump."""
    room, _, guest = lunch
    before = snapshot(room)
    assert refusal(room, guest, frame) in {"not_decided", "no_share"}
    assert snapshot(room) == before


def test_bills_racing_leave_one_split_and_orders_racing_a_new_pick_are_for_one_place(
    lunch,
) -> None:
    """Six bills at once: one set of shares, summing to its total. Orders racing a new pick:
    each either was cleared by the decision or came after it, never kept from before."""
    room, host, guest = lunch
    people = [host, guest, *(join(room, f"p{n}") for n in range(4))]
    run(room, host, "pick")
    start = threading.Barrier(len(people))
    errors: list[BaseException] = []

    def at_once(action) -> None:
        try:
            start.wait()
            action()
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    def race(actions) -> None:
        threads = [threading.Thread(target=at_once, args=(action,)) for action in actions]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []

    race(
        [
            lambda who=who, n=n: run(room, who, f"bill:{10000 * (n + 1)}")
            for n, who in enumerate(people)
        ]
    )
    bill = selectors.room_state(room=Room.objects.get(pk=room.pk))["room"]["bill"]
    assert len({share["id"] for share in bill["shares"]}) == len(bill["shares"]) == 6
    assert sum(share["amount"] for share in bill["shares"]) == bill["total"]

    start = threading.Barrier(len(people))
    orderers, picker = people[1:], people[0]
    seen_decision: dict[int, str] = {}  # who ordered -> the decision their order's state shows

    def order(who: Participant) -> None:
        state = run(room, who, f"order:dish of {who.name}")
        seen_decision[who.pk] = state["room"]["decision"]["at"]

    race([lambda: run(room, picker, "pick")] + [lambda who=who: order(who) for who in orderers])
    state = selectors.room_state(room=Room.objects.get(pk=room.pk))
    assert state["room"]["bill"] is None
    final = state["room"]["decision"]["at"]
    # Kept: exactly the orders made after the new decision (their state showed it).
    assert sorted(o["id"] for o in state["room"]["orders"]) == sorted(
        pk for pk, at in seen_decision.items() if at == final
    )
