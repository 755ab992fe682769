"""The installable page's parts over HTTP: the manifest in both languages, the worker served
from the root, the offline page, and the policy that lets the browser load them."""

from __future__ import annotations

import json
import struct

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.test import Client

pytestmark = pytest.mark.django_db


def test_the_manifest_names_the_site_and_its_icons(client: Client) -> None:
    """A manifest a browser can install from, with PNG icons of the sizes it says."""
    response = client.get("/manifest.webmanifest")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/manifest+json"
    manifest = json.loads(response.content)
    assert manifest["start_url"] == manifest["scope"] == "/"
    assert manifest["display"] == "standalone" and manifest["lang"] == "en"
    assert manifest["theme_color"] in client.get("/").content.decode()
    for icon in manifest["icons"]:
        path = finders.find(icon["src"].removeprefix(settings.STATIC_URL))
        assert path, icon
        if icon["type"] == "image/png":
            with open(path, "rb") as file:
                header = file.read(24)
            assert icon["sizes"] == "{}x{}".format(*struct.unpack(">II", header[16:24]))


def test_the_manifest_and_offline_page_speak_korean(client: Client) -> None:
    """A Korean browser gets the manifest's description and the offline page in Korean."""
    manifest = json.loads(client.get("/manifest.webmanifest", HTTP_ACCEPT_LANGUAGE="ko").content)
    assert manifest["lang"] == "ko" and manifest["description"] == "점심 뭐 먹을까요? · lunchsite"
    offline = client.get("/offline/", HTTP_ACCEPT_LANGUAGE="ko").content.decode()
    assert "인터넷에 연결되어 있지 않아요." in offline


def test_the_worker_is_served_from_the_root_and_always_revalidated(client: Client) -> None:
    """/sw.js is JavaScript the browser checks on every visit, with the site as its scope."""
    response = client.get("/sw.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert response["Cache-Control"] == "no-cache"
    assert b'OFFLINE_URL = "/offline/"' in b"".join(response.streaming_content)


def test_pages_link_the_manifest_and_the_policy_allows_the_worker(client: Client) -> None:
    """Every page links the manifest and registers the worker; the CSP names both."""
    page = client.get("/")
    html = page.content.decode()
    assert 'rel="manifest" href="/manifest.webmanifest"' in html
    assert "rooms/install.js" in html and 'rel="apple-touch-icon"' in html
    policy = page["Content-Security-Policy"]
    assert "manifest-src 'self'" in policy and "worker-src 'self'" in policy
