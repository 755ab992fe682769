"""Lunch groups' rules, called directly: names, today's room, history, favourites, avoid_recent."""

import random
import re
import threading
import time
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from groups import selectors as group_selectors
from groups import services as group_services
from groups import webhooks
from groups.models import Group
from rooms import commands, selectors, services, text
from rooms.errors import ClientError
from rooms.models import Participant, Room
from rooms.protocol import parse_frame

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("channel_layer_memory")]

_channels = iter(range(1_000_000))


def join(room: Room, name: str) -> Participant:
    participant, _ = services.participant_join(
        room_id=room.pk, channel_name=f"group.test.{next(_channels)}", name=name
    )
    return participant


def decided_room(group: Group, item: str, at, by: str = "minji") -> Room:
    """A past room of the group that decided `item` at `at` (already expired)."""
    return Room.objects.create(
        group=group,
        created_at=at - timedelta(minutes=5),
        expires_at=at + timedelta(minutes=10),
        decision_item=item,
        decision_by=by,
        decided_at=at,
        decision_key=text.item_key(item),
    )


def error_code(call, *args, **kwargs) -> str:
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    return caught.value.code


@pytest.fixture
def group() -> Group:
    return group_services.group_create(name="Team Kimchi", language="en")


@pytest.fixture
def frozen_now(monkeypatch) -> timezone.datetime:
    """A fixed clock for the rules (timezone.now is what every rule reads)."""
    fixed = timezone.now().replace(microsecond=0)
    monkeypatch.setattr(timezone, "now", lambda: fixed)
    return fixed


# --- Groups ----------------------------------------------------------------------


def test_group_names_are_trimmed_and_limited() -> None:
    """A name is 1-40 visible characters after trimming; anything else is invalid_name."""
    assert group_services.group_create(name="  Team   Pho \u200b", language="ko").name == "Team Pho"
    assert len(group_services.group_create(name="가" * 40, language="ko").name) == 40
    for bad in ["", "   ", "\u200b\u3164", "x" * 41]:
        assert error_code(group_services.group_create, name=bad, language="ko") == "invalid_name"
    assert Group.objects.count() == 2


def test_group_slugs_are_random_and_url_safe() -> None:
    """Slugs carry at least 64 random bits in URL-safe characters."""
    slugs = {group_services.group_create(name="g", language="en").slug for _ in range(30)}
    assert len(slugs) == 30
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{16,}", slug) for slug in slugs)


def test_unknown_or_malformed_slug_is_group_not_found(group: Group) -> None:
    """A wrong slug answers group_not_found, whatever it looks like."""
    for slug in ["nope", "", "x" * 200, group.slug + "x", "a\x00b"]:
        assert error_code(group_selectors.group_get, slug=slug) == "group_not_found"
    assert group_selectors.group_get(slug=group.slug) == group


def test_update_renames_and_clears_the_webhook(group: Group, settings) -> None:
    """PATCH semantics: None leaves a field, "" clears the webhook, a bad value changes nothing."""
    settings.GROUP_WEBHOOK_ALLOW_PRIVATE = True
    group_services.group_update(group=group, webhook_url="https://127.0.0.1/hook")
    group_services.group_update(group=group, name=" Lunch crew ")
    group.refresh_from_db()
    assert (group.name, group.webhook_url) == ("Lunch crew", "https://127.0.0.1/hook")
    assert error_code(group_services.group_update, group=group, name="") == "invalid_name"
    group_services.group_update(group=group, webhook_url="")
    group.refresh_from_db()
    assert (group.name, group.webhook_url) == ("Lunch crew", "")


# --- Today's room ----------------------------------------------------------------


def test_group_room_open_returns_the_open_room_until_it_expires(group: Group) -> None:
    """The first call creates the room, the next ones get it; once it expires, a new one."""
    first, created = group_services.group_room_open(group=group)
    again, created_again = group_services.group_room_open(group=group)
    assert (created, created_again) == (True, False)
    assert again.pk == first.pk and first.group_id == group.pk
    Room.objects.filter(pk=first.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    later, created_later = group_services.group_room_open(group=group)
    assert created_later and later.pk != first.pk


@pytest.mark.django_db(transaction=True)
def test_at_most_one_open_room_under_concurrent_calls(group: Group, monkeypatch) -> None:
    """Many threads asking at once all get the same room; only one room is ever created.

    The lookup is slowed down so that, without the group's lock, every thread would see no
    room and create its own.
    """
    original = group_selectors.group_room_get_open

    def slow_lookup(*, group: Group) -> Room | None:
        room = original(group=group)
        time.sleep(0.05)
        return room

    monkeypatch.setattr(group_selectors, "group_room_get_open", slow_lookup)
    results: list[tuple[str, bool]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def call() -> None:
        try:
            barrier.wait()
            room, created = group_services.group_room_open(group=group)
            results.append((room.pk, created))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert len({room_id for room_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert Room.objects.filter(group=group).count() == 1


# --- Memory ----------------------------------------------------------------------


def test_history_is_newest_first_one_per_decided_room(group: Group, frozen_now) -> None:
    """Decided rooms within GROUP_HISTORY_DAYS, newest first; undecided and old ones are not."""
    decided_room(group, "pho", frozen_now - timedelta(days=2), by="joon")
    decided_room(group, "kimchi stew", frozen_now - timedelta(days=1))
    decided_room(group, "ancient", frozen_now - timedelta(days=31))
    Room.objects.create(group=group)  # today's room, nothing decided yet
    decided_room(group_services.group_create(name="other", language="en"), "sushi", frozen_now)
    history = group_selectors.group_history(group=group)
    assert [(h["item"], h["by"]) for h in history] == [("kimchi stew", "minji"), ("pho", "joon")]
    assert history[0]["at"] == (frozen_now - timedelta(days=1)).isoformat()
    assert Room.objects.filter(pk=history[0]["room"], group=group).exists()


def test_favorites_count_equal_items_together_most_first(group: Group, frozen_now) -> None:
    """Favourites fold like duplicates, show the newest spelling, most first, ties to the newest."""
    for days, item in [(9, "pho"), (8, "PHO "), (7, "Pho"), (6, "bibimbap"), (5, "sushi")]:
        decided_room(group, item, frozen_now - timedelta(days=days))
    decided_room(group, "sushi", frozen_now - timedelta(days=3))
    decided_room(group, "bibimbap", frozen_now - timedelta(days=4))
    decided_room(group, "tacos", frozen_now - timedelta(days=40))  # outside the window
    favorites = group_selectors.group_favorites(group=group)
    assert favorites == [
        {"item": "Pho", "count": 3},
        {"item": "sushi", "count": 2},
        {"item": "bibimbap", "count": 2},
    ]


# --- Picking with avoid_recent ---------------------------------------------------


@pytest.fixture
def today(group: Group, frozen_now) -> tuple[Room, Participant]:
    """Today's room with three ideas; the group had kimchi stew 2 days ago, pho 8 days ago."""
    decided_room(group, "Kimchi Stew", frozen_now - timedelta(days=2))
    decided_room(group, "pho", frozen_now - timedelta(days=8))
    room, _ = group_services.group_room_open(group=group)
    minji = join(room, "minji")
    for item in ["kimchi stew", "pho", "bibimbap"]:
        services.item_add(room_id=room.pk, participant_id=minji.pk, name=item)
    return room, minji


def test_avoid_recent_skips_what_the_group_had_this_week(today) -> None:
    """Over many draws, avoid_recent never lands on what the group decided within 7 days."""
    room, minji = today
    rng = random.Random(7)
    winners = {
        services.room_pick(room_id=room.pk, participant_id=minji.pk, avoid_recent=True, rng=rng)[
            "room"
        ]["decision"]["item"]
        for _ in range(40)
    }
    assert winners == {"pho", "bibimbap"}
    plain = {
        services.room_pick(room_id=room.pk, participant_id=minji.pk, rng=rng)["room"]["decision"][
            "item"
        ]
        for _ in range(40)
    }
    assert "kimchi stew" in plain


def test_avoid_recent_window_is_this_week_in_the_groups_time_zone(group: Group, settings) -> None:
    """ "This week" is today and the GROUP_RECENT_DAYS - 1 dates before it, in the group's zone
    (issue 31): the same weekday last week is free again whatever the hour, and the day's
    edge is the group's midnight, not UTC's. The setting moves the edge."""
    from zoneinfo import ZoneInfo

    seoul = ZoneInfo("Asia/Seoul")
    group_services.group_update(group=group, schedule_changes={"timezone": "Asia/Seoul"})
    now = datetime(2026, 12, 7, 11, 50, tzinfo=seoul)  # a Monday, 11:50 in Seoul
    decided_room(group, "tuesday", datetime(2026, 12, 1, 0, 0, 1, tzinfo=seoul))
    decided_room(group, "last monday", datetime(2026, 11, 30, 23, 59, tzinfo=seoul))
    today, _ = group_services.group_room_open(group=group)

    def recent() -> set[str]:
        return group_selectors.group_recent_keys(
            group_id=group.pk, exclude_room_id=today.pk, now=now
        )

    # Rolling 7 x 24 h would count last Monday 23:59 (6 days 12 hours ago): the week does not.
    assert recent() == {"tuesday"}
    # A group eating in Tokyo (Seoul's offset) has the same week.
    group_services.group_update(group=group, schedule_changes={"timezone": "Asia/Tokyo"})
    assert recent() == {"tuesday"}
    # In Los Angeles "now" is Sunday 18:50: Tuesday 00:00:01 in Seoul is Monday there, and
    # both are within its week (Monday 2026-11-30 is six days before that Sunday).
    group_services.group_update(group=group, schedule_changes={"timezone": "America/Los_Angeles"})
    assert recent() == {"tuesday", "last monday"}
    group_services.group_update(group=group, schedule_changes={"timezone": "Asia/Seoul"})
    settings.GROUP_RECENT_DAYS = 1  # today only
    assert recent() == set()


def test_avoid_recent_with_only_recent_items_is_nothing_to_pick(today) -> None:
    """When every candidate was decided lately: nothing_to_pick, and nothing changes."""
    room, minji = today
    services.item_remove(room_id=room.pk, participant_id=minji.pk, name="bibimbap")
    services.mark_toggle(room_id=room.pk, participant_id=minji.pk, name="pho", kind="veto")
    before = Room.objects.get(pk=room.pk)
    assert (
        error_code(services.room_pick, room_id=room.pk, participant_id=minji.pk, avoid_recent=True)
        == "nothing_to_pick"
    )
    after = Room.objects.get(pk=room.pk)
    assert (after.version, after.decided_at) == (before.version, None)


def test_avoid_recent_ignores_this_rooms_own_decision(today) -> None:
    """Picking again in the same room may land on its own earlier decision."""
    room, minji = today
    services.item_remove(room_id=room.pk, participant_id=minji.pk, name="pho")
    first = services.room_pick(room_id=room.pk, participant_id=minji.pk, avoid_recent=True)
    again = services.room_pick(room_id=room.pk, participant_id=minji.pk, avoid_recent=True)
    assert first["room"]["decision"]["item"] == again["room"]["decision"]["item"] == "bibimbap"


def test_avoid_recent_changes_nothing_in_a_room_of_no_group(group: Group) -> None:
    """Without a group there is no memory: the flag is accepted and draws as usual."""
    decided_room(group, "pho", timezone.now() - timedelta(days=1))
    room = services.room_create()
    minji = join(room, "minji")
    services.item_add(room_id=room.pk, participant_id=minji.pk, name="pho")
    state = services.room_pick(room_id=room.pk, participant_id=minji.pk, avoid_recent=True)
    assert state["room"]["decision"]["item"] == "pho"
    assert state["room"]["group"] is None


def test_pick_records_the_decision_key_and_shows_the_group(today, group: Group) -> None:
    """A pick stores the item's key (for later avoid_recent); the state names the group."""
    room, minji = today
    state = commands.command_run(
        room_id=room.pk, participant_id=minji.pk, command=parse_frame("pick:fresh")
    )
    assert state["room"]["group"] == {"slug": group.slug, "name": "Team Kimchi"}
    stored = Room.objects.get(pk=room.pk)
    assert stored.decision_key == text.item_key(stored.decision_item)
    assert selectors.room_state(room=stored)["room"]["group"]["slug"] == group.slug


# --- Webhook on a decision -------------------------------------------------------


def test_a_decision_queues_the_webhook_after_commit(
    group: Group, settings, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    """The pick queues one POST, run only on commit, with the decision in the group's language."""
    settings.GROUP_WEBHOOK_ALLOW_PRIVATE = True
    group_services.group_update(group=group, webhook_url="https://127.0.0.1/hook")
    Group.objects.filter(pk=group.pk).update(language="ko")
    sent = []
    monkeypatch.setattr(webhooks, "_deliver_job", lambda **kwargs: sent.append(kwargs))
    room, _ = group_services.group_room_open(group=group)
    minji = join(room, "minji")
    services.item_add(room_id=room.pk, participant_id=minji.pk, name="bibimbap")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.room_pick(room_id=room.pk, participant_id=minji.pk)
    assert sent == []  # nothing leaves before the commit
    for callback in callbacks:
        callback()
    webhooks._EXECUTOR.submit(lambda: None).result(5)
    assert len(sent) == 1
    payload = sent[0]["payload"]
    assert sent[0]["url"] == "https://127.0.0.1/hook"
    assert payload["group"] == {"slug": group.slug, "name": "Team Kimchi"}
    assert (payload["room"], payload["item"], payload["by"]) == (room.pk, "bibimbap", "minji")
    assert "bibimbap" in payload["text"] and "minji" in payload["text"]
    assert "점심" in payload["text"]  # Korean, the group's language
    assert payload["at"] == Room.objects.get(pk=room.pk).decided_at.isoformat()


def test_no_webhook_no_post_and_a_refused_pick_posts_nothing(
    group: Group, settings, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    """A group without a webhook posts nothing; a pick refused with nothing_to_pick neither."""
    sent = []
    monkeypatch.setattr(webhooks, "_deliver_job", lambda **kwargs: sent.append(kwargs))
    room, _ = group_services.group_room_open(group=group)
    minji = join(room, "minji")
    services.item_add(room_id=room.pk, participant_id=minji.pk, name="pho")
    with django_capture_on_commit_callbacks(execute=True):
        services.room_pick(room_id=room.pk, participant_id=minji.pk)
    settings.GROUP_WEBHOOK_ALLOW_PRIVATE = True
    group_services.group_update(group=group, webhook_url="https://127.0.0.1/hook")
    services.mark_toggle(room_id=room.pk, participant_id=minji.pk, name="pho", kind="veto")
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ClientError):
        services.room_pick(room_id=room.pk, participant_id=minji.pk)
    webhooks._EXECUTOR.submit(lambda: None).result(5)
    assert sent == []


# --- Purging ---------------------------------------------------------------------


def test_purge_keeps_decided_group_rooms_within_the_history(group: Group, settings) -> None:
    """purge_rooms deletes old rooms but keeps a group's decided ones for GROUP_HISTORY_DAYS."""
    now = timezone.now()
    kept = decided_room(group, "pho", now - timedelta(days=29))
    old = decided_room(group, "sushi", now - timedelta(days=31))
    undecided = Room.objects.create(group=group, expires_at=now - timedelta(days=3))
    loose = Room.objects.create(
        expires_at=now - timedelta(days=3), decision_item="x", decided_at=now - timedelta(days=3)
    )
    deleted = services.rooms_purge(older_than=timedelta(days=1))
    assert deleted == 3
    assert list(Room.objects.values_list("pk", flat=True)) == [kept.pk]
    assert not Room.objects.filter(pk__in=[old.pk, undecided.pk, loose.pk]).exists()
    assert [h["item"] for h in group_selectors.group_history(group=group)] == ["pho"]


# --- Cost ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_group_costs_a_room_few_queries(group: Group) -> None:
    """A group's room costs no query more per change (the state reads the group in its one
    query), and two more per fresh pick (the recent decisions, the group's webhook)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def count(call, **kwargs) -> int:
        with CaptureQueriesContext(connection) as queries:
            call(**kwargs)
        return len(queries.captured_queries)

    costs = {}
    for kind in ("plain", "group"):
        room = (
            group_services.group_room_open(group=group)[0]
            if kind == "group"
            else services.room_create()
        )
        who = join(room, "minji")
        add = dict(room_id=room.pk, participant_id=who.pk, name="pho")
        pick = dict(room_id=room.pk, participant_id=who.pk, avoid_recent=kind == "group")
        costs[kind] = (count(services.item_add, **add), count(services.room_pick, **pick))
    assert costs["group"][0] <= costs["plain"][0], costs
    assert costs["group"][1] <= costs["plain"][1] + 2, costs
