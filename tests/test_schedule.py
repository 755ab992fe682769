"""A lunch group's schedule (issue 31): the fields through the API, the scheduler with an
injected clock (which days open, when, once), the posts it makes, and the calendar feed."""

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from groups import scheduler
from groups import services as group_services
from groups.models import Group, GroupOpening
from rooms import services as room_services
from rooms import text
from rooms.models import Mark, Room
from rooms.services import deadlines as room_deadlines

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("channel_layer_memory")]

SEOUL = ZoneInfo("Asia/Seoul")
FRIDAY = datetime(2026, 12, 4, tzinfo=SEOUL).date()  # a Friday
SATURDAY = FRIDAY + timedelta(days=1)


def at(day, hhmm: str, zone=SEOUL) -> datetime:
    hours, minutes = map(int, hhmm.split(":"))
    return datetime(day.year, day.month, day.day, hours, minutes, tzinfo=zone).astimezone(UTC)


@pytest.fixture
def deadlines(monkeypatch) -> list[tuple[str, datetime]]:
    """The deadlines the scheduler sets through issue 29's service (which still runs)."""
    calls: list[tuple[str, datetime]] = []
    real = scheduler.deadline_set

    def recorded(*, room_id, at, participant_id):
        assert participant_id is None  # the system sets it, not a participant
        calls.append((room_id, at))
        return real(room_id=room_id, at=at, participant_id=participant_id)

    monkeypatch.setattr(scheduler, "deadline_set", recorded)
    return calls


@pytest.fixture
def local_webhooks(settings) -> None:
    settings.DEBUG = True
    settings.GROUP_WEBHOOK_ALLOW_PRIVATE = True
    settings.GROUP_WEBHOOK_BACKOFF_SECONDS = 0.01
    settings.PUBLIC_URL = "https://lunch.example"


@pytest.fixture
def group() -> Group:
    """A Korean team: lunch at 12:00 in Seoul, opens 11:40, decides 11:55, Monday to Friday."""
    group = group_services.group_create(name="김치찌개 팀", language="ko")
    group_services.group_update(group=group, schedule_changes={"lunch_time": "12:00"})
    return group


def api(client: Client, group: Group, body: dict):
    return client.patch(
        f"/api/groups/{group.slug}/", data=json.dumps(body), content_type="application/json"
    )


# --- The fields ------------------------------------------------------------------------


def test_defaults_follow_the_language_the_group_was_created_in(client) -> None:
    korean = group_services.group_create(name="팀", language="ko")
    english = group_services.group_create(name="Team", language="en")
    assert korean.timezone == "Asia/Seoul" and english.timezone == "UTC"
    shown = client.get(f"/api/groups/{english.slug}/").json()
    assert {key: shown[key] for key in ("lunch_time", "weekdays", "skip", "webhook_format")} == {
        "lunch_time": None,
        "weekdays": [1, 2, 3, 4, 5],
        "skip": [],
        "webhook_format": None,
    }
    assert (shown["open_minutes_before"], shown["decide_minutes_before"]) == (20, 5)


def test_patch_sets_the_schedule_and_get_shows_it(client, group) -> None:
    body = {
        "lunch_time": "11:30",
        "timezone": "Europe/Berlin",
        "weekdays": [5, 1, 3, 3],
        "open_minutes_before": 30,
        "decide_minutes_before": 10,
        "skip": ["2026-12-25", "2026-12-24", "2026-12-25"],
        "webhook_format": "jandi",
    }
    response = api(client, group, body)
    assert response.status_code == 200
    shown = response.json()
    assert shown["lunch_time"] == "11:30" and shown["timezone"] == "Europe/Berlin"
    assert shown["weekdays"] == [1, 3, 5]
    assert shown["skip"] == ["2026-12-24", "2026-12-25"]
    assert (shown["open_minutes_before"], shown["decide_minutes_before"]) == (30, 10)
    assert shown["webhook_format"] == "jandi"
    assert shown["calendar_url"].endswith(f"/g/{group.slug}/lunch.ics")
    assert client.get(f"/api/groups/{group.slug}/").json()["weekdays"] == [1, 3, 5]
    cleared = api(client, group, {"lunch_time": None, "webhook_format": None}).json()
    assert cleared["lunch_time"] is None and cleared["webhook_format"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"lunch_time": "12"},
        {"lunch_time": "24:00"},
        {"lunch_time": "12:60"},
        {"lunch_time": " 12:00"},
        {"lunch_time": 1200},
        {"timezone": "Mars/Olympus"},
        {"timezone": None},
        {"weekdays": [0]},
        {"weekdays": [8]},
        {"weekdays": [True]},
        {"weekdays": ["1"]},
        {"weekdays": 1},
        {"open_minutes_before": -1},
        {"open_minutes_before": 5.5},
        {"open_minutes_before": "20"},
        {"open_minutes_before": 5},  # not before the decision (5)
        {"decide_minutes_before": 20},  # not after the opening (20)
        {"open_minutes_before": 721},
        {"skip": ["2026-02-30"]},
        {"skip": ["25.12.2026"]},
        {"skip": "2026-12-25"},
        {"skip": [None]},
    ],
)
def test_bad_values_are_invalid_schedule_and_change_nothing(client, group, body) -> None:
    response = api(client, group, {**body, "name": "Renamed"})
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_schedule"}
    group.refresh_from_db()
    assert group.name == "김치찌개 팀" and group.open_minutes_before == 20


def test_an_unknown_webhook_format_is_invalid_webhook(client, group) -> None:
    response = api(client, group, {"webhook_format": "telegram"})
    assert response.status_code == 400 and response.json() == {"error": "invalid_webhook"}


def test_the_settings_form_sets_the_schedule(client, group) -> None:
    form = {
        "name": group.name,
        "lunch_time": "12:30",
        "timezone": "Asia/Seoul",
        "weekdays": ["1", "2", "3"],
        "open_minutes_before": "25",
        "decide_minutes_before": "5",
        "skip": "2026-12-25, 2027-01-01",
        "webhook_format": "dooray",
    }
    response = client.post(f"/g/{group.slug}/settings/", form)
    assert response.status_code == 303
    group.refresh_from_db()
    assert group.lunch_time.strftime("%H:%M") == "12:30" and group.weekdays == [1, 2, 3]
    assert group.skip == ["2026-12-25", "2027-01-01"] and group.webhook_format == "dooray"
    bad = client.post(f"/g/{group.slug}/settings/", {**form, "open_minutes_before": "many"})
    assert bad.status_code == 400
    group.refresh_from_db()
    assert group.open_minutes_before == 25


# --- The scheduler, on an injected clock -----------------------------------------------


def test_a_friday_opens_at_the_opening_time_and_sets_the_deadline(group, deadlines) -> None:
    assert scheduler.scheduler_tick(at(FRIDAY, "11:39")) == []
    [room] = scheduler.scheduler_tick(at(FRIDAY, "11:40"))
    assert room.group_id == group.pk and room.is_open
    assert deadlines == [(room.pk, at(FRIDAY, "11:55"))]
    assert Room.objects.get(pk=room.pk).deadline_at == at(FRIDAY, "11:55")
    assert GroupOpening.objects.get(group=group, date=FRIDAY).room_id == room.pk
    # Once: the next looks (this scheduler, another, or one restarted) open nothing.
    assert scheduler.scheduler_tick(at(FRIDAY, "11:40")) == []
    assert scheduler.scheduler_tick(at(FRIDAY, "11:54")) == []
    assert Room.objects.filter(group=group).count() == 1 and len(deadlines) == 1


def test_a_week_of_openings_is_kept(group, deadlines) -> None:
    """Each opening deletes the group's rows over a week old: the table does not grow."""
    for weeks in (2, 1, 0):
        day = FRIDAY - timedelta(weeks=weeks)
        assert len(scheduler.scheduler_tick(at(day, "11:40"))) == 1
        Room.objects.filter(group=group).update(closed_at=timezone.now())
    days = sorted(GroupOpening.objects.filter(group=group).values_list("date", flat=True))
    assert days == [FRIDAY - timedelta(weeks=1), FRIDAY]


def test_a_saturday_does_not_open(group, deadlines) -> None:
    for hhmm in ("11:40", "11:50"):
        assert scheduler.scheduler_tick(at(SATURDAY, hhmm)) == []
    assert not Room.objects.filter(group=group).exists() and deadlines == []


def test_a_skipped_date_does_not_open(group, deadlines) -> None:
    group_services.group_update(group=group, schedule_changes={"skip": [FRIDAY.isoformat()]})
    assert scheduler.scheduler_tick(at(FRIDAY, "11:45")) == []
    assert not Room.objects.filter(group=group).exists()


def test_started_after_the_opening_but_before_the_deadline_it_opens(group, deadlines) -> None:
    [room] = scheduler.scheduler_tick(at(FRIDAY, "11:54") + timedelta(seconds=59))
    assert deadlines == [(room.pk, at(FRIDAY, "11:55"))]


def test_started_at_or_after_the_deadline_the_day_is_skipped(group, deadlines) -> None:
    assert scheduler.scheduler_tick(at(FRIDAY, "11:55")) == []
    assert scheduler.scheduler_tick(at(FRIDAY, "13:00")) == []
    assert not Room.objects.filter(group=group).exists() and deadlines == []
    # ...and the next weekday opens as usual.
    assert len(scheduler.scheduler_tick(at(FRIDAY + timedelta(days=3), "11:41"))) == 1


def test_the_days_are_the_groups_own(group, deadlines) -> None:
    """Noon in New York is 02:00 the next day in Seoul: its Friday is New York's Friday."""
    group_services.group_update(group=group, schedule_changes={"timezone": "America/New_York"})
    new_york = ZoneInfo("America/New_York")
    assert scheduler.scheduler_tick(at(FRIDAY, "11:40")) == []  # 11:40 in Seoul
    assert len(scheduler.scheduler_tick(at(FRIDAY, "11:40", new_york))) == 1
    assert scheduler.scheduler_tick(at(SATURDAY, "11:40", new_york)) == []


def test_a_room_already_open_is_taken_not_doubled(group, deadlines) -> None:
    room, _ = group_services.group_room_open(group=group)
    assert [opened.pk for opened in scheduler.scheduler_tick(at(FRIDAY, "11:40"))] == [room.pk]
    assert Room.objects.filter(group=group).count() == 1
    assert deadlines == [(room.pk, at(FRIDAY, "11:55"))]


def test_a_deadline_the_host_set_or_a_decision_is_kept(group, deadlines) -> None:
    """A room opened by hand whose host set a deadline, or that has decided, is not given the
    schedule's deadline: it would move the host's, or draw again over the decision."""
    room, _ = group_services.group_room_open(group=group)
    Room.objects.filter(pk=room.pk).update(deadline_at=at(FRIDAY, "11:50"))
    assert [opened.pk for opened in scheduler.scheduler_tick(at(FRIDAY, "11:40"))] == [room.pk]
    assert deadlines == []
    Room.objects.filter(pk=room.pk).update(deadline_at=None, decided_at=at(FRIDAY, "11:30"))
    assert [
        opened.pk for opened in scheduler.scheduler_tick(at(FRIDAY + timedelta(days=7), "11:40"))
    ] == [room.pk]
    assert deadlines == []


def test_a_failed_opening_is_tried_again(group, monkeypatch) -> None:
    """An opening that fails rolls its row back with it: the next look opens the room."""

    real = scheduler.deadline_set

    def broken(*, room_id, at, participant_id):
        raise RuntimeError("the deadline's database went away")

    monkeypatch.setattr(scheduler, "deadline_set", broken)
    assert scheduler.scheduler_tick(at(FRIDAY, "11:40")) == []
    assert not GroupOpening.objects.exists() and not Room.objects.exists()
    monkeypatch.setattr(scheduler, "deadline_set", real)
    assert len(scheduler.scheduler_tick(at(FRIDAY, "11:41"))) == 1


def test_the_opening_is_posted_in_the_groups_language_and_format(
    group, deadlines, receiver_factory, local_webhooks, django_capture_on_commit_callbacks
) -> None:
    receiver = receiver_factory()
    group_services.group_update(group=group, webhook_format="slack")
    Group.objects.filter(pk=group.pk).update(webhook_url=receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        [room] = scheduler.scheduler_tick(at(FRIDAY, "11:40"))
    assert receiver.received.wait(30)
    url = f"https://lunch.example/rooms/{room.pk}/"
    assert receiver.requests[0]["body"] == {
        "text": f"오늘 점심 방이 열렸어요. 11:55에 메뉴를 정해요. {url}"
    }


def test_in_english_and_the_generic_payload(
    group, deadlines, receiver_factory, local_webhooks, django_capture_on_commit_callbacks
) -> None:
    receiver = receiver_factory()
    Group.objects.filter(pk=group.pk).update(webhook_url=receiver.url, language="en")
    with django_capture_on_commit_callbacks(execute=True):
        [room] = scheduler.scheduler_tick(at(FRIDAY, "11:45"))
    assert receiver.received.wait(30)
    body = receiver.requests[0]["body"]
    url = f"https://lunch.example/rooms/{room.pk}/"
    assert body["text"] == f"Today's lunch room is open: {url} (we decide at 11:55)"
    assert body["event"] == "room_opened" and body["room"] == room.pk
    assert body["decides_at"] == at(FRIDAY, "11:55").astimezone(SEOUL).isoformat()


def test_links_use_the_office_address_without_public_url(group, settings) -> None:
    settings.PUBLIC_URL = ""
    settings.GROUP_LINK_BASE_URL = "http://192.168.0.7:8000"
    assert scheduler.link_base_url() == "http://192.168.0.7:8000"


def test_the_command_looks_once_at_the_given_clock(group, deadlines, capsys) -> None:
    call_command("run_scheduler", "--once", "--now", at(FRIDAY, "11:40").isoformat())
    assert "opened room=" in capsys.readouterr().out
    assert Room.objects.filter(group=group).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_schedulers_at_once_open_one_room_and_post_one_message(
    group, deadlines, receiver_factory, local_webhooks, monkeypatch
) -> None:
    """Two schedulers (threads, each its own database connection) look at the same moment;
    the room's opening is slowed so that both are inside it together. One room, one post.
    On PostgreSQL the second's insert of the (group, date) row waits for the first's commit."""
    receiver = receiver_factory()
    Group.objects.filter(pk=group.pk).update(webhook_url=receiver.url)
    original = group_services.group_room_open

    def slow_open(**kwargs):
        time.sleep(0.2)
        return original(**kwargs)

    monkeypatch.setattr(group_services, "group_room_open", slow_open)
    barrier = threading.Barrier(2)
    opened: list[Room] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            opened.extend(scheduler.scheduler_tick(at(FRIDAY, "11:40")))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert len(opened) == 1 and Room.objects.filter(group=group).count() == 1
    assert GroupOpening.objects.filter(group=group).count() == 1 and len(deadlines) == 1
    assert receiver.received.wait(30)
    time.sleep(0.5)  # a second post, if there were one, would have arrived by now
    assert len(receiver.requests) == 1


@pytest.mark.django_db(transaction=True)
def test_the_room_decides_at_the_deadline_and_the_decision_is_posted_once(
    group, receiver_factory, local_webhooks, monkeypatch
) -> None:
    """The scheduler opens the room at 11:40 and sets 11:55; at 11:54 nothing is decided; past
    11:55 two processes' clocks (issue 29's rooms_due_settle, in two threads) settle it at
    once: one decision, and the chat gets the opening and the decision, one post each."""
    receiver = receiver_factory()
    Group.objects.filter(pk=group.pk).update(webhook_url=receiver.url, webhook_format="slack")
    clock = [at(FRIDAY, "11:40")]
    monkeypatch.setattr(timezone, "now", lambda: clock[0])  # every rule reads timezone.now
    [room] = scheduler.scheduler_tick(clock[0])
    minji, _ = room_services.participant_join(room_id=room.pk, channel_name="s.1", name="민지")
    joon, _ = room_services.participant_join(room_id=room.pk, channel_name="s.2", name="준")
    for who, name in ((minji, "짬뽕"), (joon, "김밥")):
        room_services.item_add(room_id=room.pk, participant_id=who.pk, name=name)
    for who in (minji, joon):
        room_services.mark_toggle(
            room_id=room.pk, participant_id=who.pk, name="짬뽕", kind=Mark.Kind.VOTE
        )
    clock[0] = at(FRIDAY, "11:54")
    assert room_deadlines.rooms_due_settle() == 0
    assert Room.objects.get(pk=room.pk).decided_at is None

    clock[0] = at(FRIDAY, "11:55") + timedelta(seconds=1)
    settled: list[int] = []
    barrier = threading.Barrier(2)

    def clock_round() -> None:
        try:
            barrier.wait()
            settled.append(room_deadlines.rooms_due_settle())
        finally:
            connection.close()

    threads = [threading.Thread(target=clock_round) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(settled) == [0, 1]
    decided = Room.objects.get(pk=room.pk)
    assert decided.decision_item == "짬뽕" and decided.decision_auto
    deadline = time.monotonic() + 30  # the webhook threads may be busy with earlier tests
    while len(receiver.requests) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # a second decision post, if there were one, would have arrived by now
    texts = [request["body"]["text"] for request in receiver.requests]
    assert len(texts) == 2, texts
    assert texts[0].startswith("오늘 점심 방이 열렸어요. 11:55에 메뉴를 정해요.")
    assert texts[1] == "[김치찌개 팀] 오늘 점심은 짬뽕! (정한 시간에 자동으로 뽑았어요)"


# --- The calendar feed ---------------------------------------------------------------


def test_the_calendar_has_the_next_lunches_and_the_last_decisions(client, group) -> None:
    now = timezone.now()
    Room.objects.create(
        group=group,
        created_at=now - timedelta(days=3),
        expires_at=now - timedelta(days=3),
        decision_item="제육볶음",
        decision_by="민지",
        decided_at=now - timedelta(days=3),
        decision_key=text.item_key("제육볶음"),
    )
    Room.objects.create(  # too old for the feed
        group=group,
        created_at=now - timedelta(days=40),
        expires_at=now - timedelta(days=40),
        decision_item="pho",
        decision_by="minji",
        decided_at=now - timedelta(days=40),
    )
    response = client.get(f"/g/{group.slug}/lunch.ics")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    calendar = icalendar.Calendar.from_ical(response.content)
    assert [str(zone["tzid"]) for zone in calendar.walk("VTIMEZONE")] == ["Asia/Seoul"]
    events = list(calendar.walk("VEVENT"))
    lunches = [e for e in events if str(e["uid"]).startswith("lunch-")]
    decisions = [str(e["summary"]) for e in events if str(e["uid"]).startswith("decision-")]
    assert decisions == ["제육볶음"]
    today = now.astimezone(SEOUL).date()
    expected = [
        today + timedelta(days=n)
        for n in range(14)
        if (today + timedelta(days=n)).isoweekday() <= 5
    ]
    starts = [e.decoded("dtstart") for e in lunches]
    assert [start.date() for start in starts] == expected
    assert all(start.astimezone(SEOUL).strftime("%H:%M") == "12:00" for start in starts)
    assert all(f"/g/{group.slug}/" in str(e["url"]) for e in lunches)
    assert "11:40" in str(lunches[0]["description"]) and "11:55" in str(lunches[0]["description"])


def test_no_schedule_no_lunches_and_unknown_groups_are_404(client) -> None:
    group = group_services.group_create(name="Team", language="en")
    calendar = icalendar.Calendar.from_ical(client.get(f"/g/{group.slug}/lunch.ics").content)
    assert list(calendar.walk("VEVENT")) == []
    assert client.get("/g/no-such-group/lunch.ics").status_code == 404
