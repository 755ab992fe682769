"""The migrations match the models, and moving Group to the groups app moved no data."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from groups.models import Group
from rooms.models import Room

# The last migrations before the move: Group in rooms, no groups app.
BEFORE_THE_MOVE = [("rooms", "0005_participant_token_seed"), ("groups", None)]


@pytest.mark.django_db
def test_the_models_need_no_new_migration() -> None:
    """`makemigrations --check` finds nothing to write (on the database the tests run on)."""
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def migrate(targets: list[tuple[str, str | None]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor


@pytest.mark.django_db(transaction=True)
def test_migrating_from_the_schema_before_the_move_keeps_every_group() -> None:
    """A database with groups, group rooms and staff permissions on groups, made by the
    migrations before the move, keeps every row, link and permission after `migrate`."""
    leaves = MigrationExecutor(connection).loader.graph.leaf_nodes()
    executor = migrate(BEFORE_THE_MOVE)
    old = executor.loader.project_state(BEFORE_THE_MOVE[:1]).apps
    OldGroup, OldRoom = old.get_model("rooms", "Group"), old.get_model("rooms", "Room")
    decided = timezone.now() - timedelta(days=1)
    crew = OldGroup.objects.create(slug="crew-slug", name="Crew", webhook_url="https://x.test/h")
    OldRoom.objects.create(
        id="room-of-crew",
        group=crew,
        expires_at=decided + timedelta(minutes=10),
        decision_item="Pho",
        decided_at=decided,
    )
    ContentType.objects.clear_cache()
    content_type, _ = ContentType.objects.get_or_create(app_label="rooms", model="group")
    permission_ids = set(
        Permission.objects.filter(content_type=content_type).values_list("pk", flat=True)
    )

    migrate(leaves)

    group = Group.objects.get(slug="crew-slug")
    assert (group.pk, group.name, group.webhook_url) == (crew.pk, "Crew", "https://x.test/h")
    room = Room.objects.get(pk="room-of-crew")
    assert room.group == group and room.decision_item == "Pho"
    assert list(group.rooms.values_list("pk", flat=True)) == ["room-of-crew"]
    ContentType.objects.clear_cache()
    moved = ContentType.objects.get_for_model(Group)
    assert (moved.pk, moved.app_label) == (content_type.pk, "groups")
    assert set(Permission.objects.filter(content_type=moved).values_list("pk", flat=True)) == (
        permission_ids
    )


@pytest.mark.django_db
def test_each_apps_migrations_form_one_line() -> None:
    """Each of our apps' migrations follows the one before it: no two with the same parent and
    no merge migration. On SQLite a branch unapplied in another order than it was applied
    (the backward plan of `migrate rooms 0005 groups zero` put one branch first) rebuilds a
    table from the wrong state: columns of the other branch came back, data went."""
    graph = MigrationExecutor(connection).loader.graph
    for app in ("rooms", "groups"):
        nodes = [key for key in graph.nodes if key[0] == app]
        parents = {key: [p for p in graph.node_map[key].parents if p[0] == app] for key in nodes}
        assert all(len(found) <= 1 for found in parents.values()), parents
        children: dict[tuple[str, str], int] = {}
        for found in parents.values():
            for parent in found:
                children[parent] = children.get(parent, 0) + 1
        assert all(count == 1 for count in children.values()), children
