"""`make run` serves the office network: all interfaces, DEBUG off, its own secret key, this
machine's addresses allowed, the address to share printed with a QR code."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import PROJECT_DIR, free_port, wait_for_port

pytestmark = [pytest.mark.e2e]

LAN = [sys.executable, str(PROJECT_DIR / "scripts" / "lan.py")]


def get(url: str, host: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def lan_address() -> str | None:
    addresses = subprocess.run([*LAN, "hosts"], capture_output=True, text=True, check=True)
    found = [h for h in addresses.stdout.strip().split(",") if re.fullmatch(r"[\d.]+", h)]
    return next((h for h in found if not h.startswith("127.")), None)


def listening_on_all_interfaces(port: int) -> bool:
    """A listening socket bound to 0.0.0.0:port, from the kernel's table (no traffic sent)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "0A" and local == f"00000000:{port:04X}":
            return True
    return False


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[dict]:
    """scripts/run.sh (what `make run` runs) on a free port, with its own database and key."""
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY", "DJANGO_DEBUG"}
    }
    env |= {
        "PORT": str(port),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'run.sqlite3'}",
        "SECRET_KEY_FILE": str(tmp_path / "secret_key"),
        "DJANGO_SETTINGS_MODULE": "lunchsite.settings",
    }
    output = tmp_path / "run.out"
    with output.open("w") as out:
        process = subprocess.Popen(
            [str(PROJECT_DIR / "scripts" / "run.sh")],
            cwd=PROJECT_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_port(port, timeout=60)
        yield {"port": port, "env": env, "output": output, "tmp": tmp_path, "pid": process.pid}
    finally:
        with contextlib.suppress(ProcessLookupError):  # a test may have stopped it
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)


def test_make_run_serves_the_office_network(make_run: dict) -> None:
    """All interfaces, DEBUG off with static files, LAN address allowed, URL and QR printed,
    and a page opened on 127.0.0.1 shares the LAN address instead."""
    port = make_run["port"]
    assert listening_on_all_interfaces(port)
    time.sleep(0.5)
    banner = make_run["output"].read_text()
    lan = lan_address()
    local = f"http://127.0.0.1:{port}"
    status, script = get(f"{local}/static/rooms/js/state.js")
    assert status == 200 and "dispatch" in script  # WhiteNoise, DEBUG off
    assert get(f"{local}/no-such-page/")[1].find("Traceback") == -1  # no debug page
    assert get(f"{local}/", host="attacker.example")[0] == 400
    key = (make_run["tmp"] / "secret_key").read_text().strip()
    assert len(key) >= 50 and (make_run["tmp"] / "secret_key").stat().st_mode & 0o077 == 0
    if lan is None:
        pytest.skip("this machine has no LAN address")
    assert f"http://{lan}:{port}/" in banner, banner
    assert "█" in banner or "▀" in banner  # the QR code, drawn in the terminal
    assert get(f"{local}/", host=f"{lan}:{port}")[0] == 200
    request = urllib.request.Request(f"{local}/api/rooms/", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        room_id = re.search(r'"id": "([\w-]+)"', response.read().decode()).group(1)
    status, html = get(f"{local}/rooms/{room_id}/")
    assert status == 200
    assert f'value="http://{lan}:{port}/rooms/{room_id}/"' in html


def test_secret_key_is_made_once_and_kept(tmp_path: Path) -> None:
    """The first run writes a random key (owner-only); later runs read the same one."""
    path = tmp_path / "key"
    first = subprocess.run([*LAN, "secret-key", str(path)], capture_output=True, text=True)
    second = subprocess.run([*LAN, "secret-key", str(path)], capture_output=True, text=True)
    assert first.stdout == second.stdout and len(first.stdout.strip()) >= 50
    assert path.stat().st_mode & 0o777 == 0o600
    other = subprocess.run([*LAN, "secret-key", str(tmp_path / "k2")], capture_output=True)
    assert other.stdout != first.stdout.encode()


def test_make_run_settings_pass_the_deploy_check_except_https(tmp_path: Path) -> None:
    """`check --deploy` with make run's settings: only what plain http on a LAN cannot have
    (HSTS, SSL redirect, secure cookies) is left, each documented in the README."""
    hosts = subprocess.run([*LAN, "hosts"], capture_output=True, text=True, check=True).stdout
    key = subprocess.run(
        [*LAN, "secret-key", str(tmp_path / "key")], capture_output=True, text=True, check=True
    ).stdout.strip()
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_DEBUG", "DATABASE_URL"}}
    env |= {
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": key,
        "DJANGO_ALLOWED_HOSTS": hosts.strip(),
        "DJANGO_SETTINGS_MODULE": "lunchsite.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
    )
    found = set(re.findall(r"\(([\w.]+)\)", result.stdout + result.stderr))
    assert found <= {"security.W004", "security.W008", "security.W012", "security.W016"}, (
        result.stdout + result.stderr
    )


def children(pid: int) -> dict[int, str]:
    """The processes `pid` started, by their command lines."""
    found = {}
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError):  # it ended while we looked
            continue
        found[int(child)] = command
    return found


def gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):  # ProcessLookupError: it ended mid-read
            return True
        if stat.split(")")[-1].split()[0] == "Z":  # exited, not yet reaped
            return True
        time.sleep(0.1)
    return False


def test_make_run_starts_the_scheduler_and_stops_it_with_the_server(make_run: dict) -> None:
    """Beside daphne runs `manage.py run_scheduler`; when daphne ends, so does the scheduler
    (and make run with it)."""
    run_sh = int(make_run["pid"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "scheduler started" not in make_run["output"].read_text():
        time.sleep(0.2)
    assert "scheduler started" in make_run["output"].read_text()
    started = children(run_sh)
    [scheduler] = [pid for pid, command in started.items() if "run_scheduler" in command]
    [daphne] = [pid for pid, command in started.items() if "daphne" in command]
    os.kill(daphne, signal.SIGTERM)  # the server alone ends
    assert gone(daphne, 20)
    assert gone(scheduler, 20), "the scheduler outlived the server"
    assert gone(run_sh, 20)


def test_the_scheduler_under_make_run_opens_a_groups_room(make_run: dict) -> None:
    """A group whose opening time has passed (and whose deadline has not) gets its room from
    the scheduler that make run started, without anyone opening it."""
    local = f"http://127.0.0.1:{make_run['port']}"
    request = urllib.request.Request(
        f"{local}/api/groups/",
        data=b'{"name": "Team"}',
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        slug = json.loads(response.read())["slug"]
    now = time.gmtime(time.time() + 10 * 60)  # lunch in 10 minutes (UTC): opened 10 minutes ago
    body = {
        "lunch_time": time.strftime("%H:%M", now),
        "timezone": "UTC",
        "weekdays": [1, 2, 3, 4, 5, 6, 7],
    }
    patch = urllib.request.Request(
        f"{local}/api/groups/{slug}/",
        data=json.dumps(body).encode(),
        method="PATCH",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(patch, timeout=10) as response:
        assert json.loads(response.read())["lunch_time"] == body["lunch_time"]
    deadline = time.monotonic() + 30  # the scheduler looks every 10 s
    room = None
    while time.monotonic() < deadline and room is None:
        time.sleep(1)
        room = json.loads(get(f"{local}/api/groups/{slug}/")[1])["room"]
    assert room is not None, make_run["output"].read_text()
    assert "opened room=" + room["id"] in make_run["output"].read_text()
