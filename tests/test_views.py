"""The HTTP contract: create a room by form or API, read its state, check health."""

import json
import logging
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from rooms import services
from rooms.models import Room


@pytest.fixture(autouse=True)
def lunch_host(settings) -> None:
    settings.ALLOWED_HOSTS = ["lunch.example", "testserver"]


pytestmark = pytest.mark.django_db


def test_form_creates_room_and_redirects_303(client: Client) -> None:
    """POST /rooms/ answers 303 to the new room's page."""
    response = client.post("/rooms/")
    assert response.status_code == 303
    room = Room.objects.get()
    assert response["Location"] == f"/rooms/{room.pk}/"


def test_form_requires_csrf() -> None:
    """The create form is CSRF-protected."""
    client = Client(enforce_csrf_checks=True)
    assert client.post("/rooms/").status_code == 403
    assert Room.objects.count() == 0


def test_api_creates_room_without_csrf() -> None:
    """POST /api/rooms/ (no token, empty body or {}) answers 201 with absolute URLs."""
    client = Client(enforce_csrf_checks=True)
    for body in [b"", b"{}"]:
        response = client.post(
            "/api/rooms/", data=body, content_type="application/json", HTTP_HOST="lunch.example"
        )
        assert response.status_code == 201
        data = response.json()
        assert set(data) == {"id", "url", "ws_url", "expires_at", "host_token"}
        assert data["url"] == f"http://lunch.example/rooms/{data['id']}/"
        assert data["ws_url"] == f"ws://lunch.example/ws/rooms/{data['id']}/"
        assert timezone.datetime.fromisoformat(data["expires_at"]).tzinfo is not None


def test_api_urls_follow_https(settings) -> None:
    """Behind TLS the URLs are https:// and wss://."""
    client = Client()
    response = client.post("/api/rooms/", secure=True, HTTP_HOST="lunch.example")
    data = response.json()
    assert data["url"].startswith("https://lunch.example/rooms/")
    assert data["ws_url"].startswith("wss://lunch.example/ws/rooms/")


def test_api_rejects_a_body_that_is_not_an_object(client: Client) -> None:
    """Anything but an empty body or a JSON object is a 400 bad_message."""
    response = client.post("/api/rooms/", data=b"[1]", content_type="application/json")
    assert (response.status_code, response.json()) == (400, {"error": "bad_message"})
    assert Room.objects.count() == 0


def test_room_creation_is_rate_limited(client: Client, settings) -> None:
    """Past ROOM_CREATE_PER_MINUTE, 429 with Retry-After, by form and by API."""
    settings.ROOM_CREATE_PER_MINUTE = 2
    client.post("/api/rooms/", REMOTE_ADDR="10.9.9.9")
    client.post("/rooms/", REMOTE_ADDR="10.9.9.9")
    for path in ["/api/rooms/", "/rooms/"]:
        response = client.post(path, REMOTE_ADDR="10.9.9.9")
        assert response.status_code == 429
        assert 1 <= int(response["Retry-After"]) <= 61
    assert client.post("/api/rooms/", REMOTE_ADDR="10.9.9.10").status_code == 201
    assert Room.objects.count() == 3


def test_api_state(client: Client) -> None:
    """GET /api/rooms/<id>/ is the state event without its type."""
    room = services.room_create()
    data = client.get(f"/api/rooms/{room.pk}/").json()
    assert "type" not in data
    assert data["room"]["id"] == room.pk
    assert data["items"] == [] and data["participants"] == []
    assert data["version"] == 0


def test_api_state_unknown_and_expired(client: Client) -> None:
    """404 room_not_found for unknown or malformed ids, 410 room_expired for dead rooms."""
    for room_id in ["nope", "AAAAAAAAAAAAAAAA", "%00"]:
        response = client.get(f"/api/rooms/{room_id}/")
        assert (response.status_code, response.json()) == (404, {"error": "room_not_found"})
    room = services.room_create()
    Room.objects.filter(pk=room.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.get(f"/api/rooms/{room.pk}/")
    assert (response.status_code, response.json()) == (410, {"error": "room_expired"})


def test_room_page_statuses(client: Client) -> None:
    """The room page is 200 while alive, 404 unknown, 410 expired or closed."""
    room = services.room_create()
    assert client.get(f"/rooms/{room.pk}/").status_code == 200
    assert client.get("/rooms/unknown000000000/").status_code == 404
    services.room_close(room=room)
    assert client.get(f"/rooms/{room.pk}/").status_code == 410


def test_room_page_gives_the_browser_a_session(client: Client) -> None:
    """Opening a room sets the session cookie that identifies the participant."""
    room = services.room_create()
    response = client.get(f"/rooms/{room.pk}/")
    assert "sessionid" in response.cookies


def test_livez_and_readyz_say_ok(client: Client) -> None:
    """/livez and /readyz (and the older /healthz) say ok, and nothing more, when all answers."""
    for path in ("/livez", "/readyz", "/healthz"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert json.loads(response.content) == {"status": "ok"}, path
        assert response["Cache-Control"] == "no-store"


def test_livez_checks_nothing(client: Client, settings, django_assert_num_queries) -> None:
    """/livez answers 200 with the channel layer dead and without a database query."""
    from tests.support.processes import free_port

    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{free_port()}/0"]},
        }
    }
    with django_assert_num_queries(0):
        response = client.get("/livez")
    assert response.status_code == 200


def test_readyz_shows_no_error_text_and_logs_it(client: Client, settings, caplog) -> None:
    """With Redis unreachable, /readyz is 503 with no detail; the log says which part and why."""
    from tests.support.processes import free_port

    port = free_port()
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{port}/0"]},
        }
    }
    with caplog.at_level(logging.WARNING, logger="lunchsite.outage"):
        response = client.get("/readyz")
        assert client.get("/healthz").status_code == 503
    assert response.status_code == 503
    assert json.loads(response.content) == {"status": "unavailable"}
    said = [
        r.getMessage() for r in caplog.records if "readiness check channel_layer" in r.getMessage()
    ]
    assert len(said) == 1 and str(port) in said[0], caplog.text  # once, with the reason


def test_probes_answer_on_the_workers_own_address(client: Client) -> None:
    """A probe with the worker's address as Host is answered; a page with it is refused."""
    host = "10.1.2.3:8001"  # not in ALLOWED_HOSTS
    assert client.get("/readyz", HTTP_HOST=host).status_code == 200
    assert client.get("/livez", HTTP_HOST=host).status_code == 200
    assert client.get("/", HTTP_HOST=host).status_code == 400
    assert client.post("/readyz").status_code == 405


def test_room_creation_survives_a_cache_outage(client: Client, monkeypatch) -> None:
    """With the rate limiter's cache (Redis) down, rooms are still created (per-process limit)."""
    from django.core.cache import cache

    def down(*args, **kwargs):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(cache, "add", down)
    monkeypatch.setattr(cache, "incr", down)
    assert client.post("/api/rooms/").status_code == 201
    assert client.post("/rooms/").status_code == 303


def test_room_creation_limit_falls_back_to_this_process_without_the_cache(
    client: Client, monkeypatch, settings
) -> None:
    """Cache down: the creation limit still holds, counted in this process."""
    from django.core.cache import cache

    def down(*args, **kwargs):
        raise ConnectionError("Redis is down")

    settings.ROOM_CREATE_PER_MINUTE = 2
    monkeypatch.setattr(cache, "add", down)
    statuses = [client.post("/api/rooms/").status_code for _ in range(5)]
    assert statuses.count(429) >= 1 and statuses.count(201) <= 4, statuses


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("get", "/api/nothing/", 404, "not_found"),
        ("put", "/api/rooms/", 405, "method_not_allowed"),
        ("post", "/api/rooms/abc/", 405, "method_not_allowed"),
    ],
)
def test_every_api_error_is_json(client: Client, method, path, status, code) -> None:
    """Errors under /api/ answer JSON with an error code, never Django's HTML pages."""
    response = getattr(client, method)(path)
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {"error": code}


def test_api_database_outage_is_503_server_busy(client: Client, monkeypatch) -> None:
    """A database that stays unreachable: 503 {"error": "server_busy"} with Retry-After."""
    from django.db import OperationalError

    from rooms import views

    def down(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(views.selectors, "room_get_open", down)
    response = client.get("/api/rooms/abcdefgh/")
    assert response.status_code == 503
    assert json.loads(response.content) == {"error": "server_busy"}
    assert int(response["Retry-After"]) > 0


def test_api_retries_once_on_a_lost_connection(client: Client, monkeypatch) -> None:
    """A connection that broke under a view: the view runs once more and answers."""
    from django.db import OperationalError

    from rooms import views

    room = services.room_create()
    real = views.selectors.room_get_open
    calls = []

    def lost_once(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise OperationalError("terminating connection due to administrator command")
        return real(**kwargs)

    monkeypatch.setattr(views.selectors, "room_get_open", lost_once)
    response = client.get(f"/api/rooms/{room.pk}/")
    assert response.status_code == 200
    assert len(calls) == 2


def test_pages_keep_their_html_errors(client: Client) -> None:
    """Only /api/ is turned into JSON: a missing page is still the site's HTML 404."""
    response = client.get("/nothing-here/")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")
