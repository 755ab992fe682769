"""The HTML pages, the QR code, the JS catalogue and the security headers (Django test client)."""

from __future__ import annotations

import ast
import gettext
import io
import json
import random
import re
from datetime import timedelta
from pathlib import Path

import pytest
import segno
from django.test import Client
from django.utils import timezone, translation

from rooms import services
from rooms.models import Item, Room
from rooms.nicknames import nickname_random

pytestmark = pytest.mark.django_db

KO = {"HTTP_ACCEPT_LANGUAGE": "ko-KR,ko;q=0.9,en;q=0.5"}
EN = {"HTTP_ACCEPT_LANGUAGE": "en-US,en;q=0.9"}


def room_config(html: str) -> dict:
    match = re.search(r'<script id="room-config" type="application/json">(.*?)</script>', html)
    assert match, "the room page hands its settings to the script through json_script"
    return json.loads(match.group(1))


def test_home_has_a_create_form_with_csrf(client: Client) -> None:
    """The home page explains itself and posts a CSRF-protected form to create a room."""
    response = client.get("/", **EN)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Where do we eat?" in html
    form = r'<form method="post" action="/rooms/"[^>]*>\s*<input type="hidden" name="csrfmiddleware'
    assert re.search(form, html)
    assert "Create a room" in html


def test_create_form_redirects_to_the_new_room(client: Client) -> None:
    """POST /rooms/ answers 303 to the room, which then opens."""
    response = client.post("/rooms/")
    assert response.status_code == 303
    assert re.fullmatch(r"/rooms/[\w-]{16,}/", response["Location"])
    assert client.get(response["Location"]).status_code == 200


def test_create_form_refuses_a_missing_csrf_token() -> None:
    """A cross-site form cannot create rooms on someone's behalf."""
    strict = Client(enforce_csrf_checks=True)
    assert strict.post("/rooms/").status_code == 403


def test_home_lists_only_the_rooms_this_browser_opened_that_are_alive(client: Client) -> None:
    """Recent rooms: newest first, with their first ideas or decision; expired ones are gone."""
    old, decided, fresh, foreign = (services.room_create() for _ in range(4))
    Item.objects.create(room=fresh, name="Kimchi stew", key="kimchi stew")
    Item.objects.create(room=fresh, name="Pho", key="pho")
    Room.objects.filter(pk=decided.pk).update(decision_item="Tacos", decided_at=timezone.now())
    for room in (old, decided, fresh):
        assert client.get(f"/rooms/{room.pk}/").status_code == 200
    Room.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    html = client.get("/", **EN).content.decode()
    links = re.findall(r'href="/rooms/([\w-]+)/"', html)
    assert links == [fresh.pk, decided.pk]
    assert foreign.pk not in html
    assert "Kimchi stew, Pho" in html
    assert "Eating Tacos" in html


def test_room_page_hands_the_client_its_settings(client: Client) -> None:
    """The page carries the WebSocket path, limits, expiry and a friendly nickname."""
    room = services.room_create()
    response = client.get(f"/rooms/{room.pk}/", **EN)
    assert response.status_code == 200
    config = room_config(response.content.decode())
    assert config["wsPath"] == f"/ws/rooms/{room.pk}/"
    assert config["roomUrl"] == f"http://testserver/rooms/{room.pk}/"
    assert config["maxParticipants"] == 10
    assert config["expiresAt"] == room.expires_at.isoformat()
    assert 0 < len(config["suggestedName"]) <= config["maxNameLength"]
    assert f'src="/rooms/{room.pk}/qr.svg"' in response.content.decode()


def test_room_page_starts_the_session_that_is_the_participant(client: Client) -> None:
    """Opening a room sets the session cookie the WebSocket uses as the person's identity."""
    room = services.room_create()
    response = client.get(f"/rooms/{room.pk}/")
    assert "sessionid" in response.cookies
    assert response.cookies["sessionid"]["httponly"]
    assert room.pk in client.session["recent_rooms"]


def test_unknown_and_expired_rooms_have_their_own_pages(client: Client) -> None:
    """404 for a room that never existed, 410 for one that expired; both offer a new room."""
    missing = client.get("/rooms/nope/", **EN)
    assert missing.status_code == 404
    assert "This room does not exist." in missing.content.decode()
    room = services.room_create()
    Room.objects.filter(pk=room.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    gone = client.get(f"/rooms/{room.pk}/", **KO)
    assert gone.status_code == 410
    html = gone.content.decode()
    assert "방이 닫혔어요." in html
    assert 'action="/rooms/"' in html


def test_qr_code_encodes_the_room_link(client: Client) -> None:
    """The QR code is an SVG of exactly the room's absolute link."""
    room = services.room_create()
    response = client.get(f"/rooms/{room.pk}/qr.svg")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert response.content.startswith(b"<svg")
    # Same symbol as segno draws for the link: the code scans to this room and no other.
    expected = segno.make(f"http://testserver/rooms/{room.pk}/", error="m")
    other = segno.make(f"http://testserver/rooms/{room.pk}x/", error="m")
    drawn = [io.BytesIO(), io.BytesIO()]
    for qr, buffer in zip((expected, other), drawn, strict=True):
        qr.save(
            buffer, kind="svg", scale=6, border=2, dark="#3b2418", light="#fffaf3", xmldecl=False
        )
    assert response.content == drawn[0].getvalue()
    assert response.content != drawn[1].getvalue()


def test_qr_code_of_unknown_or_expired_rooms(client: Client) -> None:
    """No QR code for a room nobody can join."""
    assert client.get("/rooms/nope/qr.svg").status_code == 404
    room = services.room_create()
    Room.objects.filter(pk=room.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get(f"/rooms/{room.pk}/qr.svg").status_code == 410


def test_korean_from_accept_language_and_english_by_default(client: Client) -> None:
    """ko-KR gets the Korean page; en-US and no preference get English."""
    korean = client.get("/", **KO).content.decode()
    assert '<html lang="ko">' in korean
    assert "점심 뭐 먹을까요?" in korean
    assert "방 만들기" in korean
    english = Client().get("/", **EN).content.decode()
    assert '<html lang="en">' in english
    assert "Create a room" in english
    assert '<html lang="en">' in Client().get("/").content.decode()


def test_language_switch_sticks(client: Client) -> None:
    """The header switch (set_language) overrides the browser's language for later pages."""
    response = client.post("/i18n/setlang/", {"language": "ko", "next": "/"}, **EN)
    assert response.status_code == 302
    assert "점심 뭐 먹을까요?" in client.get("/", **EN).content.decode()


def test_javascript_strings_are_translated(client: Client) -> None:
    """The JS catalogue carries the client's strings in Korean for a Korean browser."""
    korean = client.get("/jsi18n/", **KO)
    assert korean.status_code == 200
    assert "javascript" in korean["Content-Type"]
    body = korean.content.decode()
    for text in ("연결됨", "이미 목록에 있어요."):
        assert text in body or json.dumps(text)[1:-1] in body, text
    english = client.get("/jsi18n/", **EN).content.decode()
    assert "연결됨" not in english and json.dumps("연결됨")[1:-1] not in english


def test_room_page_scripts_obey_a_strict_csp(client: Client) -> None:
    """CSP forbids inline scripts; the page's scripts are external files or inert JSON."""
    room = services.room_create()
    response = client.get(f"/rooms/{room.pk}/")
    policy = response["Content-Security-Policy"]
    script_src = next(d for d in policy.split("; ") if d.startswith("script-src"))
    assert "'unsafe-inline'" not in policy
    assert "'unsafe-eval'" not in policy
    assert re.fullmatch(r"script-src 'self' 'nonce-[\w-]+'", script_src)
    assert "style-src 'self'" in policy
    html = response.content.decode()
    scripts = re.findall(r"<script([^>]*)>", html)
    assert len(scripts) == 5  # the config, timezone.js, install.js, the catalogue, room.js
    for attributes in scripts:
        assert ('src="/' in attributes) or ('type="application/json"' in attributes), attributes
    for tag in re.findall(r"<[a-z][^>]*>", html):
        bare = re.sub(r'"[^"]*"', '""', tag)  # attribute values may say anything
        assert not re.search(r"\s(on\w+|style)=", bare), tag


def test_nicknames_are_friendly_in_both_languages() -> None:
    """The suggested nickname is short, has two words, and follows the active language."""
    with translation.override("en"):
        english = nickname_random(random.Random(1))
    with translation.override("ko"):
        korean = nickname_random(random.Random(1))
    assert len(english.split()) == 2 and english.isascii()
    assert len(korean.split()) == 2 and not korean.isascii()
    assert len(english) <= 24 and len(korean) <= 24


def _po_translations(path: Path) -> dict[tuple[str, str], str]:
    """(context, msgid) -> first msgstr of a .po file: just enough of the format for this check."""
    entries: dict[tuple[str, str], str] = {}
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        fields: dict[str, str] = {}
        current = ""
        for line in block.splitlines():
            match = re.match(
                r'^(msgctxt|msgid|msgid_plural|msgstr(?:\[0\])?|msgstr\[\d+\]) "(.*)"$', line
            )
            if match:
                current = match.group(1)
                fields[current] = ast.literal_eval(f'"{match.group(2)}"')
            elif line.startswith('"') and current:
                fields[current] += ast.literal_eval(line)
        if fields.get("msgid"):
            text = fields.get("msgstr", fields.get("msgstr[0]", ""))
            entries[(fields.get("msgctxt", ""), fields["msgid"])] = text
    return entries


@pytest.mark.parametrize("domain", ["django", "djangojs"])
def test_committed_korean_catalogues_are_complete_and_compiled(domain: str) -> None:
    """Every Korean string is translated, and the committed .mo says what the .po says."""
    folder = Path(__file__).resolve().parent.parent / "locale" / "ko" / "LC_MESSAGES"
    entries = _po_translations(folder / f"{domain}.po")
    assert entries
    untranslated = [msgid for msgid, text in entries.items() if not text]
    assert not untranslated
    with (folder / f"{domain}.mo").open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    for (context, msgid), text in entries.items():
        found = compiled.pgettext(context, msgid) if context else compiled.gettext(msgid)
        assert found == text, f"{msgid!r}: run compilemessages (docs/i18n.md)"


def test_expired_link_shows_the_decision_and_the_list_read_only(client: Client) -> None:
    """The link of an ended room (also the one in "Share the news") still tells what was
    decided and what was on the list: 410, no form to change it."""
    room = services.room_create()
    Item.objects.create(room=room, name="Kimchi stew", key="kimchi stew")
    Item.objects.create(room=room, name="Pho", key="pho")
    Room.objects.filter(pk=room.pk).update(
        decision_item="Pho",
        decided_at=timezone.now(),
        expires_at=timezone.now() - timedelta(seconds=1),
    )
    response = client.get(f"/rooms/{room.pk}/", **EN)
    assert response.status_code == 410
    html = response.content.decode()
    assert "This room is closed." in html
    assert "You decided on Pho." in html
    assert re.findall(r'<span class="item-name">([^<]*)</span>', html) == ["Kimchi stew", "Pho"]
    assert 'id="item-input"' not in html and "room-config" not in html
    korean = client.get(f"/rooms/{room.pk}/", **KO).content.decode()
    assert "Pho로 정했어요." in korean


def test_links_use_the_address_the_page_was_opened_on(client: Client, settings) -> None:
    """A page opened on the LAN address shares that address (link field, config, QR code)."""
    settings.ALLOWED_HOSTS = ["127.0.0.1", "192.168.1.23", "lunchbox.local"]
    room = services.room_create()
    for host in ("192.168.1.23:8000", "lunchbox.local:8000"):
        html = client.get(f"/rooms/{room.pk}/", HTTP_HOST=host).content.decode()
        expected = f"http://{host}/rooms/{room.pk}/"
        assert room_config(html)["shareUrl"] == expected
        assert f'value="{expected}"' in html
        assert "Friends on the same network" not in html


def test_page_opened_on_loopback_offers_the_lan_address(client: Client, settings) -> None:
    """Opened on 127.0.0.1, the link and the QR code carry the LAN address friends can open."""
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]", "192.168.1.23"]
    room = services.room_create()
    response = client.get(f"/rooms/{room.pk}/", HTTP_HOST="127.0.0.1:8000", **EN)
    html = response.content.decode()
    lan = f"http://192.168.1.23:8000/rooms/{room.pk}/"
    assert room_config(html)["shareUrl"] == lan
    assert room_config(html)["roomUrl"] == f"http://127.0.0.1:8000/rooms/{room.pk}/"
    assert f'value="{lan}"' in html
    assert "Friends on the same network can open this address." in html
    qr = client.get(f"/rooms/{room.pk}/qr.svg", HTTP_HOST="127.0.0.1:8000").content
    drawn = io.BytesIO()
    segno.make(lan, error="m").save(
        drawn, kind="svg", scale=6, border=2, dark="#3b2418", light="#fffaf3", xmldecl=False
    )
    assert qr == drawn.getvalue()
    # Without a LAN address being served (make dev), loopback stays loopback.
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
    html = client.get(f"/rooms/{room.pk}/", HTTP_HOST="127.0.0.1:8000").content.decode()
    assert room_config(html)["shareUrl"] == f"http://127.0.0.1:8000/rooms/{room.pk}/"


def test_public_url_fixes_the_links_behind_a_proxy(client: Client, settings) -> None:
    """PUBLIC_URL wins over the address daphne saw: page, QR code and API answer."""
    settings.PUBLIC_URL = "https://lunch.example"
    room = services.room_create()
    html = client.get(f"/rooms/{room.pk}/").content.decode()
    assert room_config(html)["shareUrl"] == f"https://lunch.example/rooms/{room.pk}/"
    body = client.post("/api/rooms/").json()
    assert body["url"] == f"https://lunch.example/rooms/{body['id']}/"
    assert body["ws_url"] == f"wss://lunch.example/ws/rooms/{body['id']}/"


def test_room_page_explains_the_countdown_and_hands_over_the_limits(client: Client) -> None:
    """The idle countdown says what it counts; the limits the script checks come from here."""
    room = services.room_create()
    html = client.get(f"/rooms/{room.pk}/", **EN).content.decode()
    assert "A room closes after 10 minutes without activity" in html
    config = room_config(html)
    assert config["maxItemLength"] == 60 and config["maxNameLength"] == 24
    assert 'maxlength="60"' in html and 'maxlength="24"' in html


def test_client_scripts_copy_no_server_limits_and_write_no_html() -> None:
    """The room's scripts take limits from the config and never put strings in as HTML."""
    folder = Path(__file__).resolve().parent.parent / "static" / "rooms"
    scripts = [folder / "room.js", *sorted((folder / "js").glob("*.js"))]
    assert len(scripts) >= 4
    for script in scripts:
        text = script.read_text(encoding="utf-8")
        for needle in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
            assert needle not in text, (script.name, needle)
        # A length check against a number written in the script is a copied server limit.
        assert not re.search(r"length\s*[<>]=?\s*[1-9]", text), script.name
        assert "config.maxNameLength" in text or script.name != "room.js"
