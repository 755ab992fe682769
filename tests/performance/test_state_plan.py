"""The state read stays on the room's own rows, whatever else the tables hold.

Every change ends with the state read, so its plan is on the hot path. PostgreSQL plans a
prepared statement once (a generic plan) and, with statistics of small tables, would hash
whole tables for a room's few rows: the cost of a read then grows with every other room.
These tests fill the tables with a hundred rooms, ANALYZE them, and read the plans.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection

from rooms import selectors
from rooms.models import Room

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="PostgreSQL's planner; runs in that pass"
    ),
]

# A hundred rooms of ten, each with one connection per person, five items and some votes:
# the size of the benchmark, where hash joins looked cheaper to the planner than indexes.
_FILL_SQL = """
INSERT INTO rooms_room (id, created_at, expires_at, version, decision_item, decision_by,
                        decision_key, host_session_key, host_token_hash, locked)
SELECT 'plan' || g, now(), now() + interval '10 minutes', 1, '', '', '', '', '', false
  FROM generate_series(1, 100) g;
INSERT INTO rooms_participant (session_key, name, joined_at, room_id, token_hash)
SELECT '', 'p' || g, now(), 'plan' || (1 + (g - 1) / 10), md5(g::text)
  FROM generate_series(1, 1000) g;
INSERT INTO rooms_connection (participant_id, channel_name, connected_at, last_seen)
SELECT id, 'chan' || id, now(), now() FROM rooms_participant;
INSERT INTO rooms_item (room_id, name, key, added_by_id, added_at)
SELECT 'plan' || (1 + (g - 1) / 5), 'i' || g, 'i' || g,
       (SELECT MIN(id) FROM rooms_participant), now()
  FROM generate_series(1, 500) g;
INSERT INTO rooms_mark (kind, created_at, item_id, participant_id)
SELECT 'vote', now(), i.id, p.id
  FROM rooms_item i JOIN rooms_participant p ON p.room_id = i.room_id
 WHERE substr(p.name, 2)::int % 3 = 0
 ORDER BY i.id, p.id;
ANALYZE rooms_room, rooms_participant, rooms_connection, rooms_item, rooms_mark;
"""
_ROOM_TABLES = {"rooms_room", "rooms_participant", "rooms_connection", "rooms_item", "rooms_mark"}


@pytest.fixture
def hundred_rooms() -> Iterator[Room]:
    with connection.cursor() as cursor:
        cursor.execute(_FILL_SQL)
    yield Room.objects.get(pk="plan95")


def plan_nodes(plan: dict) -> Iterator[dict]:
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


def state_plan(room: Room, mode: str) -> list[dict]:
    """The nodes of the state read's plan, as a prepared statement gets it in this mode."""
    sql = selectors._STATE_SQL_BY_VENDOR["postgresql"] % {
        "room": "$1",
        "cutoff": "$2",
        "group": "$3",
    }
    with connection.cursor() as cursor:
        cursor.execute(f"SET plan_cache_mode = {mode}")
        cursor.execute(f"PREPARE state_plan (varchar, timestamptz, bigint) AS {sql}")
        try:
            # EXECUTE's arguments cannot be bound parameters: literals (the id is [A-Za-z0-9]).
            assert room.pk.isalnum()
            cursor.execute(f"EXPLAIN (FORMAT JSON) EXECUTE state_plan ('{room.pk}', now(), NULL)")
            (plan,) = cursor.fetchone()[0]
        finally:
            cursor.execute("DEALLOCATE state_plan")
            cursor.execute("RESET plan_cache_mode")
    return list(plan_nodes(plan["Plan"]))


@pytest.mark.parametrize("mode", ["force_generic_plan", "force_custom_plan"])
def test_the_state_read_scans_no_whole_table(hundred_rooms: Room, mode: str) -> None:
    nodes = state_plan(hundred_rooms, mode)
    whole = [
        f"{n['Node Type']} on {n['Relation Name']}"
        for n in nodes
        if n["Node Type"] == "Seq Scan" and n.get("Relation Name") in _ROOM_TABLES
    ]
    hashed = [n["Node Type"] for n in nodes if n["Node Type"].startswith("Hash")]
    assert whole == [] and hashed == [], nodes


def test_the_state_of_a_full_table_room_is_its_own(hundred_rooms: Room) -> None:
    state = selectors.room_state(room=hundred_rooms)
    assert [p["name"] for p in state["participants"]] == [f"p{g}" for g in range(941, 951)]
    assert [i["name"] for i in state["items"]] == [f"i{g}" for g in range(471, 476)]
    # Votes by every third participant of the room: p942, p945, p948 on each item.
    assert {tuple(i["voters"]) for i in state["items"]} == {("p942", "p945", "p948")}
    assert {i["added_by"] for i in state["items"]} == {"p1"}
