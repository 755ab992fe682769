"""The everyday changes sent from the event loop (rooms/everyday.py, PostgreSQL).

They must be the services' changes exactly: the same rules, the same state, one bump each,
the same broadcast; a refusal is answered from the same round trip, a failed connection goes
to the service on a database thread, and nothing is applied twice.
"""

from __future__ import annotations

import asyncio
import json

import psycopg
import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection, connections

from rooms import commands, database, everyday, selectors, services
from rooms.errors import ClientError
from rooms.models import Item, Participant, Room
from rooms.protocol import parse_frame
from rooms.services import runner
from tests.support.setups import join

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("channel_layer_memory"),
]
on_postgresql = pytest.mark.skipif("connection.vendor != 'postgresql'")


@pytest.fixture
def lunch(db) -> tuple[Room, Participant, Participant]:
    """A room with its host and a guest, and one item on the list."""
    room = services.room_create()
    host = join(room, "host", token=room.host_token)
    guest = join(room, "guest")
    commands.command_run(room_id=room.pk, participant_id=guest.pk, command=parse_frame("add:pho"))
    return room, host, guest


async def on_loop(room: Room, who: Participant, frame: str) -> dict | None:
    return await commands.change_from_loop(
        room_id=room.pk, participant_id=who.pk, command=parse_frame(frame)
    )


async def version_of(room: Room) -> int:
    return (await Room.objects.aget(pk=room.pk)).version


async def state_on_thread(room: Room) -> dict:
    return await sync_to_async(lambda: selectors.room_state(room=Room.objects.get(pk=room.pk)))()


def no_thread(**kwargs) -> None:
    raise AssertionError("the change went to a database thread")


@on_postgresql
@pytest.mark.parametrize(
    "frame",
    ["add:ramen", "remove:pho", "vote:pho", "veto:pho", "name:minji", "in", "out", "extend"],
)
async def test_each_everyday_change_goes_from_the_loop(lunch, monkeypatch, frame: str) -> None:
    """One bump, and the state it returns is the state a service reads afterwards."""
    room, _, guest = lunch
    monkeypatch.setattr(database, "call", no_thread)
    before = await version_of(room)
    await commands.command_dispatch(
        room_id=room.pk, participant_id=guest.pk, command=parse_frame(frame)
    )
    state = await on_loop(room, guest, "extend")  # the loop's own answer, to compare
    assert await version_of(room) == before + 2
    assert state == await state_on_thread(room)  # same rows, same times (UTC), same order


@on_postgresql
async def test_the_state_reaches_the_room_group(lunch) -> None:
    """What the loop committed is published to the room's group, as the services' changes."""
    room, _, guest = lunch
    layer = get_channel_layer()
    listener = await layer.new_channel()
    await layer.group_add(room.channel_group, listener)
    state = await on_loop(room, guest, "add:bibimbap")
    message = await asyncio.wait_for(layer.receive(listener), 3)
    assert message["type"] == "room.event" and message["is_state"]
    assert message["version"] == state["version"]
    assert json.loads(message["text"]) == state
    assert [item["name"] for item in state["items"]] == ["pho", "bibimbap"]


@on_postgresql
@pytest.mark.parametrize(
    ("setup", "frame", "code"),
    [
        ("", "add:Pho", "duplicate_item"),
        ("", "remove:curry", "unknown_item"),
        ("", "vote:curry", "unknown_item"),
        ("lock", "add:curry", "room_locked"),
        ("kick", "vote:pho", "kicked"),
    ],
)
async def test_a_refusal_writes_nothing_and_the_loop_says_why(
    lunch, monkeypatch, setup: str, frame: str, code: str
) -> None:
    """The loop's own round trip names the rule that refused; no database thread is asked."""
    room, host, guest = lunch
    if setup == "lock":
        await sync_to_async(services.room_lock)(
            room_id=room.pk, participant_id=host.pk, locked=True
        )
    if setup == "kick":
        await sync_to_async(services.participant_kick)(
            room_id=room.pk, participant_id=host.pk, target_id=guest.pk
        )
    before = await version_of(room)
    with pytest.raises(ClientError) as refused_on_loop:
        await on_loop(room, guest, frame)
    assert refused_on_loop.value.code == code
    assert await version_of(room) == before
    monkeypatch.setattr(database, "call", no_thread)
    with pytest.raises(ClientError) as refused:
        await commands.command_dispatch(
            room_id=room.pk, participant_id=guest.pk, command=parse_frame(frame)
        )
    assert refused.value.code == code
    assert await version_of(room) == before


@on_postgresql
async def test_a_refused_add_on_the_loop_is_one_round_trip(lunch, monkeypatch) -> None:
    """An add to a locked list from the loop: one pipeline, nothing sent outside it, no
    database thread; the code is room_locked and nothing was written."""
    room, host, guest = lunch
    assert await on_loop(room, guest, "vote:pho") is not None  # the pool holds a connection
    await sync_to_async(services.room_lock)(room_id=room.pk, participant_id=host.pk, locked=True)
    before = await version_of(room)
    pipelines: list[psycopg.AsyncConnection] = []
    outside: list[str] = []
    pipeline, execute = psycopg.AsyncConnection.pipeline, psycopg.AsyncCursor.execute

    def counting(conn: psycopg.AsyncConnection):
        pipelines.append(conn)
        return pipeline(conn)

    async def recording(cursor: psycopg.AsyncCursor, query, params=None, **kwargs):
        if cursor.connection._pipeline is None:
            outside.append(str(query))
        return await execute(cursor, query, params, **kwargs)

    monkeypatch.setattr(psycopg.AsyncConnection, "pipeline", counting)
    monkeypatch.setattr(psycopg.AsyncCursor, "execute", recording)
    monkeypatch.setattr(database, "call", no_thread)
    with pytest.raises(ClientError) as refused:
        await commands.command_dispatch(
            room_id=room.pk, participant_id=guest.pk, command=parse_frame("add:curry")
        )
    monkeypatch.undo()
    assert refused.value.code == "room_locked"
    assert len(pipelines) == 1 and outside == []
    assert await version_of(room) == before
    assert not await Item.objects.filter(room=room, key="curry").aexists()


@on_postgresql
async def test_adds_racing_on_the_loop_keep_exactly_the_cap(lunch, settings) -> None:
    """Eight adds at once for three free places, each on a connection of the loop's pool
    (as many as DATABASE_THREADS): three kept, each with a version of its own, and five
    told too_many_items."""
    room, host, guest = lunch
    settings.ROOM_MAX_ITEMS = 4  # one is on the list
    people = [host, guest, *[await sync_to_async(join)(room, f"p{n}") for n in range(6)]]
    before = await version_of(room)
    outcomes = await asyncio.gather(
        *(on_loop(room, who, f"add:dish {n}") for n, who in enumerate(people)),
        return_exceptions=True,
    )
    kept = [state for state in outcomes if isinstance(state, dict)]
    assert len(kept) == 3
    refused = [o.code for o in outcomes if isinstance(o, ClientError)]
    assert refused == ["too_many_items"] * 5
    assert sorted(state["version"] for state in kept) == [before + 1, before + 2, before + 3]
    assert await Item.objects.filter(room=room).acount() == 4
    assert await version_of(room) == before + 3


@on_postgresql
async def test_a_failed_connection_goes_to_the_service_once(lunch, monkeypatch) -> None:
    """The loop's statements failed before they reached PostgreSQL: the service applies the
    change, once."""
    room, _, guest = lunch

    async def unreachable(statements):
        raise psycopg.OperationalError("connection refused")

    monkeypatch.setattr(everyday, "_sent_in_one_transaction", unreachable)
    before = await version_of(room)
    await commands.command_dispatch(
        room_id=room.pk, participant_id=guest.pk, command=parse_frame("add:curry")
    )
    assert await version_of(room) == before + 1
    assert await Item.objects.filter(room=room, key="curry").aexists()


@on_postgresql
async def test_a_connection_the_server_ended_is_replaced(lunch) -> None:
    """PostgreSQL ended the pool's connection (a restart, pg_terminate_backend): the pool's
    check sees it at checkout and opens a new one; the change is applied once."""
    room, _, guest = lunch
    assert await on_loop(room, guest, "vote:pho") is not None  # the pool holds a connection
    pool = await everyday._pool()
    async with pool.connection() as held:
        pid = held.info.backend_pid
    await sync_to_async(terminate)(pid)
    before = await version_of(room)
    state = await on_loop(room, guest, "vote:pho")
    assert state is not None and state["version"] == before + 1
    assert state["items"][0]["votes"] == 0  # taken back: applied once
    async with pool.connection() as replaced:
        assert replaced.info.backend_pid != pid


@on_postgresql
async def test_changes_go_from_the_loop_with_a_thousand_sockets_open(
    lunch, many_descriptors, monkeypatch
) -> None:
    """The loop's pool opens its connection past descriptor 1024 and still serves every
    change from the loop (its check used select(), which refused such descriptors)."""
    room, _, guest = lunch
    monkeypatch.setattr(database, "call", no_thread)
    for frame in ("vote:pho", "add:ramen", "vote:ramen"):
        await commands.command_dispatch(
            room_id=room.pk, participant_id=guest.pk, command=parse_frame(frame)
        )
    pool = await everyday._pool()
    async with pool.connection() as conn:
        assert conn.fileno() >= 1024
    votes = {i["name"]: i["votes"] for i in (await state_on_thread(room))["items"]}
    assert votes == {"pho": 1, "ramen": 1}


def terminate(pid: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])


@on_postgresql
async def test_a_failing_statement_rolls_back_and_the_service_decides(lunch, monkeypatch) -> None:
    """A statement that fails aborts the pipeline, COMMIT included: nothing is written, the
    pool rolls the connection back, and the service runs the change."""
    room, _, guest = lunch
    statements = runner.change_statements

    def failing(room_id, change, *, by, vendor, receipt=None, key=None):
        plan = statements(room_id, change, by=by, vendor=vendor, receipt=receipt, key=key)
        lock, change_and_bump, _ = plan.sql
        return runner.Plan([lock, change_and_bump, ("SELECT 1 / 0", {})], plan.verdict)

    monkeypatch.setattr(everyday, "change_statements", failing)  # the loop's only
    before = await version_of(room)
    with pytest.raises(everyday.Unanswered):
        await on_loop(room, guest, "add:curry")
    assert await version_of(room) == before  # the add before the failure was not committed
    await commands.command_dispatch(
        room_id=room.pk, participant_id=guest.pk, command=parse_frame("add:curry")
    )
    assert await version_of(room) == before + 1  # the service applied it: its receipt was not in
    assert await Item.objects.filter(room=room, key="curry").acount() == 1


@on_postgresql
@pytest.mark.parametrize(
    ("frame", "applied_once"),
    [
        pytest.param("vote:pho", lambda items: [i["votes"] for i in items] == [1], id="vote"),
        pytest.param(
            "add:curry", lambda items: [i["name"] for i in items] == ["pho", "curry"], id="add"
        ),
        pytest.param("remove:pho", lambda items: items == [], id="remove"),
    ],
)
async def test_a_change_that_committed_unanswered_is_not_applied_again(
    lunch, monkeypatch, frame: str, applied_once
) -> None:
    """The connection failed after the COMMIT went out and the change went through: the
    service finds its receipt and sends the room's state instead of applying it a second
    time (which would take a vote back, or refuse an add as a duplicate and a removal as
    an unknown item, though both had been done)."""
    room, _, guest = lunch
    sent = everyday._sent_in_one_transaction

    async def answer_lost(statements):
        await sent(statements)
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(everyday, "_sent_in_one_transaction", answer_lost)
    layer = get_channel_layer()
    await layer.group_add(room.channel_group, "watcher")
    before = await version_of(room)
    await commands.command_dispatch(
        room_id=room.pk, participant_id=guest.pk, command=parse_frame(frame)
    )
    assert await version_of(room) == before + 1
    state = await state_on_thread(room)
    assert applied_once(state["items"])
    event = await asyncio.wait_for(layer.receive("watcher"), timeout=5)
    assert json.loads(event["text"]) == state  # the state nobody had been sent


@on_postgresql
async def test_a_later_change_from_the_loop_hides_the_receipt(lunch, monkeypatch) -> None:
    """The limit: if another change from an event loop commits before the service looks, the
    receipt is gone and the service runs the change again; an add is then refused as a
    duplicate, and the list still holds it once."""
    room, host, guest = lunch
    sent = everyday._sent_in_one_transaction

    async def answer_lost_after_another(statements):
        await sent(statements)
        monkeypatch.undo()
        await on_loop(room, host, "add:ramen")
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(everyday, "_sent_in_one_transaction", answer_lost_after_another)
    before = await version_of(room)
    with pytest.raises(ClientError) as refused:
        await commands.command_dispatch(
            room_id=room.pk, participant_id=guest.pk, command=parse_frame("add:curry")
        )
    assert refused.value.code == "duplicate_item"
    assert await version_of(room) == before + 2  # the curry and the ramen
    assert await Item.objects.filter(room=room, key="curry").acount() == 1


async def test_not_on_the_loop_when_switched_off_or_on_sqlite(lunch, settings) -> None:
    """SQLite runs in process on its one thread; ROOM_CHANGES_ON_EVENT_LOOP=0 keeps the
    threads on PostgreSQL too."""
    room, _, guest = lunch
    if connection.vendor == "postgresql":
        settings.ROOM_CHANGES_ON_EVENT_LOOP = False
    before = await version_of(room)
    assert await on_loop(room, guest, "add:curry") is None
    assert await version_of(room) == before


@on_postgresql
async def test_commands_that_are_not_everyday_go_to_the_services(lunch) -> None:
    room, host, _ = lunch
    for frame in ("lock", "pick", "kick:1"):
        assert await on_loop(room, host, frame) is None


@on_postgresql
@pytest.mark.parametrize(("threshold", "expected"), [(5, 5), (0, None)])
def test_the_loop_prepares_statements_as_the_threads_do(monkeypatch, threshold, expected) -> None:
    """DATABASE_PREPARE_THRESHOLD reaches the loop's connections; 0 (PgBouncer in transaction
    mode without prepared statements) prepares nothing there either."""
    settings_dict = connections["default"].settings_dict
    options = {k: v for k, v in settings_dict["OPTIONS"].items() if k != "prepare_threshold"}
    if threshold:  # as lunchsite/settings.py sets it
        options["prepare_threshold"] = threshold
    monkeypatch.setitem(settings_dict, "OPTIONS", options)
    kwargs = everyday._connection_kwargs()
    assert kwargs["prepare_threshold"] == expected
    assert kwargs["autocommit"] is True and "TimeZone=UTC" in kwargs["options"]
