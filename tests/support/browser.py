"""Helpers for the Chromium tests: the browser's settings, room actions, and axe-core."""

from __future__ import annotations

import json
from pathlib import Path

from playwright.sync_api import BrowserContext, Locator, Page, expect

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PROJECT_DIR = Path(__file__).resolve().parents[2]
SCREENSHOTS = PROJECT_DIR / "test-artifacts" / "screenshots"
# axe-core from npm, pinned in tests/e2e/package.json; `make test` runs `npm ci` there.
AXE_JS = PROJECT_DIR / "tests" / "e2e" / "node_modules" / "axe-core" / "axe.min.js"
PHONE = {"width": 390, "height": 844}
SMALL_PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 800}


def open_room(context: BrowserContext, url: str) -> Page:
    page = context.new_page()
    page.goto(url)
    expect(page.locator("#connection")).to_have_attribute("data-status", "online")
    return page


def add_item(page: Page, name: str) -> None:
    page.fill("#item-input", name)
    page.press("#item-input", "Enter")


def item(page: Page, name: str) -> Locator:
    return page.locator("#items > li", has=page.locator(".item-name", has_text=name))


def axe_violations(page: Page, impacts: tuple[str, ...] = ("serious", "critical")) -> list[dict]:
    """Run axe-core (WCAG 2.0/2.1 A and AA rules) on the page; the violations of these impacts.

    The page's Content-Security-Policy would refuse the injected script: the context that
    opened the page must be made with bypass_csp=True.
    """
    assert AXE_JS.exists(), "axe-core is missing: npm ci --prefix tests/e2e (make test does it)"
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=AXE_JS.read_text(encoding="utf-8"))
    result = page.evaluate(
        """async () => {
          const r = await axe.run(document, {
            runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']},
            resultTypes: ['violations'],
          });
          return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map(n => n.target.join(' ') + ' :: ' + n.failureSummary).slice(0, 5)}));
        }"""
    )
    return [v for v in result if v["impact"] in impacts]


def describe(violations: list[dict]) -> str:
    return json.dumps(violations, indent=1, ensure_ascii=False)
