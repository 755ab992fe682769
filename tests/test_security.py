"""Production hardening: deploy checks, secrets, headers, admin, origins, CSRF, ids, XSS, limits."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import connection as db_connection
from django.test import Client
from django.utils import timezone

from lunchsite.asgi import application
from rooms import services
from rooms.models import Participant, Room, new_room_id
from tests.support.processes import manage


@pytest.fixture
async def close_db_thread() -> AsyncIterator[None]:
    """Close the database connection of sync_to_async's thread, so the test DB can be dropped."""
    yield
    # looked up inside the thread: each thread has its own connection
    await sync_to_async(lambda: db_connection.close())()


PROJECT_DIR = Path(__file__).resolve().parent.parent
XSS_ITEM = "<script>alert(1)</script>"
XSS_NAME = "<img src=x onerror=a()>"


# --- Settings ---------------------------------------------------------------------


def test_check_deploy_is_clean_with_production_settings() -> None:
    """`check --deploy` has nothing to say with DEBUG off and the HTTPS settings turned on."""
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_DEBUG="0",
        DJANGO_HTTPS="1",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="lunch.example.com",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    "secret_key",
    [None, "", "django-insecure-lunchsite-development-only", "changeme", "x" * 49],
    ids=["missing", "empty", "default", "short", "49-chars"],
)
def test_start_up_refuses_a_missing_or_weak_secret_key(secret_key: str | None) -> None:
    """With DEBUG off, no secret key, the development default or a short one stops start-up."""
    env = {"DJANGO_DEBUG": "0"}
    if secret_key is not None:
        env["DJANGO_SECRET_KEY"] = secret_key
    result = manage("check", **env)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr
    assert manage("check", **{**env, "DJANGO_DEBUG": "1"}).returncode == 0  # development


# --- Headers, admin, CSRF -----------------------------------------------------------


@pytest.fixture
def rooms(db) -> dict[str, Room]:
    active = services.room_create()
    expired = services.room_create()
    Room.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    return {"active": active, "expired": expired}


def assert_security_headers(response, path: str) -> None:
    assert response["X-Content-Type-Options"] == "nosniff", path
    assert response["Referrer-Policy"] == "same-origin", path
    assert response["X-Frame-Options"] == "DENY", path
    csp = response["Content-Security-Policy"]
    for directive in ("default-src 'self'", "object-src 'none'", "frame-ancestors 'none'"):
        assert directive in csp, (path, csp)
    script_src = next(d for d in csp.split(";") if d.strip().startswith("script-src"))
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src


def test_security_headers_on_every_page(client: Client, rooms: dict[str, Room]) -> None:
    """CSP, Referrer-Policy, nosniff and frame denial on pages, API answers and errors alike."""
    active, expired = rooms["active"].pk, rooms["expired"].pk
    gets = {
        "/": 200,
        f"/rooms/{active}/": 200,
        f"/rooms/{active}/qr.svg": 200,
        f"/rooms/{expired}/": 410,
        "/rooms/no-such-room/": 404,
        f"/api/rooms/{active}/": 200,
        f"/api/rooms/{expired}/": 410,
        "/api/rooms/no-such-room/": 404,
        "/admin/login/": 200,
        "/no/such/page": 404,
    }
    for path, status in gets.items():
        response = client.get(path)
        assert response.status_code == status, path
        assert_security_headers(response, path)
    for path, status in {"/api/rooms/": 201, "/rooms/": 303}.items():
        response = client.post(path)
        assert response.status_code == status, path
        assert_security_headers(response, path)
    for path in ("/livez", "/readyz"):  # answered ahead of the page middleware: JSON only
        probe = client.get(path)
        assert probe["X-Content-Type-Options"] == "nosniff", path
        assert probe["X-Frame-Options"] == "DENY", path
        assert probe["Content-Security-Policy"].startswith("default-src 'none'"), path
    static = client.get("/static/rooms/room.js")
    assert static.status_code == 200
    assert static["X-Content-Type-Options"] == "nosniff"


def test_admin_is_for_staff_only(client: Client, rooms: dict[str, Room]) -> None:
    """Anonymous and non-staff users are sent to the login page; staff get in."""
    paths = ["/admin/", "/admin/rooms/room/", f"/admin/rooms/room/{rooms['active'].pk}/change/"]
    for path in paths:
        response = client.get(path)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], path
    User.objects.create_user("eater", password="pw-" + secrets.token_hex(8))
    client.force_login(User.objects.get(username="eater"))
    for path in paths:
        response = client.get(path)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], path
    staff = User.objects.create_superuser("boss", password="pw-" + secrets.token_hex(8))
    client.force_login(staff)
    for path in paths:
        assert client.get(path).status_code == 200, path


def test_room_form_is_csrf_protected(db) -> None:
    """POST /rooms/ without the form's CSRF token is refused; with it, a room is made."""
    browser = Client(enforce_csrf_checks=True)
    assert browser.post("/rooms/").status_code == 403
    assert Room.objects.count() == 0
    home = browser.get("/")
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', home.content)
    assert token, "the home page's form carries a CSRF token"
    response = browser.post("/rooms/", {"csrfmiddlewaretoken": token.group(1).decode()})
    assert response.status_code == 303
    assert Room.objects.count() == 1
    # Cross-site: a token from elsewhere does not pass.
    other = Client(enforce_csrf_checks=True)
    assert other.post("/rooms/", {"csrfmiddlewaretoken": "x" * 64}).status_code == 403


def test_api_create_needs_no_csrf_token(db) -> None:
    """POST /api/rooms/ is for API clients without cookies (rate-limited instead)."""
    assert Client(enforce_csrf_checks=True).post("/api/rooms/").status_code == 201


# --- Room ids -------------------------------------------------------------------------

MALFORMED_IDS = [
    "x",
    "a" * 200,
    "%00",
    "nul%00byte",
    "%F0%9F%8D%95",
    "'%20OR%20'1'='1",
    "%3Cscript%3E",
    "room.name",
]


def without_nonce(content: bytes) -> bytes:
    """The page without its per-response parts: CSP nonce, masked CSRF token, its own path."""
    content = re.sub(rb"nonce-?[=\"'][^\"' ]+", b"nonce", content)
    content = re.sub(rb'name="csrfmiddlewaretoken" value="[^"]+"', b"csrf", content)
    # The language switcher's form returns to the page it is on.
    return re.sub(rb'name="next" type="hidden" value="[^"]*"', b"next", content)


def test_room_ids_are_unguessable() -> None:
    """Ids carry 96 random bits in URL-safe characters."""
    ids = {new_room_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{16}", room_id) for room_id in ids)


def test_unknown_id_answers_exactly_like_a_malformed_one(client: Client, db) -> None:
    """Page and API: an unknown id and any malformed one get the same status and body."""
    unknown = new_room_id()
    for prefix in ("/rooms/", "/api/rooms/"):
        reference = client.get(f"{prefix}{unknown}/")
        assert reference.status_code == 404
        for bad in MALFORMED_IDS:
            response = client.get(f"{prefix}{bad}/")
            assert response.status_code == 404, bad
            assert response["Content-Type"] == reference["Content-Type"], bad
            assert without_nonce(response.content) == without_nonce(reference.content), bad
    assert client.get(f"/api/rooms/{unknown}/").json() == {"error": "room_not_found"}


async def ws_answer(path: str) -> tuple[dict, int | None]:
    communicator = WebsocketCommunicator(application, path)
    connected, _ = await communicator.connect()
    assert connected
    event = json.loads(await communicator.receive_from(3))
    closed = await communicator.receive_output(3)
    await communicator.disconnect()
    return event, closed.get("code")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_db_thread")
async def test_unknown_and_malformed_ids_answer_alike_over_websocket() -> None:
    """Over WebSocket too: room_not_found then 4404, whatever the id looks like."""
    reference = await ws_answer(f"/ws/rooms/{new_room_id()}/")
    assert reference[0]["code"] == "room_not_found" and reference[1] == 4404
    for bad in ["x", "a" * 64, "%00", "\u0000", "🍕", "'OR'1'='1", "room.name"]:
        assert await ws_answer(f"/ws/rooms/{bad}/") == reference, bad


# --- Origins ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_db_thread")
@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (None, True),  # terminal clients send none
        (b"http://127.0.0.1:8000", True),
        (b"https://localhost", True),
        (b"https://evil.example", False),
        (b"http://localhost.evil.example", False),
        (b"http://127.0.0.1.nip.io", False),
        (b"null", False),
        (b"", False),
    ],
)
async def test_foreign_origin_is_refused_at_the_handshake(origin: bytes | None, allowed: bool):
    """A browser Origin must be one of ALLOWED_HOSTS; no Origin at all is a terminal client."""
    room = await sync_to_async(services.room_create)()
    headers = [(b"origin", origin)] if origin is not None else []
    communicator = WebsocketCommunicator(application, f"/ws/rooms/{room.pk}/", headers=headers)
    connected, _ = await communicator.connect()
    assert connected is allowed
    if allowed:
        assert json.loads(await communicator.receive_from(3))["type"] == "welcome"
    await communicator.disconnect()
    assert await sync_to_async(Participant.objects.filter(room=room).count)() == int(allowed)


# --- Stored XSS -----------------------------------------------------------------------


def test_markup_in_names_is_stored_and_returned_as_data(client: Client, db) -> None:
    """Item and participant names with markup come back verbatim in JSON, escaped in HTML."""
    room = services.room_create()
    participant = Participant.objects.create(room=room, name="p")
    services.item_add(room_id=room.pk, participant_id=participant.pk, name=XSS_ITEM)
    services.participant_rename(room_id=room.pk, participant_id=participant.pk, name=XSS_NAME)
    services.mark_toggle(room_id=room.pk, participant_id=participant.pk, name=XSS_ITEM, kind="vote")
    state = client.get(f"/api/rooms/{room.pk}/").json()
    assert state["items"][0]["name"] == XSS_ITEM
    assert state["items"][0]["added_by"] == XSS_NAME
    assert state["items"][0]["voters"] == [XSS_NAME]
    page = client.get(f"/rooms/{room.pk}/").content.decode()
    assert XSS_ITEM not in page and "<img src=x" not in page


def test_the_browser_client_never_parses_text_as_html() -> None:
    """The room script puts server text into the page with textContent, never as HTML."""
    scripts = list((PROJECT_DIR / "static").rglob("*.js"))
    assert scripts
    for script in scripts:
        source = script.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in source, f"{script.name} uses {sink}"


# --- Rate limits ----------------------------------------------------------------------


def test_room_creation_is_rate_limited_per_address(client: Client, settings, db) -> None:
    """Past ROOM_CREATE_PER_MINUTE an address gets 429 with Retry-After; others do not."""
    settings.ROOM_CREATE_PER_MINUTE = 2
    cache.clear()
    for _ in range(2):
        assert client.post("/api/rooms/", REMOTE_ADDR="203.0.113.7").status_code == 201
    refused = client.post("/api/rooms/", REMOTE_ADDR="203.0.113.7")
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 61
    assert refused.json()["error"] == "rate_limited"
    form = client.post("/rooms/", REMOTE_ADDR="203.0.113.7")
    assert form.status_code == 429 and 1 <= int(form["Retry-After"]) <= 61
    assert Room.objects.count() == 2
    assert client.post("/api/rooms/", REMOTE_ADDR="198.51.100.1").status_code == 201
    settings.ROOM_CREATE_PER_MINUTE = 0  # 0: no limit
    assert client.post("/api/rooms/", REMOTE_ADDR="203.0.113.7").status_code == 201


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ([], ""),
        ([(b"cookie", b"csrftoken=abc; sessionid=k3y0fthe5e55ion; lang=ko")], "k3y0fthe5e55ion"),
        ([(b"cookie", b"sessionid=short")], ""),  # Django refuses keys under 8 characters
        ([(b"cookie", b"csrftoken=abc")], ""),
        ([(b"origin", b"https://x.example"), (b"cookie", b"sessionid=abcdefgh")], "abcdefgh"),
    ],
)
def test_the_handshake_takes_the_session_key_from_the_cookie(headers, key) -> None:
    """A WebSocket's browser session is its sessionid cookie, as Django's backends read it."""
    from lunchsite.security import session_key_from

    assert session_key_from(headers) == key
