"""Staff see rooms with status, counts and decision, filter and search them, and close them."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from rooms import services
from rooms.models import Room

pytestmark = pytest.mark.django_db


@pytest.fixture
def rooms() -> dict[str, Room]:
    """One active room with people and items, one expired, one closed."""
    active = services.room_create()
    participant, _ = services.participant_join(room_id=active.pk, channel_name="c.1", name="minji")
    services.item_add(room_id=active.pk, participant_id=participant.pk, name="kimchi stew")
    services.item_add(room_id=active.pk, participant_id=participant.pk, name="bulgogi")
    services.room_pick(room_id=active.pk, participant_id=participant.pk)
    expired = services.room_create()
    Room.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    closed = services.room_create()
    services.room_close(room=closed)
    return {"active": active, "expired": expired, "closed": closed}


def test_changelist_shows_status_counts_and_decision(admin_client: Client, rooms) -> None:
    """The room list shows each room's status, participant and item counts, and decision."""
    page = admin_client.get("/admin/rooms/room/").content.decode()
    for room in rooms.values():
        assert room.pk in page
    for text in ["active", "expired", "closed"]:
        assert f">{text}<" in page
    decision = Room.objects.get(pk=rooms["active"].pk).decision_item
    assert decision in {"kimchi stew", "bulgogi"}
    assert decision in page


@pytest.mark.parametrize("status", ["active", "expired", "closed"])
def test_filter_by_status(admin_client: Client, rooms, status: str) -> None:
    """The status filter keeps exactly the rooms of that status."""
    page = admin_client.get(f"/admin/rooms/room/?status={status}").content.decode()
    for name, room in rooms.items():
        assert (room.pk in page) == (name == status)


def test_search_by_id_and_item(admin_client: Client, rooms) -> None:
    """Searching finds a room by its id or by the name of one of its items."""
    page = admin_client.get("/admin/rooms/room/?q=bulgogi").content.decode()
    assert rooms["active"].pk in page and rooms["expired"].pk not in page
    page = admin_client.get(f"/admin/rooms/room/?q={rooms['expired'].pk}").content.decode()
    assert rooms["expired"].pk in page and rooms["active"].pk not in page


def test_detail_shows_items_and_participants(admin_client: Client, rooms) -> None:
    """A room's page lists its items and participants inline."""
    page = admin_client.get(f"/admin/rooms/room/{rooms['active'].pk}/change/").content.decode()
    for text in ["kimchi stew", "bulgogi", "minji"]:
        assert text in page


def test_close_action(admin_client: Client, rooms) -> None:
    """The close action closes the selected open rooms."""
    response = admin_client.post(
        "/admin/rooms/room/",
        {"action": "close_rooms", "_selected_action": [rooms["active"].pk]},
        follow=True,
    )
    assert "Closed 1 room." in response.content.decode()
    assert Room.objects.get(pk=rooms["active"].pk).status == Room.Status.CLOSED


def test_admin_is_for_staff_only(client: Client, django_user_model, rooms) -> None:
    """Anonymous visitors and non-staff users are sent to the login page."""
    assert client.get("/admin/rooms/room/").status_code == 302
    user = django_user_model.objects.create_user("eve", password="a-long-password-1")
    client.force_login(user)
    assert client.get("/admin/rooms/room/").status_code == 302


def test_purge_rooms_command(rooms) -> None:
    """purge_rooms deletes rooms gone longer than --older-than and reports the count."""
    out = StringIO()
    call_command("purge_rooms", "--older-than", "0", stdout=out)
    assert "Deleted 2 room(s)" in out.getvalue()
    assert list(Room.objects.values_list("pk", flat=True)) == [rooms["active"].pk]


def test_markup_in_names_stays_text_in_the_admin(admin_client: Client) -> None:
    """Stored XSS: item and participant names with markup are escaped on every admin page."""
    room = services.room_create()
    script, img = "<script>alert(1)</script>", "<img src=x onerror=alert(2)>"
    participant, _ = services.participant_join(room_id=room.pk, channel_name="c.x", name="p")
    services.item_add(room_id=room.pk, participant_id=participant.pk, name=script)
    services.participant_rename(room_id=room.pk, participant_id=participant.pk, name=img[:24])
    services.room_pick(room_id=room.pk, participant_id=participant.pk)
    pages = [
        admin_client.get("/admin/rooms/room/").content.decode(),
        admin_client.get(f"/admin/rooms/room/?q={room.pk}").content.decode(),
        admin_client.get(f"/admin/rooms/room/{room.pk}/change/").content.decode(),
    ]
    for page in pages:
        assert script not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[2]
