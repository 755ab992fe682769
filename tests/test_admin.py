"""Staff see rooms with status, counts and decision, filter and search them, and close them."""

import re
from datetime import datetime, timedelta
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.timezone import localtime

from rooms import services
from rooms.models import Participant, Room

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


@pytest.fixture
def hosted_room() -> Room:
    """A locked room whose host is coming and has kicked someone."""
    room = services.room_create()
    host, _ = services.participant_join(room_id=room.pk, channel_name="c.h", name="<b>boss</b>")
    guest, _ = services.participant_join(room_id=room.pk, channel_name="c.g", name="minji")
    troll, _ = services.participant_join(room_id=room.pk, channel_name="c.t", name="troll")
    services.room_lock(room_id=room.pk, participant_id=host.pk, locked=True)
    services.participant_going(room_id=room.pk, participant_id=guest.pk, going=True)
    services.participant_kick(room_id=room.pk, participant_id=host.pk, target_id=troll.pk)
    room.refresh_from_db()
    assert room.host_id == host.pk and room.locked
    return room


def test_changelist_shows_host_and_lock(admin_client: Client, hosted_room) -> None:
    """The room list names each room's host (escaped) and says whether its list is locked."""
    room = hosted_room
    unhosted = services.room_create()
    page = admin_client.get("/admin/rooms/room/").content.decode()
    assert 'column-host_name">' in page and 'column-locked">' in page
    row = page[page.index(f">{room.pk}<") :]
    row = row[: row.index("</tr>")]
    assert '<td class="field-host_name">&lt;b&gt;boss&lt;/b&gt;</td>' in row
    assert 'class="field-locked"><img src="/static/admin/img/icon-yes.svg" alt="True">' in row
    row = page[page.index(f">{unhosted.pk}<") :]
    row = row[: row.index("</tr>")]
    assert '<td class="field-host_name">-</td>' in row
    assert 'alt="False"' in row
    assert "<b>boss</b>" not in page


def test_changelist_queries_do_not_grow_with_rooms(
    admin_client: Client, hosted_room, django_assert_max_num_queries
) -> None:
    """Hosts, groups and counts come in the list's own query, not one query per row."""
    with CaptureQueriesContext(connection) as one_room:
        admin_client.get("/admin/rooms/room/")
    for n in range(5):
        room = services.room_create()
        services.participant_join(room_id=room.pk, channel_name=f"c.{n}", name=f"host {n}")
    with django_assert_max_num_queries(len(one_room.captured_queries)):
        page = admin_client.get("/admin/rooms/room/").content.decode()
    assert "host 4" in page


def test_detail_shows_host_lock_going_and_kicked(admin_client: Client, hosted_room) -> None:
    """A room's page shows its host and lock, and each participant's going and kicked times."""
    room = hosted_room
    page = admin_client.get(f"/admin/rooms/room/{room.pk}/change/").content.decode()
    assert '<div class="readonly">&lt;b&gt;boss&lt;/b&gt;</div>' in page
    assert "<b>boss</b>" not in page
    assert 'class="readonly"><img src="/static/admin/img/icon-yes.svg" alt="True">' in page
    participants = Participant.objects.filter(room=room)  # joined order, as the inline
    shown = {
        field: re.findall(rf'<td class="field-{field}">\s*<p>(.*?)</p>', page, re.S)
        for field in ["name", "going_since", "kicked_at"]
    }
    expected = {
        "name": ["&lt;b&gt;boss&lt;/b&gt;", "minji", "troll"],
        "going_since": [_admin_time(p.going_since) for p in participants],
        "kicked_at": [_admin_time(p.kicked_at) for p in participants],
    }
    assert shown == expected
    assert expected["going_since"][1] != "-" and expected["kicked_at"][2] != "-"
    # The inline is read-only: no inputs for the times.
    assert "participants-0-going_since" not in page and "participants-0-kicked_at" not in page


def _admin_time(moment: datetime | None) -> str:
    """A time as the admin prints it (in the page's time zone), "-" for none."""
    zone = ZoneInfo(settings.PAGE_TIME_ZONE)
    return date_format(localtime(moment, zone), "DATETIME_FORMAT") if moment else "-"


def test_admin_never_shows_token_hashes_or_session_keys(admin_client: Client) -> None:
    """Neither the list nor a room's page shows a token hash or a session key."""
    room = services.room_create(host_session_key="s" * 32)
    services.participant_join(
        room_id=room.pk, channel_name="c.h", session_key="s" * 32, name="boss"
    )
    services.participant_join(room_id=room.pk, channel_name="c.g", name="minji")
    stored = Room.objects.get(pk=room.pk)
    secrets = [
        stored.host_session_key,
        stored.host_token_hash,
        *Participant.objects.filter(room=room).values_list("token_hash", flat=True),
        *Participant.objects.filter(room=room).values_list("session_key", flat=True),
    ]
    secrets = [secret for secret in secrets if secret]
    assert len(secrets) >= 3
    for path in ["/admin/rooms/room/", f"/admin/rooms/room/{room.pk}/change/"]:
        page = admin_client.get(path).content.decode()
        assert "boss" in page
        for secret in secrets:
            assert secret not in page


def test_room_page_queries_do_not_grow_with_items(
    admin_client: Client, hosted_room, django_assert_max_num_queries
) -> None:
    """Each item's author comes with the item list's own query, not one query per item."""
    host_id = hosted_room.host_id
    services.room_lock(room_id=hosted_room.pk, participant_id=host_id, locked=False)
    services.item_add(room_id=hosted_room.pk, participant_id=host_id, name="first")
    url = f"/admin/rooms/room/{hosted_room.pk}/change/"
    with CaptureQueriesContext(connection) as one_item:
        admin_client.get(url)
    for n in range(8):
        services.item_add(room_id=hosted_room.pk, participant_id=host_id, name=f"idea {n}")
    with django_assert_max_num_queries(len(one_item.captured_queries)):
        page = admin_client.get(url).content.decode()
    assert "idea 7" in page
