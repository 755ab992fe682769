"""Staff see groups with their rooms and decisions, and find them by name or slug."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from groups import services as group_services
from groups.models import Group
from rooms.models import Room
from tests.support.setups import group_with_history

pytestmark = pytest.mark.django_db


@pytest.fixture
def crew() -> Group:
    """A group with one decided room and today's open room, next to another group."""
    group, _ = group_with_history("Lunch crew", item="bibimbap", by="minji", days_ago=2)
    group_services.group_create(name="Other team", language="ko")
    return group


def test_group_list_shows_rooms_and_last_decision(admin_client: Client, crew: Group) -> None:
    """The group list shows each group's room count and last decision."""
    page = admin_client.get("/admin/groups/group/").content.decode()
    assert "Lunch crew" in page and "Other team" in page
    assert "bibimbap" in page


@pytest.mark.parametrize("term", ["crew", "slug"])
def test_groups_are_searchable_by_name_and_slug(admin_client: Client, crew: Group, term) -> None:
    """Searching by a piece of the name, or by the slug, finds the group and only it."""
    query = crew.slug if term == "slug" else "crew"
    page = admin_client.get("/admin/groups/group/", {"q": query}).content.decode()
    assert "Lunch crew" in page and "Other team" not in page


def test_group_page_lists_its_rooms_and_decisions(admin_client: Client, crew: Group) -> None:
    """A group's admin page lists its rooms with who picked what."""
    page = admin_client.get(f"/admin/groups/group/{crew.pk}/change/").content.decode()
    for room in crew.rooms.all():
        assert room.pk in page
    assert "bibimbap" in page and "minji" in page


def test_purge_rooms_keeps_the_groups_history(crew: Group) -> None:
    """manage.py purge_rooms leaves a group's decided rooms within the history window."""
    Room.objects.filter(group=crew).update(expires_at=timezone.now() - timedelta(days=2))
    call_command("purge_rooms", "--older-than", "3600", stdout=StringIO())
    assert list(Room.objects.filter(group=crew).values_list("decision_item", flat=True)) == [
        "bibimbap"
    ]


def test_staff_see_the_webhook_host_never_its_secret_path(admin_client: Client) -> None:
    """Chat webhooks carry their secret in the path: the admin shows only the host."""
    group = group_services.group_create(name="Hooked", language="en")
    group.webhook_url = "https://hooks.example.com/services/T000/B000/s3cr3t-token"
    group.save(update_fields=["webhook_url"])
    page = admin_client.get(f"/admin/groups/group/{group.pk}/change/").content.decode()
    assert "hooks.example.com" in page
    assert "s3cr3t-token" not in page and "/services/" not in page
