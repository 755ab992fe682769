"""The staff login locks one username from one address out after repeated failures, for a
short cool-off only, through the real admin login view (django-axes, database handler)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "a-real-password-41"


@pytest.fixture
def staff(settings) -> User:
    settings.AXES_FAILURE_LIMIT = 5
    return User.objects.create_superuser("boss", "boss@lunch.example", PASSWORD)


def log_in(client: Client, password: str, *, username: str = "boss", address: str) -> int:
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password, "next": "/admin/"},
        REMOTE_ADDR=address,
    )
    return response.status_code


def test_five_failures_lock_that_username_from_that_address(staff: User) -> None:
    """The 5th wrong password locks out; then even the right one is refused (429) from there."""
    client = Client()
    statuses = [log_in(client, f"guess-{i}", address="10.0.0.9") for i in range(5)]
    assert statuses == [200, 200, 200, 200, 429]
    locked = client.post(
        "/admin/login/", {"username": "boss", "password": PASSWORD}, REMOTE_ADDR="10.0.0.9"
    )
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_lockout_does_not_reach_the_staff_member_elsewhere(staff: User) -> None:
    """Someone guessing from one address cannot keep the real person out from another."""
    attacker = Client()
    for i in range(8):
        log_in(attacker, f"guess-{i}", address="10.0.0.9")
    assert log_in(attacker, PASSWORD, address="10.0.0.9") == 429
    real = Client()
    assert log_in(real, PASSWORD, address="10.0.0.20") == 302
    assert real.get("/admin/").status_code == 200
    # and another account from the attacker's address is not locked either
    User.objects.create_superuser("chef", "chef@lunch.example", PASSWORD)
    assert log_in(Client(), PASSWORD, username="chef", address="10.0.0.9") == 302


def test_the_cool_off_ends_even_if_the_guessing_goes_on(staff: User, settings) -> None:
    """The lock lasts the cool-off from the lockout: more failures during it do not extend it."""
    cool_off = 3.0
    settings.AXES_COOLOFF_TIME = timedelta(seconds=cool_off)
    client = Client()
    for i in range(4):
        log_in(client, f"guess-{i}", address="10.0.0.9")
    before_lock = time.monotonic()  # the lock starts after this, and ends after this + cool_off
    assert log_in(client, "guess-4", address="10.0.0.9") == 429
    locked = time.monotonic()  # ... and before this + cool_off
    guesses = 0
    while time.monotonic() < before_lock + cool_off - 0.5:
        status = log_in(client, "still-guessing", address="10.0.0.9")
        if time.monotonic() < before_lock + cool_off:  # answered within the cool-off for sure
            assert status == 429
            guesses += 1
        time.sleep(0.2)
    assert guesses >= 3
    time.sleep(max(0.0, locked + cool_off + 0.3 - time.monotonic()))
    assert log_in(client, PASSWORD, address="10.0.0.9") == 302


def test_a_success_forgets_the_failures(staff: User) -> None:
    """Four typos then the right password: the count starts again from zero."""
    client = Client()
    for i in range(4):
        log_in(client, f"typo-{i}", address="10.0.0.9")
    assert log_in(client, PASSWORD, address="10.0.0.9") == 302
    other = Client()
    assert [log_in(other, f"typo-{i}", address="10.0.0.9") for i in range(4)] == [200] * 4
    assert log_in(other, PASSWORD, address="10.0.0.9") == 302
