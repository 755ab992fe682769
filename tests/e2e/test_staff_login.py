"""The staff login over HTTP on a real daphne, with Redis down: the lockout holds one username
at one address for the cool-off, and the same person logs in from another address."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import httpx
import pytest

from tests.support.processes import TEST_SECRET_KEY, DaphneServer, free_port, manage

pytestmark = [pytest.mark.e2e]

PASSWORD = "a-real-password-41"
COOL_OFF = 10  # long enough for the checks below on a busy machine


def browser_from(address: str, server: DaphneServer) -> httpx.Client:
    """An HTTP client whose connections leave from `address` (a loopback alias)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=server.http_url, transport=transport, timeout=15)


def log_in(client: httpx.Client, password: str, username: str = "boss") -> int:
    """The admin's login form as a browser fills it: CSRF cookie and token included."""
    form = client.get("/admin/login/?next=/admin/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    answer = client.post(
        "/admin/login/?next=/admin/",
        data={
            "csrfmiddlewaretoken": token,
            "username": username,
            "password": password,
            "next": "/admin/",
        },
        headers={"Referer": f"{client.base_url}/admin/login/"},
    )
    return answer.status_code


def test_staff_lockout_over_http_with_redis_down(
    daphne_factory: Callable[..., DaphneServer], e2e_database: str
) -> None:
    """5 failures from 127.0.0.2 lock boss there (429), not from 127.0.0.3; the cool-off ends."""
    created = manage(
        "createsuperuser",
        "--noinput",
        "--username",
        "boss",
        "--email",
        "boss@lunch.example",
        DATABASE_URL=e2e_database,
        DJANGO_SECRET_KEY=TEST_SECRET_KEY,
        DJANGO_SUPERUSER_PASSWORD=PASSWORD,
    )
    assert created.returncode == 0, created.stderr
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    server = daphne_factory(redis_url=dead_redis, ready=False, STAFF_LOGIN_COOLOFF_SECONDS=COOL_OFF)
    assert httpx.get(f"{server.http_url}/readyz").status_code == 503  # Redis is really down
    with browser_from("127.0.0.2", server) as guesser, browser_from("127.0.0.3", server) as boss:
        statuses = [log_in(guesser, f"guess-{i}") for i in range(5)]
        assert statuses == [200, 200, 200, 200, 429], statuses
        locked_at = time.monotonic()
        assert log_in(guesser, PASSWORD) == 429
        assert log_in(boss, PASSWORD) == 302  # the real person, elsewhere
        assert boss.get("/admin/").status_code == 200
        time.sleep(max(0.0, COOL_OFF + 0.5 - (time.monotonic() - locked_at)))
        assert log_in(guesser, PASSWORD) == 302  # the cool-off is over
    assert "Traceback" not in server.log()
