"""WebKitGTK and Firefox ESR for the engine tests, behind one small page API.

WebKitGTK is driven by Selenium through Debian's WebKitWebDriver, which opens WebKitGTK's
MiniBrowser. Firefox ESR is driven through Marionette, the WebDriver server built into Firefox,
with Mozilla's marionette-driver client: Debian ships no geckodriver (the usual bridge between
Selenium and Firefox, itself a proxy to Marionette), and the npm and PyPI packages that offer
one download it from GitHub at run time or hold a Windows build only. Both browsers show real
windows on a virtual X display (Xvfb), whose clipboard the tests can read (xclip). Both run the
classic WebDriver commands: a click is a real click on the element's centre, after it is
scrolled into view, and typing is key events, as a person's taps and keys are.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support.processes import PROJECT_DIR

WEBKIT_DRIVER = "/usr/bin/WebKitWebDriver"
FIREFOX = "/usr/bin/firefox-esr"
XVFB = "/usr/bin/Xvfb"
XCLIP = "/usr/bin/xclip"
ENGINES = ("webkitgtk", "firefox")
# A phone's width; the engines open no window that narrow (WebKitGTK's MiniBrowser is at
# least 447 px wide, Firefox 500), but anything under 52rem is the page's one-column layout.
PHONE = (390, 844)
DESKTOP = (1280, 800)
ENTER = "\ue007"  # the WebDriver key code of Enter (Selenium's and Marionette's Keys.ENTER)
WAIT_SECONDS = 10.0
ARTIFACTS = PROJECT_DIR / "test-artifacts" / "engines"


def minibrowser() -> str | None:
    """WebKitGTK's MiniBrowser (in libwebkit2gtk-4.1-0, under the architecture's libdir)."""
    found = sorted(glob.glob("/usr/lib/*/webkit2gtk-4.1/MiniBrowser"))
    return found[0] if found else None


def missing(engine: str) -> str | None:
    """What this machine lacks to run `engine`, in words, or None."""
    needs = {XVFB: "xvfb", XCLIP: "xclip"}
    if engine == "webkitgtk":
        needs[WEBKIT_DRIVER] = "webkit2gtk-driver"
        needs[shutil.which("localedef") or "/usr/bin/localedef"] = "libc-bin"
        needs["/usr/share/i18n/locales/ko_KR"] = "locales"
        if minibrowser() is None:
            return "WebKitGTK's MiniBrowser is missing (Debian's libwebkit2gtk-4.1-0)"
    else:
        needs[FIREFOX] = "firefox-esr"
    for path, package in needs.items():
        if not Path(path).exists():
            return f"{path} is missing (Debian's {package}; make test installs it)"
    return None


class Xvfb:
    """A virtual X display of the tests' own, on the first free display number."""

    def __init__(self) -> None:
        read, write = os.pipe()
        self.process = subprocess.Popen(
            [XVFB, "-displayfd", str(write), "-screen", "0", "1400x1000x24", "-nolisten", "tcp"],
            pass_fds=(write,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(write)
        with os.fdopen(read) as answer:  # Xvfb writes the number once it accepts clients
            number = answer.readline().strip()
        if not number:
            raise RuntimeError("Xvfb did not start")
        self.display = f":{number}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def clipboard(self) -> str:
        """The text on the display's clipboard (what a paste would give), or "" if none."""
        result = subprocess.run(
            [XCLIP, "-o", "-selection", "clipboard", "-t", "UTF8_STRING"],
            env={**os.environ, "DISPLAY": self.display},
            capture_output=True,
            text=True,
            timeout=10,
        )
        return result.stdout if result.returncode == 0 else ""


class Locales:
    """The glibc locales WebKitGTK takes its languages from, compiled once into a folder of
    the tests' own (LOCPATH), so nothing is changed on the machine."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def env(self, locale: str) -> dict[str, str]:
        """The environment under which WebKitGTK says `locale` (en-US, ko-KR) to sites:
        navigator.language and the Accept-Language header."""
        name = locale.replace("-", "_") + ".UTF-8"
        if not (self.folder / name).exists():
            language = locale.replace("-", "_")
            subprocess.run(
                ["localedef", "-i", language, "-f", "UTF-8", str(self.folder / name)],
                check=True,
                capture_output=True,
            )
        return {"LOCPATH": str(self.folder), "LC_ALL": name, "LANG": name}


# Script errors and Content-Security-Policy refusals from the moment it runs, kept in the page.
WATCH_ERRORS = """
window.__errors = [];
addEventListener('error', (e) => window.__errors.push('error: ' + e.message));
addEventListener('unhandledrejection', (e) => window.__errors.push('rejection: ' + e.reason));
document.addEventListener('securitypolicyviolation',
  (e) => window.__errors.push('csp: ' + e.violatedDirective + ' ' + e.blockedURI));
"""


class EnginePage:
    """One person's browser showing one page: what the engine tests do with it."""

    engine: str

    # --- What each driver does ---------------------------------------------------------

    def goto(self, url: str) -> None:
        raise NotImplementedError

    def evaluate(self, script: str, *args: Any) -> Any:
        """Run `script` (a function body: `return ...`) in the page; `arguments` are `args`."""
        raise NotImplementedError

    def _element(self, selector: str) -> Any:
        raise NotImplementedError

    def screenshot(self, path: Path) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # --- Shared ------------------------------------------------------------------------------

    def click(self, selector: str) -> None:
        """A real click on the element (WebDriver Element Click)."""
        self.wait("return !!document.querySelector(arguments[0])", selector, what=selector)
        self._element(selector).click()

    def type(self, selector: str, text: str, *, enter: bool = False) -> None:
        """Empty the field, then type `text` key by key (and Enter)."""
        self.wait("return !!document.querySelector(arguments[0])", selector, what=selector)
        field = self._element(selector)
        field.clear()
        field.send_keys(text + (ENTER if enter else ""))

    def watch_errors(self) -> None:
        """From now on, keep the page's script errors and CSP refusals (see `errors`)."""
        self.evaluate(WATCH_ERRORS)

    def errors(self) -> list[str]:
        """What went wrong in the page since `watch_errors` (on the same document)."""
        errors = self.evaluate("return window.__errors")
        assert errors is not None, f"{self.engine}: the page was left; watch_errors again"
        return errors

    def text(self, selector: str) -> str:
        return self.evaluate(
            "const e = document.querySelector(arguments[0]); return e && e.textContent.trim()",
            selector,
        )

    def wait(self, script: str, *args: Any, what: str = "", timeout: float = WAIT_SECONDS) -> Any:
        """Poll `script` until it returns something truthy; that value. A script error counts
        as not yet: a click that navigates returns before the next page is there."""
        deadline = time.monotonic() + timeout
        error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(script, *args)
            except Exception as exc:  # the driver's JavaScript error, whichever the driver
                error = exc
            else:
                if value:
                    return value
            time.sleep(0.1)
        raise AssertionError(
            f"{self.engine}: still not {what or script!r} after {timeout} s"
            + (f" (last script error: {error})" if error else "")
        )

    def wait_text(self, selector: str, expected: str, timeout: float = WAIT_SECONDS) -> None:
        """Wait until the element's text (trimmed) is `expected`."""
        deadline = time.monotonic() + timeout
        while (shown := self.text(selector)) != expected:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.engine}: {selector} shows {shown!r}, not {expected!r}")
            time.sleep(0.1)

    def wait_contains(self, selector: str, part: str, timeout: float = WAIT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while part not in (shown := self.text(selector) or ""):
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.engine}: {selector} shows {shown!r}, without {part!r}")
            time.sleep(0.1)

    def wait_status(self, status: str, timeout: float = 15.0) -> None:
        """Wait for the room page's connection status (online, offline)."""
        self.wait(
            "return document.getElementById('connection').dataset.status === arguments[0]",
            status,
            what=f"connection {status}",
            timeout=timeout,
        )


class WebKitPage(EnginePage):
    """WebKitGTK's MiniBrowser driven by Selenium through WebKitWebDriver, on an X display."""

    engine = "webkitgtk"

    def __init__(
        self,
        *,
        display: str,
        locale_env: dict[str, str],
        size: tuple[int, int],
        proxy: int | None = None,
    ) -> None:
        from selenium import webdriver
        from selenium.webdriver.webkitgtk.options import Options
        from selenium.webdriver.webkitgtk.service import Service

        options = Options()
        options.binary_location = minibrowser()
        options.add_argument("--automation")
        if proxy is not None:
            options.add_argument(f"--proxy=http://127.0.0.1:{proxy}")
        env = {**os.environ, "DISPLAY": display, **locale_env}
        service = Service(executable_path=WEBKIT_DRIVER, env=env)
        self.driver = webdriver.WebKitGTK(options=options, service=service)
        self.driver.set_window_size(*size)

    def goto(self, url: str) -> None:
        self.driver.get(url)

    def evaluate(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def _element(self, selector: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def screenshot(self, path: Path) -> None:
        self.driver.save_screenshot(str(path))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.driver.quit()


class FirefoxPage(EnginePage):
    """Firefox ESR with a fresh profile on an X display (Xvfb), driven through Marionette."""

    engine = "firefox"

    def __init__(
        self,
        *,
        display: str,
        profile: Path,
        locale: str,
        size: tuple[int, int],
        proxy: int | None = None,
    ) -> None:
        from marionette_driver.marionette import Marionette

        profile.mkdir(parents=True)
        prefs = {
            "marionette.port": 0,  # any free port; Firefox writes it to MarionetteActivePort
            "intl.accept_languages": f"{locale}, {locale.split('-')[0]}",
            "browser.shell.checkDefaultBrowser": False,
            "datareporting.policy.dataSubmissionEnabled": False,
        }
        if proxy is not None:
            prefs.update(
                {
                    "network.proxy.type": 1,  # manual
                    "network.proxy.http": "127.0.0.1",
                    "network.proxy.http_port": proxy,
                }
            )
        (profile / "user.js").write_text(  # JSON's literals are JavaScript's
            "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in prefs.items())
        )
        self.log = open(profile.parent / f"{profile.name}.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            # The size on the command line: Marionette's Set Window Rect waits 5 s for a
            # window manager to answer, and Xvfb has none.
            [
                FIREFOX,
                "--marionette",
                "--no-remote",
                "--profile",
                str(profile),
                "-width",
                str(size[0]),
                "-height",
                str(size[1]),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "DISPLAY": display, "MOZ_CRASHREPORTER_DISABLE": "1"},
        )
        port_file = profile / "MarionetteActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"Firefox did not open Marionette; see {self.log.name}")
            time.sleep(0.1)
        self.marionette = Marionette(host="127.0.0.1", port=int(port_file.read_text()))
        self.marionette.start_session()

    def goto(self, url: str) -> None:
        self.marionette.navigate(url)

    def evaluate(self, script: str, *args: Any) -> Any:
        # sandbox=None: the page's own global, as WebDriver's Execute Script sees it.
        return self.marionette.execute_script(script, script_args=args, sandbox=None)

    def _element(self, selector: str) -> Any:
        from marionette_driver.by import By

        return self.marionette.find_element(By.CSS_SELECTOR, selector)

    def screenshot(self, path: Path) -> None:
        path.write_bytes(self.marionette.screenshot(format="binary"))

    def close(self) -> None:
        if getattr(self, "marionette", None) is not None:
            with contextlib.suppress(Exception):
                self.marionette.delete_session()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()


@contextlib.contextmanager
def xvfb() -> Iterator[Xvfb]:
    display = Xvfb()
    try:
        yield display
    finally:
        display.stop()
