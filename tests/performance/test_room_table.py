"""The room's row is written by every change: its version bump must stay a HOT update.

PostgreSQL updates a row in place (heap-only, no index entries, about half the WAL) only
when no index covers a column the update changes. The bump changes `version` and
`expires_at` (rooms/services/runner.py, locking.py), so neither may be indexed.
"""

import pytest
from django.db import connection

from rooms import commands, services
from rooms.models import Room
from rooms.protocol import parse_frame
from tests.support.setups import join

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("channel_layer_memory")]

BUMPED_COLUMNS = {"version", "expires_at"}


def test_no_index_covers_a_column_the_bump_writes() -> None:
    """Indexes of rooms_room (the primary key, host, group) leave version and expiry alone."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, Room._meta.db_table)
    indexed = {
        column
        for constraint in constraints.values()
        if constraint["index"] or constraint["unique"] or constraint["primary_key"]
        for column in constraint["columns"]
    }
    assert "id" in indexed  # the introspection sees the table's indexes at all
    assert not indexed & BUMPED_COLUMNS


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_every_bump_is_a_hot_update() -> None:
    """Ten changes to a room: ten updates of its row, every one heap-only."""
    room = services.room_create()
    person = join(room, "joon")

    def counts() -> tuple[int, int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_stat_get_xact_tuples_updated(%s::regclass),"
                " pg_stat_get_xact_tuples_hot_updated(%s::regclass)",
                ["rooms_room", "rooms_room"],
            )
            return cursor.fetchone()

    updated, hot = counts()
    for n in range(10):
        commands.command_run(
            room_id=room.pk, participant_id=person.pk, command=parse_frame(f"add:dish {n}")
        )
    after_updated, after_hot = counts()
    assert after_updated - updated == 10
    assert after_hot - hot == 10
