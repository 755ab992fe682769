"""Issue 29's "exactly once" under concurrency: many settlers at once, one decision.

Each process's clock (and an early finish) claims a due deadline or runoff with an UPDATE
that clears it where it is still set; here six threads, each with a connection of its own as
six processes would have, settle the same due room at the same moment."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from rooms import services
from rooms.models import Room
from rooms.services import deadlines, items
from tests.test_deadlines import act
from tests.test_services import join

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("channel_layer_memory"),
]


def at_once(settle: Callable[[], object], count: int = 6) -> list[object]:
    start = threading.Barrier(count)
    results: list[object] = []

    def run() -> None:
        try:
            start.wait()
            results.append(settle())
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_six_clocks_at_once_decide_a_deadline_once() -> None:
    room = services.room_create()
    host, guest = join(room, "host"), join(room, "guest")
    act(room, host, "add:pho")
    act(room, guest, "vote:pho")
    past = timezone.now() - timedelta(seconds=1)
    deadlines.deadline_set(room_id=room.pk, at=past, participant_id=None)
    before = Room.objects.get(pk=room.pk).version
    results = at_once(deadlines.rooms_due_settle)
    assert sorted(results) == [0, 0, 0, 0, 0, 1]
    after = Room.objects.get(pk=room.pk)
    assert after.decision_item == "pho" and after.decision_auto and after.deadline_at is None
    assert after.version == before + 1  # one claim, one bump


def test_six_early_finishes_at_once_end_a_runoff_once() -> None:
    room = services.room_create()
    host, guest = join(room, "host"), join(room, "guest")
    for item in ("pho", "ramen"):
        act(room, host, f"add:{item}")
    act(room, host, "vote:pho")
    act(room, guest, "vote:ramen")
    act(room, host, "pick:runoff")
    # Both vote without the settle the command runs after each change, then six at once.
    items.mark_toggle(room_id=room.pk, participant_id=host.pk, name="ramen", kind="vote")
    state = items.mark_toggle(room_id=room.pk, participant_id=guest.pk, name="ramen", kind="vote")
    assert deadlines.settle_needed(state)
    before = Room.objects.get(pk=room.pk).version
    results = at_once(lambda: deadlines.room_settle(room_id=room.pk, state=state))
    assert sum(result is not None for result in results) == 1
    after = Room.objects.get(pk=room.pk)
    assert after.decision_item == "ramen" and after.runoff_ends_at is None
    assert after.version == before + 1
