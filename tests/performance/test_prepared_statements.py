"""PostgreSQL prepares the statements a room change repeats (DATABASE_PREPARE_THRESHOLD).

Every raw statement of ours must also be valid with server-side binding, where PostgreSQL
deduces each parameter's type once: the whole PostgreSQL pass runs with it on.
"""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.db import connection

from rooms import services
from rooms.errors import ClientError
from rooms.models import Item
from tests.support.processes import manage

pytestmark = pytest.mark.django_db

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="prepared statements; runs in the PostgreSQL pass"
)


def _prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def _room_with_a_member() -> tuple[str, int]:
    room = services.room_create()
    participant, _ = services.participant_join(
        room_id=room.pk, channel_name="test.prepared", name="Ana"
    )
    return room.pk, participant.pk


@on_postgresql
def test_a_room_change_repeated_past_the_threshold_runs_prepared() -> None:
    threshold = settings.DATABASES["default"]["OPTIONS"]["prepare_threshold"]
    room_id, by = _room_with_a_member()
    assert not any("INSERT INTO rooms_item" in s for s in _prepared_statements())

    for n in range(threshold + 1):
        services.item_add(room_id=room_id, participant_id=by, name=f"dish {n}")

    prepared = _prepared_statements()
    assert any("INSERT INTO rooms_item" in s for s in prepared)
    assert any("UPDATE rooms_room SET version = version + 1" in s for s in prepared)
    assert Item.objects.filter(room_id=room_id).count() == threshold + 1


@on_postgresql
def test_the_prepared_add_still_refuses_a_duplicate_and_the_item_past_the_cap() -> None:
    """The add's cap and key check live in its statement; preparing it changes neither."""
    room_id, by = _room_with_a_member()
    for n in range(settings.ROOM_MAX_ITEMS):
        services.item_add(room_id=room_id, participant_id=by, name=f"dish {n}")
    assert any("INSERT INTO rooms_item" in s for s in _prepared_statements())

    services.item_remove(room_id=room_id, participant_id=by, name="dish 0")
    with pytest.raises(ClientError, match="duplicate_item"):
        services.item_add(room_id=room_id, participant_id=by, name="Dish 1")
    services.item_add(room_id=room_id, participant_id=by, name="dish 0")
    with pytest.raises(ClientError, match="too_many_items"):
        services.item_add(room_id=room_id, participant_id=by, name="one too many")
    assert Item.objects.filter(room_id=room_id).count() == settings.ROOM_MAX_ITEMS


def _database_options(**env: str) -> dict:
    result = manage(
        "shell",
        "-c",
        "import json; from django.conf import settings; "
        "print(json.dumps(settings.DATABASES['default'].get('OPTIONS', {}), default=str))",
        DJANGO_DEBUG="1",
        DATABASE_URL="postgres://lunch@db.invalid:5432/lunch",
        **env,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_statements_are_prepared_by_default_and_the_setting_turns_it_off() -> None:
    """0 is for PgBouncer in transaction mode without max_prepared_statements."""
    default = _database_options()
    assert default["server_side_binding"] is True
    assert default["prepare_threshold"] == 5
    assert _database_options(DATABASE_PREPARE_THRESHOLD="2")["prepare_threshold"] == 2

    off = _database_options(DATABASE_PREPARE_THRESHOLD="0")
    assert "server_side_binding" not in off
    assert "prepare_threshold" not in off


def test_sqlite_has_no_such_options() -> None:
    result = manage(
        "shell",
        "-c",
        "from django.conf import settings; "
        "print(sorted(settings.DATABASES['default'].get('OPTIONS', {})))",
        DJANGO_DEBUG="1",
    )
    assert result.returncode == 0, result.stderr
    assert "prepare_threshold" not in result.stdout
