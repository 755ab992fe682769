"""The groups' HTTP contract: create by form or API, the group page, today's room, GET/PATCH."""

import json
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from groups import services as group_services
from groups.models import Group
from rooms import services
from rooms.models import Room

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("channel_layer_memory")]


@pytest.fixture(autouse=True)
def lunch_host(settings) -> None:
    settings.ALLOWED_HOSTS = ["lunch.example", "testserver"]
    cache.clear()  # the creation rate limit counts per address across tests


def api(client: Client, method: str, path: str, body=None, **extra):
    data = body if isinstance(body, bytes | str) else json.dumps(body) if body is not None else b""
    return getattr(client, method)(
        path, data=data, content_type="application/json", HTTP_HOST="lunch.example", **extra
    )


@pytest.fixture
def group() -> Group:
    return group_services.group_create(name="Team Kimchi", language="en")


def decide(group: Group, item: str, days_ago: float) -> Room:
    at = timezone.now() - timedelta(days=days_ago)
    return Room.objects.create(
        group=group,
        expires_at=at + timedelta(minutes=10),
        decision_item=item,
        decision_by="minji",
        decided_at=at,
        decision_key=item.casefold(),
    )


# --- Creating --------------------------------------------------------------------


def test_api_creates_a_group_without_csrf() -> None:
    """POST /api/groups/ answers 201 with the slug, the name and absolute URLs."""
    client = Client(enforce_csrf_checks=True)
    response = api(client, "post", "/api/groups/", {"name": "  Team Pho  "})
    assert response.status_code == 201
    data = response.json()
    assert set(data) == {"slug", "name", "url", "api_url"}
    assert data["name"] == "Team Pho"
    assert data["url"] == f"http://lunch.example/g/{data['slug']}/"
    assert data["api_url"] == f"http://lunch.example/api/groups/{data['slug']}/"
    assert re.fullmatch(r"[A-Za-z0-9_-]{16,}", data["slug"])


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, "invalid_name"),
        ({"name": ""}, "invalid_name"),
        ({"name": "   "}, "invalid_name"),
        ({"name": "x" * 41}, "invalid_name"),
        ({"name": 5}, "invalid_name"),
        ({"name": "ok", "webhook_url": "http://93.184.215.14/hook"}, "invalid_webhook"),
        ({"name": "ok", "webhook_url": "https://localhost/hook"}, "invalid_webhook"),
        ({"name": "ok", "webhook_url": ["x"]}, "invalid_webhook"),
        (b"{not json", "bad_message"),
        ([1, 2], "bad_message"),
    ],
)
def test_api_refuses_bad_groups(client: Client, body, error: str) -> None:
    """Bad names, webhooks and bodies answer 400 with the error code, and create nothing."""
    if isinstance(body, list):
        body = json.dumps(body)
    response = api(client, "post", "/api/groups/", body)
    assert (response.status_code, response.json()) == (400, {"error": error})
    assert Group.objects.count() == 0


def test_api_creation_is_rate_limited_per_address(client: Client, settings) -> None:
    """Past ROOM_CREATE_PER_MINUTE groups a minute, 429 with Retry-After."""
    settings.ROOM_CREATE_PER_MINUTE = 2
    answers = [api(client, "post", "/api/groups/", {"name": "g"}) for _ in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 429]
    assert answers[2].json()["error"] == "rate_limited" and int(answers[2]["Retry-After"]) > 0


def test_form_creates_a_group_with_csrf_and_redirects_303() -> None:
    """POST /groups/ needs the CSRF token, then answers 303 to the group page."""
    client = Client(enforce_csrf_checks=True)
    assert client.post("/groups/", {"name": "Team"}).status_code == 403
    page = client.get("/groups/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())[1]
    response = client.post("/groups/", {"name": "Team", "csrfmiddlewaretoken": token})
    assert response.status_code == 303
    group = Group.objects.get()
    assert response["Location"] == f"/g/{group.slug}/"


def test_form_shows_the_error_for_a_bad_name(client: Client) -> None:
    """A blank name re-renders the form with a 400 and the reason."""
    response = client.post("/groups/", {"name": "  "})
    assert response.status_code == 400
    assert "1 to 40 characters" in response.content.decode()


def test_group_language_is_the_creators(client: Client) -> None:
    """The webhook speaks the language of the page the group was created from."""
    client.post("/groups/", {"name": "팀"}, HTTP_ACCEPT_LANGUAGE="ko")
    api(client, "post", "/api/groups/", {"name": "team"}, HTTP_ACCEPT_LANGUAGE="en")
    assert sorted(Group.objects.values_list("language", flat=True)) == ["en", "ko"]


# --- The group page --------------------------------------------------------------


def test_group_page_shows_name_history_favorites_and_a_way_in(client: Client, group) -> None:
    """The page has the name, the open-room button, the history and the usual places."""
    decide(group, "pho", 1)
    decide(group, "pho", 3)
    decide(group, "sushi", 2)
    page = client.get(f"/g/{group.slug}/").content.decode()
    assert "Team Kimchi" in page
    assert f'action="/g/{group.slug}/room/"' in page
    assert page.index("pho") < page.index("sushi")  # newest first
    assert "\u00d72" in page  # the count next to pho


def test_group_page_links_into_the_open_room(client: Client, group) -> None:
    """With a room open, the page links straight into it instead of opening another."""
    room, _ = group_services.group_room_open(group=group)
    page = client.get(f"/g/{group.slug}/").content.decode()
    assert f'href="/rooms/{room.pk}/"' in page


def test_unknown_group_page_is_404(client: Client) -> None:
    """An unknown slug answers 404 on the page and the API."""
    assert client.get("/g/nope/").status_code == 404
    response = client.get("/api/groups/nope/")
    assert (response.status_code, response.json()) == (404, {"error": "group_not_found"})
    response = api(client, "post", "/api/groups/nope/room/")
    assert (response.status_code, response.json()) == (404, {"error": "group_not_found"})


def test_group_page_room_button_opens_one_room(client: Client, group) -> None:
    """The page's form opens today's room (303 into it); pressing it twice opens no second."""
    first = client.post(f"/g/{group.slug}/room/")
    second = client.post(f"/g/{group.slug}/room/")
    room = Room.objects.get(group=group)
    assert first.status_code == second.status_code == 303
    assert first["Location"] == second["Location"] == f"/rooms/{room.pk}/"
    # The browser that opened it is the room's host when it joins.
    assert room.host_session_key == client.session.session_key != ""


def test_settings_form_sets_and_clears_the_webhook(client: Client, group, settings) -> None:
    """The page's settings form saves a webhook (shown by host only), refuses a bad one, clears."""
    settings.GROUP_WEBHOOK_ALLOW_PRIVATE = True
    url = f"/g/{group.slug}/settings/"
    hook = "https://127.0.0.1:9/services/SECRET"
    assert client.post(url, {"name": "Team", "webhook_url": hook}).status_code == 303
    page = client.get(f"/g/{group.slug}/").content.decode()
    assert "127.0.0.1:9" in page and "SECRET" not in page
    settings.GROUP_WEBHOOK_ALLOW_PRIVATE = False
    bad = client.post(url, {"name": "Team", "webhook_url": "https://localhost/x"})
    assert bad.status_code == 400
    assert Group.objects.get().webhook_url == hook
    client.post(url, {"name": "Team", "clear_webhook": "1"})
    assert Group.objects.get().webhook_url == ""


@pytest.mark.parametrize(
    ("status", "english", "korean"),
    [
        ("delivered: HTTP 200", "Last post delivered", "마지막 알림 전송 완료"),
        (
            "failed: timed out (3 attempt(s))",
            "Last post failed · timed out, 3 attempts",
            "마지막 알림 전송 실패 · 시간 초과, 3번 시도",
        ),
        (
            "failed: HTTP 404 (1 attempt(s))",
            "Last post failed · the chat answered with error 404, 1 attempt",
            "마지막 알림 전송 실패 · 채팅 서버 오류 404, 1번 시도",
        ),
        (
            "failed: host did not resolve (2 attempt(s))",
            "Last post failed · the chat&#x27;s address was not found, 2 attempts",
            "마지막 알림 전송 실패 · 채팅 주소를 찾을 수 없음, 2번 시도",
        ),
        (
            "failed: refused (not a public https address) (1 attempt(s))",
            "Last post failed · not an address we may post to, 1 attempt",
            "마지막 알림 전송 실패 · 보낼 수 없는 주소, 1번 시도",
        ),
        (
            "failed: ConnectError (3 attempt(s))",
            "Last post failed · could not connect, 3 attempts",
            "마지막 알림 전송 실패 · 연결 실패, 3번 시도",
        ),
    ],
)
def test_group_page_says_the_last_webhook_outcome_in_its_language(
    client: Client, group, status: str, english: str, korean: str
) -> None:
    """The last delivery's outcome and when, in the page's words: no English on a Korean page."""
    Group.objects.filter(pk=group.pk).update(
        webhook_url="https://93.184.215.14/hook",
        webhook_last_status=status,
        webhook_last_at=timezone.now() - timedelta(minutes=5),
    )
    page = client.get(f"/g/{group.slug}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert f"{english} · <time" in page and ">5\xa0minutes ago</time>" in page
    page = client.get(f"/g/{group.slug}/", HTTP_ACCEPT_LANGUAGE="ko").content.decode()
    assert f"{korean} · <time" in page and ">5분 전</time>" in page
    shown = re.search(r'id="webhook-status"[^>]*>(.*?)</p>', page).group(1)
    assert not re.search(r"[A-Za-z]{3,}", re.sub(r"<[^>]*>", "", shown)), shown


def test_a_webhook_outcome_of_under_a_minute_is_just_now(client: Client, group) -> None:
    """Not "0 minutes ago": "just now", "방금"."""
    Group.objects.filter(pk=group.pk).update(
        webhook_url="https://93.184.215.14/hook",
        webhook_last_status="delivered: HTTP 200",
        webhook_last_at=timezone.now(),
    )
    assert ">just now</time>" in client.get(f"/g/{group.slug}/").content.decode()
    page = client.get(f"/g/{group.slug}/", HTTP_ACCEPT_LANGUAGE="ko").content.decode()
    assert ">방금</time>" in page


KOREAN_WEEKDAYS = ["월요일", "화요일", "수요일", "목요일", "금요일", "토요일", "일요일"]


def test_history_days_are_in_the_groups_time_zone_the_korean_way(client: Client, group) -> None:
    """A decision at 08:30 in Seoul, for a group eating in Seoul, is on the Seoul day (not the
    UTC day before), written "11월 25일 수요일", whatever zone the browser named (issue 31: the
    group's zone); a group eating in London gets London's day."""
    seoul, london = ZoneInfo("Asia/Seoul"), ZoneInfo("Europe/London")
    group_services.group_update(group=group, schedule_changes={"timezone": "Asia/Seoul"})
    day = (timezone.now() - timedelta(days=10)).astimezone(seoul).date()
    at = datetime(day.year, day.month, day.day, 8, 30, tzinfo=seoul)
    Room.objects.create(
        group=group,
        expires_at=at + timedelta(minutes=10),
        decision_item="김치찌개",
        decision_by="민지",
        decided_at=at,
        decision_key="김치찌개",
    )
    korean_day = f"{day.month}월 {day.day}일 {KOREAN_WEEKDAYS[day.weekday()]}"
    assert at.astimezone(UTC).date() != day  # the UTC date is the day before
    client.cookies["tz"] = "Europe/London"
    page = client.get(f"/g/{group.slug}/", HTTP_ACCEPT_LANGUAGE="ko").content.decode()
    assert f"{korean_day} · 민지 님이 뽑음" in page
    group_services.group_update(group=group, schedule_changes={"timezone": "Europe/London"})
    page = client.get(f"/g/{group.slug}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    in_london = at.astimezone(london).date()
    assert f"picked by 민지 · {in_london:%A, %B} {in_london.day}<" in page


def test_recent_history_says_today_and_yesterday(client: Client, group) -> None:
    """The last two days are named, not dated."""
    decide(group, "pho", 0)
    decide(group, "sushi", 1)
    page = client.get(f"/g/{group.slug}/", HTTP_ACCEPT_LANGUAGE="ko").content.decode()
    history = re.findall(r'class="history-meta">([^<]*)<', page)
    assert history == ["오늘 · minji 님이 뽑음", "어제 · minji 님이 뽑음"]


def test_favourites_are_counted_the_korean_way(client: Client, group) -> None:
    """In Korean "김치찌개 3번", not a multiplication sign; English keeps the sign."""
    for days in (1, 2, 3):
        decide(group, "김치찌개", days)
    page = client.get(f"/g/{group.slug}/", HTTP_ACCEPT_LANGUAGE="ko").content.decode()
    assert '김치찌개 <span class="chip-tag">3번</span>' in page
    page = client.get(f"/g/{group.slug}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '김치찌개 <span class="chip-tag">\u00d73</span>' in page


def test_group_page_speaks_korean(client: Client, group) -> None:
    """A Korean browser gets the group page in Korean."""
    page = client.get(f"/g/{group.slug}/", HTTP_ACCEPT_LANGUAGE="ko").content.decode()
    assert "오늘의 방 열기" in page and "우리 단골" in page


# --- Today's room through the API ------------------------------------------------


def test_api_room_is_created_once_then_returned(client: Client, group) -> None:
    """The first call creates the room (201), the next ones return it (200)."""
    first = api(client, "post", f"/api/groups/{group.slug}/room/")
    second = api(client, "post", f"/api/groups/{group.slug}/room/")
    assert (first.status_code, second.status_code) == (201, 200)
    data = second.json()
    assert set(data) == {"id", "url", "ws_url", "expires_at"}
    # Only the opener hears the host token, as with POST /api/rooms/.
    assert first.json() == {**data, "host_token": first.json()["host_token"]}
    assert len(first.json()["host_token"]) >= 22
    assert data["ws_url"] == f"ws://lunch.example/ws/rooms/{data['id']}/"
    Room.objects.filter(pk=data["id"]).update(expires_at=timezone.now())
    third = api(client, "post", f"/api/groups/{group.slug}/room/")
    assert third.status_code == 201 and third.json()["id"] != data["id"]


def test_opening_a_group_room_counts_against_room_creation(client: Client, settings) -> None:
    """Opening a room spends the address's room allowance (429 past it); finding one does not."""
    settings.ROOM_CREATE_PER_MINUTE = 2
    crew, team, other = (group_services.group_create(name=n, language="en") for n in "ABC")
    assert client.post("/api/rooms/", REMOTE_ADDR="10.9.9.9").status_code == 201
    opened = api(client, "post", f"/api/groups/{crew.slug}/room/", REMOTE_ADDR="10.9.9.9")
    assert opened.status_code == 201
    for _ in range(3):  # today's room, found again, is never refused
        again = api(client, "post", f"/api/groups/{crew.slug}/room/", REMOTE_ADDR="10.9.9.9")
        assert (again.status_code, again.json()["id"]) == (200, opened.json()["id"])
    refused = api(client, "post", f"/api/groups/{team.slug}/room/", REMOTE_ADDR="10.9.9.9")
    assert refused.status_code == 429
    assert refused.json() == {"error": "rate_limited", "retry_after": int(refused["Retry-After"])}
    assert 1 <= int(refused["Retry-After"]) <= 61
    page = client.post(f"/g/{other.slug}/room/", REMOTE_ADDR="10.9.9.9")
    assert page.status_code == 429 and 1 <= int(page["Retry-After"]) <= 61
    assert client.post(f"/g/{crew.slug}/room/", REMOTE_ADDR="10.9.9.9").status_code == 303
    assert not Room.objects.filter(group__in=[team, other]).exists()
    elsewhere = api(client, "post", f"/api/groups/{team.slug}/room/", REMOTE_ADDR="10.9.9.10")
    assert elsewhere.status_code == 201


# --- GET / PATCH -----------------------------------------------------------------


def test_api_group_has_room_history_and_favorites(client: Client, group) -> None:
    """GET answers the group with its open room, history newest first and favourites."""
    old = decide(group, "Pho", 2)
    decide(group, "sushi", 1)
    decide(group, "pho", 0.5)
    response = client.get(f"/api/groups/{group.slug}/", HTTP_HOST="lunch.example")
    data = response.json()
    assert response.status_code == 200
    assert (data["slug"], data["name"], data["room"]) == (group.slug, "Team Kimchi", None)
    assert [h["item"] for h in data["history"]] == ["pho", "sushi", "Pho"]
    assert set(data["history"][2]) == {"item", "by", "at", "room"}
    assert data["history"][2]["room"] == old.pk
    assert data["favorites"] == [{"item": "pho", "count": 2}, {"item": "sushi", "count": 1}]
    room, _ = group_services.group_room_open(group=group)
    data = client.get(f"/api/groups/{group.slug}/", HTTP_HOST="lunch.example").json()
    assert data["room"]["id"] == room.pk and data["room"]["url"].endswith(f"/rooms/{room.pk}/")


def test_api_patch_renames_sets_and_clears_the_webhook(client: Client, group, settings) -> None:
    """PATCH changes what it names; null or "" clears the webhook; bad values answer 400."""
    settings.GROUP_WEBHOOK_ALLOW_PRIVATE = True
    path = f"/api/groups/{group.slug}/"
    response = api(client, "patch", path, {"name": "New", "webhook_url": "https://10.0.0.1/x"})
    assert response.status_code == 200 and response.json()["name"] == "New"
    assert response.json()["webhook"]["host"] == "10.0.0.1"
    assert Group.objects.get().webhook_url == "https://10.0.0.1/x"
    assert api(client, "patch", path, {"webhook_url": None}).json()["webhook"] is None
    assert Group.objects.get().webhook_url == ""
    api(client, "patch", path, {"webhook_url": "https://10.0.0.1/x"})
    assert api(client, "patch", path, {"webhook_url": ""}).status_code == 200
    assert Group.objects.get().webhook_url == ""
    settings.GROUP_WEBHOOK_ALLOW_PRIVATE = False
    for body, error in [
        ({"name": ""}, "invalid_name"),
        ({"name": None}, "invalid_name"),
        ({"webhook_url": "https://127.0.0.1/x"}, "invalid_webhook"),
        (b"[]", "bad_message"),
    ]:
        response = api(client, "patch", path, body)
        assert (response.status_code, response.json()) == (400, {"error": error})
    assert Group.objects.get().name == "New"


# --- The room page of a group ----------------------------------------------------


def test_group_room_page_offers_the_favorites(client: Client, group) -> None:
    """A group's room page carries the favourites as json_script `group-favorites`."""
    decide(group, "pho", 1)
    decide(group, "pho", 2)
    decide(group, "김치찌개", 3)
    room, _ = group_services.group_room_open(group=group)
    page = client.get(f"/rooms/{room.pk}/").content.decode()
    script = re.search(r'<script id="group-favorites" type="application/json">(.*?)</script>', page)
    assert json.loads(script[1]) == ["pho", "김치찌개"]
    assert 'id="avoid-recent"' in page and f'href="/g/{group.slug}/"' in page


def test_plain_room_page_has_no_group_parts(client: Client) -> None:
    """A room of no group has no favourites and no avoid-recent switch."""
    room = services.room_create()
    page = client.get(f"/rooms/{room.pk}/").content.decode()
    assert "group-favorites" not in page and "avoid-recent" not in page
