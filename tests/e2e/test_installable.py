"""The installable page in a real Chromium against daphne: Chromium's own installability check,
the manifest and its icons, the service worker registered and in control, the offline page
when the server is down, and nothing of a room in the worker's cache."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, expect, sync_playwright

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, DESKTOP, open_room
from tests.support.client import create_room
from tests.support.processes import DaphneServer

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]
    return struct.unpack(">II", data[16:24])


@pytest.fixture
def profile(tmp_path: Path) -> Iterator[BrowserContext]:
    """Chromium with a profile on disk: a browser context of its own is incognito, where
    Chromium never offers to install anything."""
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path / "profile",
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=DESKTOP,
            locale="en-US",
        )
        context.set_default_timeout(10_000)
        yield context
        context.close()


def test_the_page_installs_and_works_offline(
    daphne_factory: Callable[..., DaphneServer], profile: BrowserContext
) -> None:
    """Chromium finds the site installable; the worker shows the offline page when daphne is
    stopped, and has kept no room, API answer or page it served."""
    server = daphne_factory()
    room = create_room(server.http_url)
    context = profile
    page = context.new_page()
    page.goto(server.http_url + "/")

    # The manifest, as the browser fetches it from the page's <link rel=manifest>.
    manifest = page.evaluate(
        """async () => {
          const link = document.querySelector('link[rel=manifest]');
          const answer = await fetch(link.href);
          return {type: answer.headers.get('content-type'), body: await answer.json()};
        }"""
    )
    assert manifest["type"].startswith("application/manifest+json")
    body = manifest["body"]
    assert body["name"] == "lunchsite" and body["short_name"] == "lunchsite"
    assert body["start_url"] == "/" and body["scope"] == "/" and body["display"] == "standalone"
    assert body["theme_color"] == page.locator("meta[name=theme-color]").get_attribute("content")
    sizes = set()
    for icon in body["icons"]:
        answer = httpx.get(server.http_url + icon["src"], timeout=10)
        assert answer.status_code == 200, icon
        assert answer.headers["content-type"] == icon["type"], icon
        if icon["type"] == "image/png":
            width, height = png_size(answer.content)
            assert icon["sizes"] == f"{width}x{height}", icon
            sizes.add((width, icon.get("purpose", "any")))
    assert {(192, "any"), (512, "any"), (512, "maskable")} <= sizes

    # The service worker: registered for the whole site, then in control after a reload.
    scope = page.evaluate("async () => (await navigator.serviceWorker.ready).scope")
    assert scope == server.http_url + "/"
    page.reload()
    assert page.evaluate("() => navigator.serviceWorker.controller.scriptURL").endswith("/sw.js")

    # Chromium's own verdict, as Lighthouse and the install prompt use it.
    cdp = context.new_cdp_session(page)
    parsed = cdp.send("Page.getAppManifest")
    assert parsed["errors"] == [], parsed["errors"]
    assert cdp.send("Page.getInstallabilityErrors")["installabilityErrors"] == []

    # A room used the ordinary way (page, WebSocket, API) through the controlled page.
    live = open_room(context, f"{server.http_url}/rooms/{room['id']}/")
    live.fill("#item-input", "ramen")
    live.press("#item-input", "Enter")
    expect(live.locator("#items > li")).to_have_count(1)
    live.evaluate("async (url) => (await fetch(url)).json()", f"/api/rooms/{room['id']}/")
    kept = page.evaluate(
        """async () => {
          const urls = [];
          for (const name of await caches.keys()) {
            for (const request of await (await caches.open(name)).keys()) urls.push(request.url);
          }
          return urls.map((url) => new URL(url).pathname).sort();
        }"""
    )
    assert kept == ["/offline/", "/static/rooms/icon.svg", "/static/rooms/site.css"], kept

    # The server goes away: pages, a room's included, show the offline page, not a stale room.
    live.close()
    server.stop()
    for path in ("/", f"/rooms/{room['id']}/"):
        page.goto(server.http_url + path)
        expect(page.get_by_role("heading", name="You are offline.")).to_be_visible()
        expect(page.locator("link[rel=stylesheet]")).to_have_count(1)
        assert page.evaluate("() => getComputedStyle(document.body).margin") == "0px"
    assert "ramen" not in page.content()
