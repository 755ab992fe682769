"""A command's idempotency key (`id`): seen again for the same participant, it is answered as
the first time and not applied again (rooms/services/receipts.py, rooms/services/runner.py).

Every path: a database thread (SQLite and PostgreSQL; the everyday changes' one statement on
PostgreSQL, the service path for the others) and, on PostgreSQL, the event loop.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, connections
from django.utils import timezone

from rooms import commands, everyday, services
from rooms.errors import ClientError
from rooms.models import CommandReceipt, Item, Mark, Participant, Room
from rooms.protocol import Command, parse_frame
from rooms.services import runner
from tests.support.setups import join

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("channel_layer_memory"),
]
on_postgresql = pytest.mark.skipif("connection.vendor != 'postgresql'")


def keyed(frame: dict, command_id: str) -> Command:
    return parse_frame(json.dumps({**frame, "id": command_id}))


def answer(room: Room, who: Participant, frame: dict, command_id: str) -> commands.Answer:
    return commands.command_answer(
        room_id=room.pk, participant_id=who.pk, command=keyed(frame, command_id)
    )


def refusal(room: Room, who: Participant, frame: dict, command_id: str) -> str:
    with pytest.raises(ClientError) as caught:
        answer(room, who, frame, command_id)
    return caught.value.code


def version_of(room: Room) -> int:
    return Room.objects.get(pk=room.pk).version


@pytest.fixture
def lunch() -> tuple[Room, Participant, Participant]:
    """A room with its host and a guest, and pho on the list."""
    room = services.room_create()
    host = join(room, "host", token=room.host_token)
    guest = join(room, "guest")
    services.item_add(room_id=room.pk, participant_id=guest.pk, name="pho")
    return room, host, guest


# Each toggles or adds: applied twice, the end state would differ from applied once.
SENT_TWICE = [
    {"action": "add", "item": "ramen"},
    {"action": "vote", "item": "pho"},
    {"action": "veto", "item": "pho"},
    {"action": "remove", "item": "pho"},
    {"action": "going", "going": True},
    {"action": "rename", "name": "minji"},
    {"action": "extend"},
    {"action": "pick"},
    {"action": "lock"},
]


@pytest.mark.parametrize("frame", SENT_TWICE, ids=[f["action"] for f in SENT_TWICE])
def test_the_same_id_twice_is_applied_once_and_answered_alike(lunch, frame) -> None:
    """On a database thread (both databases): one bump, the second answered with the first's
    version and marked a replay, the room as the first left it."""
    room, host, _ = lunch
    before = version_of(room)
    first = answer(room, host, frame, "cmd-1")
    after = version_of(room)
    marks = sorted(Mark.objects.values_list("participant", "kind"))
    items = sorted(Item.objects.values_list("key", flat=True))
    assert after == before + 1 and first.version == after and not first.replayed
    again = answer(room, host, frame, "cmd-1")
    assert again.replayed and again.version == first.version and again.state is None
    assert version_of(room) == after
    assert sorted(Mark.objects.values_list("participant", "kind")) == marks
    assert sorted(Item.objects.values_list("key", flat=True)) == items
    assert CommandReceipt.objects.count() == 1


def test_a_new_id_is_applied_again(lunch) -> None:
    """Only the id makes a resend: the same vote with another id toggles back."""
    room, _, guest = lunch
    answer(room, guest, {"action": "vote", "item": "pho"}, "a")
    answer(room, guest, {"action": "vote", "item": "pho"}, "b")
    assert not Mark.objects.exists()


def test_without_an_id_nothing_is_kept(lunch) -> None:
    room, _, guest = lunch
    commands.command_run(room_id=room.pk, participant_id=guest.pk, command=parse_frame("vote:pho"))
    assert not CommandReceipt.objects.exists()


def test_a_refused_command_replayed_gives_the_same_refusal(lunch) -> None:
    """The first answer is kept, not judged again: once ramen is on the list, the vote that was
    refused for naming no item is still refused, and still not applied."""
    room, host, guest = lunch
    assert refusal(room, guest, {"action": "vote", "item": "ramen"}, "v1") == "unknown_item"
    services.item_add(room_id=room.pk, participant_id=host.pk, name="ramen")
    before = version_of(room)
    assert refusal(room, guest, {"action": "vote", "item": "ramen"}, "v1") == "unknown_item"
    assert version_of(room) == before and not Mark.objects.exists()


def test_a_refused_host_action_replayed_gives_the_same_refusal(lunch) -> None:
    """The service path keeps refusals too: the guest's lock, not_host both times, and the
    refusal's writes (the bump) rolled back each time."""
    room, _, guest = lunch
    before = version_of(room)
    assert refusal(room, guest, {"action": "lock"}, "l1") == "not_host"
    assert refusal(room, guest, {"action": "lock"}, "l1") == "not_host"
    assert version_of(room) == before
    assert list(CommandReceipt.objects.values_list("outcome", "version")) == [("not_host", None)]


def test_participants_may_use_the_same_id(lunch) -> None:
    """An id is the participant's own: the host's and the guest's votes both count."""
    room, host, guest = lunch
    answer(room, host, {"action": "vote", "item": "pho"}, "same")
    second = answer(room, guest, {"action": "vote", "item": "pho"}, "same")
    assert not second.replayed
    assert Mark.objects.filter(kind="vote").count() == 2


def test_a_room_that_does_not_exist_keeps_no_receipt(lunch) -> None:
    _, _, guest = lunch
    command = keyed({"action": "pick"}, "x")
    with pytest.raises(ClientError) as caught:
        commands.command_answer(room_id="A" * 16, participant_id=guest.pk, command=command)
    assert caught.value.code == "room_not_found"
    assert not CommandReceipt.objects.exists()


def test_receipts_go_with_their_room(lunch) -> None:
    """purge_rooms deletes an expired room's receipts with it; other rooms' stay."""
    room, _, guest = lunch
    other = services.room_create()
    someone = join(other, "someone")
    answer(room, guest, {"action": "vote", "item": "pho"}, "v")
    answer(other, someone, {"action": "extend"}, "e")
    Room.objects.filter(pk=room.pk).update(expires_at=timezone.now() - timedelta(days=2))
    assert services.rooms_purge(older_than=timedelta(days=1)) == 1
    assert list(CommandReceipt.objects.values_list("participant", flat=True)) == [someone.pk]


def test_close_replayed_is_answered_without_a_version(lunch) -> None:
    room, host, _ = lunch
    first = answer(room, host, {"action": "close"}, "c")
    assert first.version is None
    again = answer(room, host, {"action": "close"}, "c")
    assert again.replayed and again.version is None


@pytest.mark.parametrize(
    ("who", "frame"), [(2, {"action": "vote", "item": "pho"}), (1, {"action": "pick"})]
)
def test_the_same_id_at_once_from_two_threads_is_applied_once(lunch, who, frame) -> None:
    """Two connections of one participant send the same command with the same id at the same
    moment (a tab and its reconnection): one applies it, the other is answered its receipt.
    The vote is the everyday statement's receipt on PostgreSQL, the pick the service path's."""
    room, guest = lunch[0], lunch[who]
    for attempt in range(5):  # a race: several tries, each a new id
        before = version_of(room)
        answers: list = []
        start = threading.Barrier(2)

        def send(command_id: str = f"race-{attempt}", answers: list = answers, start=start) -> None:
            try:
                start.wait()
                answers.append(answer(room, guest, frame, command_id))
            except Exception as exc:  # kept to be asserted on
                answers.append(exc)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=send) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert all(isinstance(a, commands.Answer) for a in answers), answers
        assert sorted(a.replayed for a in answers) == [False, True]
        assert {a.version for a in answers} == {before + 1}
        assert version_of(room) == before + 1
        if frame["action"] == "vote":  # toggled once per try
            assert Mark.objects.filter(kind="vote").count() == (attempt + 1) % 2


# --- PostgreSQL: the everyday change's own statement, on the loop and on a thread -------------


@on_postgresql
def test_the_everyday_statement_keeps_the_receipt_on_a_thread(lunch, monkeypatch) -> None:
    """On PostgreSQL an everyday change with an id goes through runner.keyed_change_run, not
    the service path's savepoint."""
    room, _, guest = lunch
    monkeypatch.setattr(
        "rooms.services.receipts.run_once", lambda *a, **k: pytest.fail("service path")
    )
    first = answer(room, guest, {"action": "vote", "item": "pho"}, "v")
    again = answer(room, guest, {"action": "vote", "item": "pho"}, "v")
    assert again.replayed and again.version == first.version
    assert Mark.objects.count() == 1


async def on_loop(room: Room, who: Participant, frame: dict, command_id: str):
    return await commands.change_from_loop(
        room_id=room.pk, participant_id=who.pk, command=keyed(frame, command_id)
    )


@on_postgresql
async def test_on_the_loop_the_same_id_twice_is_applied_once(lunch) -> None:
    room, _, guest = lunch
    before = await sync_to_async(version_of)(room)
    state = await on_loop(room, guest, {"action": "vote", "item": "pho"}, "v")
    assert state["version"] == before + 1
    replay = await on_loop(room, guest, {"action": "vote", "item": "pho"}, "v")
    assert replay == runner.Replay(before + 1)
    assert await sync_to_async(version_of)(room) == before + 1
    assert await Mark.objects.acount() == 1
    await everyday.pools_close()


@on_postgresql
async def test_on_the_loop_a_refusal_is_kept_and_replayed(lunch) -> None:
    room, host, guest = lunch
    with pytest.raises(ClientError, match="unknown_item"):
        await on_loop(room, guest, {"action": "veto", "item": "ramen"}, "x")
    await sync_to_async(services.item_add)(room_id=room.pk, participant_id=host.pk, name="ramen")
    with pytest.raises(ClientError, match="unknown_item"):
        await on_loop(room, guest, {"action": "veto", "item": "ramen"}, "x")
    assert not await Mark.objects.aexists()
    await everyday.pools_close()


@on_postgresql
async def test_applied_on_the_loop_then_resent_to_a_thread_is_a_replay(lunch) -> None:
    """The loop's answer was lost (everyday.Unanswered): the thread finds the receipt the
    loop's statement wrote, whichever change came between."""
    room, _, guest = lunch
    await on_loop(room, guest, {"action": "add", "item": "ramen"}, "a")
    await on_loop(room, guest, {"action": "add", "item": "udon"}, "b")  # writes its own receipt
    replay = await sync_to_async(answer)(room, guest, {"action": "add", "item": "ramen"}, "a")
    assert replay.replayed
    assert await Item.objects.acount() == 3
    await everyday.pools_close()


def test_postgresql_only_plan_refuses_sqlite() -> None:
    with pytest.raises(ValueError):
        runner.change_statements("A" * 16, by=None, vendor="sqlite", key=runner.CommandKey(1, "x"))


@on_postgresql
async def test_with_an_id_a_later_change_no_longer_hides_what_committed(lunch, monkeypatch) -> None:
    """test_everyday's limit, closed: the vote committed but its answer was lost, and another
    change from the loop committed before the thread looked. Without an id the room's
    last_change receipt is overwritten and the vote would be taken back; with one, the
    command's own receipt answers and the vote stays."""
    import psycopg

    room, host, guest = lunch
    sent = everyday._sent_in_one_transaction

    async def answer_lost_after_another(statements):
        await sent(statements)
        monkeypatch.undo()
        await on_loop(room, host, {"action": "add", "item": "ramen"}, "h1")
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(everyday, "_sent_in_one_transaction", answer_lost_after_another)
    before = await sync_to_async(version_of)(room)
    answer = await commands.command_dispatch(
        room_id=room.pk,
        participant_id=guest.pk,
        command=keyed({"action": "vote", "item": "pho"}, "v1"),
    )
    assert answer.replayed and answer.version == before + 1
    assert await sync_to_async(version_of)(room) == before + 2  # the vote and the ramen
    assert await Mark.objects.filter(participant=guest).acount() == 1
    await everyday.pools_close()


@on_postgresql
def test_on_the_service_path_the_lock_and_the_lookup_are_one_round_trip(lunch) -> None:
    """BEGIN, the room's lock and the receipt's lookup go out in one pipeline; the lookup is a
    statement of its own after the lock (its snapshot then sees a receipt committed while it
    waited: the race test above)."""
    room, host, _ = lunch
    seen: list[tuple[str, bool]] = []

    def recording(execute, sql, params, many, context):
        seen.append((sql, connection.connection._pipeline is not None))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(recording):
        answer(room, host, {"action": "lock"}, "l")
    lock, lookup = seen[0], seen[1]
    assert "FOR NO KEY UPDATE" in lock[0] and "rooms_commandreceipt" in lookup[0]
    assert lock[1] and lookup[1]
