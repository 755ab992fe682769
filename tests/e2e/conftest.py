"""Fixtures for the Chromium tests: one headless browser per module, contexts per person."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, expect, sync_playwright

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, DESKTOP

expect.set_options(timeout=10_000)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the whole module; each test opens its own contexts."""
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing (make test installs it)"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def contexts(browser: Browser) -> Iterator[Callable[..., BrowserContext]]:
    """Make browser contexts (one per person); all closed after the test."""
    made: list[BrowserContext] = []

    def make(
        *,
        locale: str = "en-US",
        name: str | None = None,
        viewport: dict | None = None,
        reduced_motion: str = "no-preference",
        color_scheme: str = "light",
        bypass_csp: bool = False,
    ) -> BrowserContext:
        context = browser.new_context(
            locale=locale,
            viewport=viewport or DESKTOP,
            reduced_motion=reduced_motion,
            color_scheme=color_scheme,
            bypass_csp=bypass_csp,
        )
        # Short, but with room for a 2-core machine busy with other test processes.
        context.set_default_timeout(10_000)
        context.set_default_navigation_timeout(15_000)
        if name is not None:
            # The nickname a person typed on an earlier visit, as the page remembers it.
            context.add_init_script(f"localStorage.setItem('lunchsite.name', {name!r})")
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()
