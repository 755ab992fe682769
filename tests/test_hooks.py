"""rooms/hooks.py: the places another app joins a room's life, empty or filled."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models import Q
from django.utils import timezone

from rooms import hooks, services
from rooms.errors import ClientError
from rooms.models import Room
from tests.support.setups import join

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("channel_layer_memory")]


@pytest.fixture
def no_hooks(monkeypatch) -> None:
    """The hooks as rooms alone has them: nothing registered."""
    monkeypatch.setattr(hooks, "_candidate_filters", [])
    monkeypatch.setattr(hooks, "_rooms_kept", [])
    monkeypatch.setattr(hooks, "_page_contexts", [])


def test_groups_fills_every_hook() -> None:
    """With the groups app installed, each place rooms leaves is filled (groups/apps.py)."""
    from groups import selectors, views
    from groups import services as group_services

    assert hooks._candidate_filters == [selectors.candidates_fresh]
    assert hooks._rooms_kept == [selectors.rooms_kept_for_history]
    assert hooks._page_contexts == [views.room_page_context]
    assert group_services.decision_announce in [
        ref() for _, ref, *_ in hooks.room_decided.receivers
    ]


@pytest.mark.usefixtures("no_hooks")
def test_without_hooks_a_room_keeps_its_own_rules(client) -> None:
    """Nothing registered: avoid_recent draws from every candidate, purge keeps nothing, the
    room page shows no group."""
    room = services.room_create()
    minji = join(room, "minji")
    services.item_add(room_id=room.pk, participant_id=minji.pk, name="pho")
    state = services.room_pick(room_id=room.pk, participant_id=minji.pk, avoid_recent=True)
    assert state["room"]["decision"]["item"] == "pho"
    assert hooks.rooms_kept(timezone.now()) is None
    assert hooks.room_page_context(room) == {}
    assert client.get(f"/rooms/{room.pk}/").status_code == 200
    Room.objects.filter(pk=room.pk).update(expires_at=timezone.now() - timedelta(days=2))
    assert services.rooms_purge(older_than=timedelta(days=1)) == 1


@pytest.mark.usefixtures("no_hooks")
def test_registered_hooks_are_applied_in_turn() -> None:
    """Each filter narrows the candidates further; the kept rooms are the union."""
    hooks.candidates_filter_register(lambda candidates, *, room: candidates[1:])
    hooks.candidates_filter_register(lambda candidates, *, room: candidates[1:])
    assert hooks.candidates_fresh([("a", 1), ("b", 2), ("c", 3)], room=Room()) == [("c", 3)]
    hooks.rooms_kept_register(lambda now: Q(pk="x"))
    hooks.rooms_kept_register(lambda now: Q(pk="y"))
    assert hooks.rooms_kept(timezone.now()) == Q(pk="x") | Q(pk="y")


def test_room_decided_goes_out_on_commit_only_and_a_failing_receiver_harms_no_pick(
    django_capture_on_commit_callbacks,
) -> None:
    """The signal waits for the commit; a receiver that raises is logged, the pick stands."""
    heard: list[str] = []

    def listener(*, room: Room, **signal: object) -> None:
        heard.append(room.decision_item)

    def broken(**signal: object) -> None:
        raise RuntimeError("a receiver's bug")

    hooks.room_decided.connect(listener, dispatch_uid="test.listener")
    hooks.room_decided.connect(broken, dispatch_uid="test.broken")
    try:
        room = services.room_create()
        minji = join(room, "minji")
        services.item_add(room_id=room.pk, participant_id=minji.pk, name="pho")
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            state = services.room_pick(room_id=room.pk, participant_id=minji.pk)
        assert heard == []
        for callback in callbacks:
            callback()
        assert heard == ["pho"] and state["room"]["decision"]["item"] == "pho"
        services.mark_toggle(room_id=room.pk, participant_id=minji.pk, name="pho", kind="veto")
        with django_capture_on_commit_callbacks(execute=True), pytest.raises(ClientError):
            services.room_pick(room_id=room.pk, participant_id=minji.pk)
        assert heard == ["pho"]  # a refused pick decided nothing
    finally:
        hooks.room_decided.disconnect(dispatch_uid="test.listener")
        hooks.room_decided.disconnect(dispatch_uid="test.broken")
