"""`announce`: a group's room posts its summary (orders, the bill) to the group's chat.

The post goes through groups/webhooks.py as a decision's does (after the commit, the address
checked, retries, the outcome stored); here to a real HTTP receiver on loopback.
"""

import threading
from datetime import timedelta

import pytest

from groups import services as group_services
from groups import webhooks
from groups.models import Group
from rooms import commands, services
from rooms.models import Participant, Room
from rooms.protocol import parse_frame
from tests.test_groups import error_code, join

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("channel_layer_memory")]


def say(room: Room, who: Participant, frame: str):
    return commands.command_run(room_id=room.pk, participant_id=who.pk, command=parse_frame(frame))


def deliveries_done() -> None:
    """Every queued delivery has run: a barrier on each of the webhook pool's threads."""
    barrier = threading.Barrier(webhooks._EXECUTOR._max_workers)
    waits = [webhooks._EXECUTOR.submit(barrier.wait, 10) for _ in range(barrier.parties)]
    for wait in waits:
        wait.result(15)


@pytest.fixture
def outcomes(monkeypatch) -> list[str]:
    """What the deliveries record for the group page (its own thread cannot write the test's
    database: SQLite's lock is the test transaction's)."""
    recorded: list[str] = []
    monkeypatch.setattr(webhooks, "_record", lambda group_id, status: recorded.append(status))
    return recorded


@pytest.fixture
def hooked(settings, receiver_factory, outcomes) -> tuple[Group, object]:
    """A Korean group whose webhook is a local receiver (plain http on loopback: DEBUG)."""
    settings.DEBUG = True
    settings.GROUP_WEBHOOK_ALLOW_PRIVATE = True
    settings.GROUP_WEBHOOK_BACKOFF_SECONDS = 0.01
    receiver = receiver_factory()
    group = group_services.group_create(name="점심팀", language="ko", webhook_url=receiver.url)
    return group, receiver


def test_one_announcement_per_call_with_the_rooms_summary(
    hooked, outcomes, django_capture_on_commit_callbacks
) -> None:
    group, receiver = hooked
    room, _ = group_services.group_room_open(group=group)
    minji, jun = join(room, "민지"), join(room, "준")
    say(room, minji, "add:홍콩반점")
    with django_capture_on_commit_callbacks(execute=True):
        say(room, minji, "pick")
    deliveries_done()
    receiver.requests.clear()  # the decision's own post
    say(room, minji, "order:짬뽕 곱빼기")
    say(room, jun, "order:짬뽕 곱빼기")
    state = say(room, minji, "bill:27000")
    assert Room.objects.get(pk=room.pk).language == "ko"  # the group's
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert say(room, jun, "announce") is None
    deliveries_done()
    assert receiver.requests == []  # nothing leaves before the commit
    for callback in callbacks:
        callback()
    deliveries_done()
    [request] = receiver.requests
    body = request["body"]
    assert body["text"] == state["room"]["summary"]
    assert body["text"].splitlines() == [
        "오늘 점심: 홍콩반점",
        "주문:",
        "- 짬뽕 곱빼기 \N{MULTIPLICATION SIGN}2",
        "합계 27,000원, 민지 님이 계산했어요",
        "민지 님께 보내 주세요:",
        "- 준 13,500원",
    ]
    assert body["group"] == {"slug": group.slug, "name": "점심팀"}
    assert body["room"] == room.pk
    assert outcomes[-1] == "delivered: HTTP 200"

    # Once a minute per room: the second call is refused and posts nothing.
    with django_capture_on_commit_callbacks(execute=True):
        assert error_code(say, room, minji, "announce") == "rate_limited"
    deliveries_done()
    assert len(receiver.requests) == 1
    Room.objects.filter(pk=room.pk).update(
        announced_at=Room.objects.get(pk=room.pk).announced_at - timedelta(seconds=61)
    )
    with django_capture_on_commit_callbacks(execute=True):
        say(room, minji, "announce")
    deliveries_done()
    assert len(receiver.requests) == 2


def test_refusals(hooked, django_capture_on_commit_callbacks) -> None:
    group, receiver = hooked
    room, _ = group_services.group_room_open(group=group)
    minji = join(room, "민지")
    with django_capture_on_commit_callbacks(execute=True):
        assert error_code(say, room, minji, "announce") == "not_decided"
    deliveries_done()
    assert receiver.requests == []
    assert Room.objects.get(pk=room.pk).announced_at is None  # a refusal writes nothing
    loose = services.room_create()
    alone = join(loose, "alone")
    say(loose, alone, "add:pho")
    say(loose, alone, "pick")
    assert error_code(say, loose, alone, "announce") == "not_in_group"


def test_a_group_without_webhook_posts_nothing(monkeypatch, django_capture_on_commit_callbacks):
    sent: list[dict] = []
    monkeypatch.setattr(webhooks, "_deliver_job", lambda **kwargs: sent.append(kwargs))
    group = group_services.group_create(name="Team", language="en")
    room, _ = group_services.group_room_open(group=group)
    minji = join(room, "minji")
    say(room, minji, "add:pho")
    with django_capture_on_commit_callbacks(execute=True):
        say(room, minji, "pick")
        say(room, minji, "announce")
    deliveries_done()
    assert sent == []
