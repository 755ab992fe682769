"""Blind votes and can't eat (issue 29), through the services: each rule and each refusal.

Run on SQLite and on PostgreSQL (DATABASE_URL); the WebSocket side is in
tests/test_consumer_blind.py.
"""

from __future__ import annotations

import json
import random
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.test import Client
from django.utils import timezone

from rooms import commands, selectors, services
from rooms.errors import ClientError
from rooms.models import Item, Participant, Room
from rooms.protocol import parse_frame
from rooms.services.picks import pick_candidates
from tests.support.setups import join

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("channel_layer_memory"),
]


def run(room: Room, who: Participant, frame: str) -> dict:
    state = commands.command_run(room_id=room.pk, participant_id=who.pk, command=parse_frame(frame))
    assert state is not None
    return state


def refusal(room: Room, who: Participant, frame: str) -> str:
    with pytest.raises(ClientError) as caught:
        run(room, who, frame)
    return caught.value.code


def item(state: dict, name: str) -> dict:
    return next(entry for entry in state["items"] if entry["name"] == name)


def person(state: dict, who: Participant) -> dict:
    return next(entry for entry in state["participants"] if entry["id"] == who.pk)


def snapshot(room: Room) -> tuple:
    fresh = Room.objects.get(pk=room.pk)
    return (
        fresh.version,
        fresh.blind,
        sorted(Item.objects.filter(room=room).values_list("key", "tags")),
        sorted(Participant.objects.filter(room=room).values_list("name", "avoids")),
    )


@pytest.fixture
def room() -> Room:
    return services.room_create()


@pytest.fixture
def host(room: Room) -> Participant:
    return join(room, "host", token=room.host_token)


@pytest.fixture
def guest(room: Room, host: Participant) -> Participant:
    return join(room, "guest")


# --- Tags on items -----------------------------------------------------------------


def test_add_with_tags_in_the_shorthand_and_in_json(room: Room, host: Participant) -> None:
    """`add:짬뽕 #해산물 #매운` is the item 짬뽕 with two tags; JSON says the same with "tags";
    every item carries "tags", an item added without any has []."""
    state = run(room, host, "add:짬뽕 #해산물 #매운")
    assert item(state, "짬뽕")["tags"] == ["해산물", "매운"]
    frame = {"action": "add", "item": "pho", "tags": [" Beef ", "soup"]}
    state = run(room, host, json.dumps(frame))
    assert item(state, "pho")["tags"] == ["Beef", "soup"]
    state = run(room, host, "add:bibimbap")
    assert item(state, "bibimbap")["tags"] == []
    assert state == selectors.room_state(room=Room.objects.get(pk=room.pk))


def test_tags_are_cleaned_and_compared_as_items_are(room: Room, host: Participant) -> None:
    """Whitespace folded, invisible characters dropped, and one tag per comparison key (the
    first spelling kept): `#Sea`, `#SEA` and `#sea\u200b` are one tag."""
    state = run(room, host, json.dumps({"action": "add", "item": "x", "tags": ["Sea", "SEA "]}))
    assert item(state, "x")["tags"] == ["Sea"]
    state = run(room, host, "add:y #sea\u200b #hot")
    assert item(state, "y")["tags"] == ["sea", "hot"]


@pytest.mark.parametrize(
    "frame",
    [
        "add:짬뽕 #a #b #c #d",  # more than 3
        "add:짬뽕 #" + "가" * 13,  # longer than 12
        "add:짬뽕 #",  # empty
        json.dumps({"action": "add", "item": "짬뽕", "tags": ["\u200b"]}),  # nothing visible
        json.dumps({"action": "add", "item": "짬뽕", "tags": ["a", "b", "c", "d"]}),
    ],
)
def test_bad_tags_on_add_are_invalid_tag_and_add_nothing(
    room: Room, host: Participant, frame: str
) -> None:
    before = snapshot(room)
    assert refusal(room, host, frame) == "invalid_tag"
    assert snapshot(room) == before


def test_twelve_characters_and_three_tags_are_allowed(room: Room, host: Participant) -> None:
    state = run(room, host, "add:짬뽕 #" + "가" * 12 + " #b #c")
    assert item(state, "짬뽕")["tags"] == ["가" * 12, "b", "c"]


def test_tags_that_are_not_a_list_of_strings_are_bad_messages() -> None:
    for tags in ["해산물", [1], None, {"a": 1}]:
        frame = json.dumps({"action": "tag", "item": "x", "tags": tags})
        with pytest.raises(ClientError) as caught:
            parse_frame(frame)
        assert caught.value.code == "bad_message", tags


def test_tag_replaces_and_clears_an_item_s_tags(room: Room, host: Participant, guest) -> None:
    """Anyone may tag: `tag:짬뽕 #해산물` replaces the tags, `tag:짬뽕` (or []) clears them."""
    run(room, host, "add:짬뽕 #매운")
    state = run(room, guest, "tag:짬뽕 #해산물 #면")
    assert item(state, "짬뽕")["tags"] == ["해산물", "면"]
    state = run(room, guest, "tag:짬뽕")
    assert item(state, "짬뽕")["tags"] == []
    run(room, guest, json.dumps({"action": "tag", "item": "짬뽕", "tags": ["해산물"]}))
    state = run(room, guest, json.dumps({"action": "tag", "item": "짬뽕", "tags": []}))
    assert item(state, "짬뽕")["tags"] == []


def test_tag_refusals(room: Room, host: Participant, guest: Participant) -> None:
    run(room, host, "add:짬뽕 #매운")
    before = snapshot(room)
    assert refusal(room, guest, "tag:우동 #면") == "unknown_item"
    assert refusal(room, guest, "tag:짬뽕 #a #b #c #d") == "invalid_tag"
    assert refusal(room, guest, "tag:짬뽕 #" + "x" * 13) == "invalid_tag"
    assert snapshot(room) == before


def test_a_locked_list_can_still_be_tagged(room: Room, host: Participant, guest) -> None:
    """The lock is about what is on the list, not about what is in a dish."""
    run(room, host, "add:짬뽕")
    run(room, host, "lock")
    assert item(run(room, guest, "tag:짬뽕 #해산물"), "짬뽕")["tags"] == ["해산물"]


# --- What I can't eat ----------------------------------------------------------------


def test_avoid_sets_and_clears_what_i_cannot_eat(room: Room, host: Participant) -> None:
    state = run(room, host, "avoid:해산물, 매운")
    assert person(state, host)["avoids"] == ["해산물", "매운"]
    state = run(room, host, "avoid:#Seafood")  # a # in front is allowed
    assert person(state, host)["avoids"] == ["Seafood"]
    state = run(room, host, json.dumps({"action": "avoid", "tags": ["a", "b", "c", "d", "e"]}))
    assert person(state, host)["avoids"] == ["a", "b", "c", "d", "e"]
    state = run(room, host, "avoid:")
    assert person(state, host)["avoids"] == []


def test_avoid_refusals(room: Room, host: Participant) -> None:
    run(room, host, "avoid:해산물")
    before = snapshot(room)
    assert refusal(room, host, "avoid:a,b,c,d,e,f") == "invalid_tag"
    assert refusal(room, host, "avoid:" + "x" * 13) == "invalid_tag"
    assert refusal(room, host, json.dumps({"action": "avoid", "tags": [""]})) == "invalid_tag"
    assert snapshot(room) == before


def test_avoids_are_kept_across_leave_and_rejoin(room: Room, host: Participant) -> None:
    """They live on the participant: a rejoin by session (or token) finds them again."""
    minji, _ = services.participant_join(
        room_id=room.pk, channel_name="tab-1", session_key="s" * 32, name="minji"
    )
    run(room, minji, "avoid:해산물")
    services.participant_leave(channel_name="tab-1")
    state = selectors.room_state(room=Room.objects.get(pk=room.pk))
    assert minji.pk not in [p["id"] for p in state["participants"]]
    again, state = services.participant_join(
        room_id=room.pk, channel_name="tab-2", session_key="s" * 32
    )
    assert again.pk == minji.pk
    assert person(state, minji)["avoids"] == ["해산물"]


def test_an_item_shows_who_cannot_eat_it(room: Room, host: Participant, guest) -> None:
    """Tags and avoids compare as items do (case folded); an untagged item is avoided by
    nobody; avoided_by and avoider_ids are in the same order."""
    run(room, host, "add:짬뽕 #Seafood #매운")
    run(room, host, "add:짜장면 #면")
    run(room, guest, "avoid:SEAFOOD")
    state = run(room, host, "avoid:매운")
    assert item(state, "짬뽕")["avoided_by"] == ["host", "guest"]
    assert item(state, "짬뽕")["avoider_ids"] == [host.pk, guest.pk]
    assert item(state, "짜장면")["avoided_by"] == []
    state = run(room, host, "tag:짬뽕 #면")  # retagged: nobody avoids it now
    assert item(state, "짬뽕")["avoided_by"] == []


# --- Every draw skips what someone can't eat ---------------------------------------


def test_the_draw_skips_an_item_someone_online_cannot_eat(room: Room, host, guest) -> None:
    """The most-voted item carries a tag the guest avoids: the pick never draws it."""
    run(room, host, "add:짬뽕 #해산물")
    run(room, host, "add:짜장면")
    run(room, host, "vote:짬뽕")
    run(room, guest, "vote:짬뽕")
    run(room, guest, "avoid:해산물")
    for _ in range(5):
        state = run(room, host, "pick")
        assert state["room"]["decision"]["item"] == "짜장면"


def test_nothing_anyone_can_eat_is_nothing_to_pick(room: Room, host, guest) -> None:
    run(room, host, "add:짬뽕 #해산물")
    run(room, host, "add:탕수육 #튀김")
    run(room, host, "avoid:해산물")
    run(room, guest, "avoid:튀김")
    before = Room.objects.get(pk=room.pk).version
    assert refusal(room, guest, "pick:weighted") == "nothing_to_pick"
    fresh = Room.objects.get(pk=room.pk)
    assert (fresh.decision, fresh.version) == (None, before)
    run(room, guest, "avoid:")  # the guest can eat fried food after all
    assert run(room, guest, "pick")["room"]["decision"]["item"] == "탕수육"


def test_those_coming_count_online_or_not_and_nobody_else(room: Room, host, guest) -> None:
    """Someone who said `in` and went offline still can't eat it; someone who left without
    saying they are coming does not count."""
    coming, _ = services.participant_join(room_id=room.pk, channel_name="c", name="coming")
    leaving, _ = services.participant_join(room_id=room.pk, channel_name="l", name="leaving")
    run(room, host, "add:짬뽕 #해산물")
    run(room, host, "add:우동 #면")
    run(room, host, "add:김밥")
    run(room, coming, "in")
    run(room, coming, "avoid:해산물")
    run(room, leaving, "avoid:면")
    services.participant_leave(channel_name="c")
    services.participant_leave(channel_name="l")
    state = selectors.room_state(room=Room.objects.get(pk=room.pk))
    assert item(state, "짬뽕")["avoided_by"] == ["coming"]
    assert item(state, "우동")["avoided_by"] == []
    fresh = Room.objects.get(pk=room.pk)
    assert sorted(pick_candidates(fresh, state)) == [("김밥", 0), ("우동", 0)]
    run(room, coming, "out")  # not coming (and offline): no longer counted
    state = selectors.room_state(room=Room.objects.get(pk=room.pk))
    assert item(state, "짬뽕")["avoided_by"] == []


def test_pick_candidates_is_the_one_filter_of_every_draw(room: Room, host, guest) -> None:
    """Vetoed, avoided, and (with avoid_recent in a room without a group) nothing else; the
    votes are the real ones even in a blind room."""
    run(room, host, "add:a #해산물")
    run(room, host, "add:b")
    run(room, host, "add:c")
    run(room, host, "veto:b")
    run(room, guest, "avoid:해산물")
    run(room, host, "blind")
    state = run(room, guest, "vote:c")
    fresh = Room.objects.get(pk=room.pk)
    assert pick_candidates(fresh, state) == [("c", 1)]
    assert pick_candidates(fresh, state, avoid_recent=True) == [("c", 1)]


# --- Blind votes ---------------------------------------------------------------------


def _listen(room: Room) -> str:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(room.channel_group, channel)
    return channel


def _received(channel: str) -> list[dict]:
    """Every message the room's group sent so far (the in-memory layer)."""
    layer = get_channel_layer()
    messages = []
    while layer.channels.get(channel):
        messages.append(async_to_sync(layer.receive)(channel))
    return messages


def test_blind_is_the_host_s(room: Room, host: Participant, guest: Participant) -> None:
    before = snapshot(room)
    assert refusal(room, guest, "blind") == "not_host"
    assert refusal(room, guest, json.dumps({"action": "blind", "blind": True})) == "not_host"
    assert snapshot(room) == before
    assert run(room, host, "blind")["room"]["blind"] is True
    assert refusal(room, guest, "unblind") == "not_host"
    assert (
        run(room, host, json.dumps({"action": "blind", "blind": False}))["room"]["blind"] is False
    )
    assert run(room, host, "BLIND")["room"]["blind"] is True
    assert run(room, host, "unblind")["room"]["blind"] is False


def test_a_blind_room_s_states_show_no_votes_until_the_decision(
    room: Room, host: Participant, guest: Participant, django_capture_on_commit_callbacks
) -> None:
    """Every broadcast state of a blind, undecided room: votes null, no voters, no ids;
    vetoes stay. Its message carries each one's own votes for the consumers (`mine`). The
    pick's `picked` and state then show everything."""
    run(room, host, "add:pho")
    run(room, host, "add:ramen")
    run(room, host, "vote:pho")
    channel = _listen(room)
    with django_capture_on_commit_callbacks(execute=True):
        run(room, host, "blind")
        run(room, guest, "vote:pho")
        run(room, guest, "vote:ramen")
        run(room, guest, "veto:ramen")
    messages = _received(channel)
    assert len(messages) == 4
    for message in messages:
        state = json.loads(message["text"])
        assert state["room"]["blind"] is True
        for entry in state["items"]:
            assert (entry["votes"], entry["voters"], entry["voter_ids"]) == (None, [], [])
    assert json.loads(messages[-1]["text"])["items"][1]["vetoed_by"] == ["guest"]
    assert messages[-1]["mine"] == {str(host.pk): ["pho"], str(guest.pk): ["pho", "ramen"]}
    with django_capture_on_commit_callbacks(execute=True):
        run(room, host, "pick")
    picked, decided = _received(channel)
    assert json.loads(picked["text"]) == {
        "type": "picked",
        "item": "pho",
        "by": "host",
        "mode": "top",
    }
    state = json.loads(decided["text"])
    assert item(state, "pho")["votes"] == 2
    assert item(state, "pho")["voter_ids"] == [host.pk, guest.pk]
    assert decided["mine"] is None


def test_blind_pick_draws_by_the_real_votes(room: Room, host, guest) -> None:
    """Hidden is not gone: mode top still draws the most-voted item."""
    run(room, host, "blind")
    run(room, host, "add:pho")
    run(room, host, "add:ramen")
    run(room, host, "vote:ramen")
    run(room, guest, "vote:ramen")
    run(room, guest, "vote:pho")
    rng = random.Random(1)
    assert (
        services.room_pick(room_id=room.pk, participant_id=guest.pk, rng=rng)["room"]["decision"][
            "item"
        ]
        == "ramen"
    )


def test_the_redaction_is_one_function_of_the_full_state(room: Room, host, guest) -> None:
    """state_shown hides a blind room's votes until the decision and changes nothing else;
    votes_of reads one's own from the full state (welcome.you.votes)."""
    run(room, host, "add:pho")
    run(room, host, "vote:pho")
    full = run(room, host, "blind")
    shown = selectors.state_shown(full)
    assert item(full, "pho")["votes"] == 1  # the service's own state is never changed
    assert item(shown.state, "pho") == {
        **item(full, "pho"),
        "votes": None,
        "voters": [],
        "voter_ids": [],
    }
    assert {k: v for k, v in shown.state.items() if k != "items"} == {
        k: v for k, v in full.items() if k != "items"
    }
    assert shown.mine == {str(host.pk): ["pho"]}
    assert selectors.votes_of(full, host.pk) == ["pho"]
    assert selectors.votes_of(full, guest.pk) == []
    decided = run(room, host, "pick")
    assert selectors.state_shown(decided) == selectors.Shown(decided, None)
    unblind = selectors.state_shown(run(room, host, "unblind"))
    assert unblind.mine is None


def test_the_api_hides_a_blind_room_s_votes_too(room: Room, host, guest) -> None:
    client = Client()
    run(room, host, "add:pho #soup")
    run(room, guest, "vote:pho")
    run(room, host, "blind")
    data = client.get(f"/api/rooms/{room.pk}/").json()
    assert data["room"]["blind"] is True
    pho = data["items"][0]
    assert (pho["votes"], pho["voters"], pho["voter_ids"], pho["tags"]) == (None, [], [], ["soup"])
    run(room, host, "pick")
    data = client.get(f"/api/rooms/{room.pk}/").json()
    assert (data["items"][0]["votes"], data["items"][0]["voter_ids"]) == (1, [guest.pk])


def test_a_join_s_state_is_the_full_one_for_the_consumer_to_show(room: Room, host) -> None:
    """The join returns the full state: the consumer shows it through state_shown and reads
    the joiner's own votes from it."""
    run(room, host, "add:pho")
    run(room, host, "vote:pho")
    run(room, host, "blind")
    again, state = services.participant_join(
        room_id=room.pk, channel_name="again", token=room.host_token
    )
    assert again.pk == host.pk
    assert selectors.votes_of(state, host.pk) == ["pho"]
    assert item(selectors.state_shown(state).state, "pho")["votes"] is None


def test_an_ended_blind_room_s_page_keeps_its_votes_hidden(room: Room, host, guest) -> None:
    """The gone page of an undecided blind room says "votes hidden", not a count; once
    decided, its counts are shown."""
    run(room, host, "add:pho")
    run(room, guest, "vote:pho")
    run(room, host, "blind")
    Room.objects.filter(pk=room.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    page = Client().get(f"/rooms/{room.pk}/")
    assert page.status_code == 410
    assert "votes hidden" in page.content.decode() and "1 vote" not in page.content.decode()
    Room.objects.filter(pk=room.pk).update(decided_at=timezone.now(), decision_item="pho")
    page = Client().get(f"/rooms/{room.pk}/")
    assert "1 vote" in page.content.decode() and "votes hidden" not in page.content.decode()
