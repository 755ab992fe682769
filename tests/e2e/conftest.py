"""Fixtures for the browser tests: Chromium (one headless browser per module, contexts per
person), and WebKitGTK and Firefox ESR (a browser process per person)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, expect, sync_playwright

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, DESKTOP
from tests.support.engines import ARTIFACTS as ENGINE_ARTIFACTS
from tests.support.engines import DESKTOP as ENGINE_DESKTOP
from tests.support.engines import (
    ENGINES,
    EnginePage,
    FirefoxPage,
    Locales,
    WebKitPage,
    Xvfb,
    missing,
    xvfb,
)

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


# --- WebKitGTK and Firefox ESR (tests/e2e/test_engines.py) -----------------------------------


@pytest.fixture(scope="session")
def engine_display() -> Iterator[Xvfb]:
    """One virtual X display for every WebKitGTK and Firefox window of the session."""
    with xvfb() as display:
        yield display


@pytest.fixture(scope="session")
def engine_locales(tmp_path_factory: pytest.TempPathFactory) -> Locales:
    return Locales(tmp_path_factory.mktemp("locales"))


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Each engine test runs once in WebKitGTK and once in Firefox ESR. Skipped where the
    engine cannot run here (and said why); under CI, where make test installed it, a failure."""
    reason = missing(request.param)
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"{request.param}: {reason}")
        pytest.skip(f"{request.param}: {reason}")
    return request.param


@pytest.fixture
def engine_pages(
    engine: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    engine_display: Xvfb,
    engine_locales: Locales,
) -> Iterator[Callable[..., EnginePage]]:
    """Open browsers of the test's engine, one per person (each its own process, storage and
    cookies); all closed afterwards, with a screenshot of each when the test failed."""
    opened: list[EnginePage] = []

    def open_page(
        *, locale: str = "en-US", size: tuple[int, int] = ENGINE_DESKTOP, proxy: int | None = None
    ) -> EnginePage:
        """A new browser; `proxy`: the port of an HTTP proxy it sends every request to."""
        display = engine_display.display
        if engine == "webkitgtk":
            locale_env = engine_locales.env(locale)
            page: EnginePage = WebKitPage(
                display=display, locale_env=locale_env, size=size, proxy=proxy
            )
        else:
            profile = tmp_path / f"firefox-{len(opened)}"
            page = FirefoxPage(
                display=display, profile=profile, locale=locale, size=size, proxy=proxy
            )
        opened.append(page)
        return page

    yield open_page
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for number, page in enumerate(opened):
        if failed:
            ENGINE_ARTIFACTS.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(Exception):
                page.screenshot(ENGINE_ARTIFACTS / f"{request.node.name}-{number}.png")
        page.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """The call's report on the test item, so a fixture's teardown knows whether it failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
