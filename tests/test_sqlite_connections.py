"""SQLite's connections: kept between the consumers' calls, closed at the end of each HTTP
request (settings.py, rooms/database.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.signals import request_finished
from django.db import connections, transaction
from django.db.backends.sqlite3.base import DatabaseWrapper

from rooms import database


@pytest.fixture
def sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, django_db_blocker
) -> Iterator[DatabaseWrapper]:
    """A SQLite file database with the project's CONN_MAX_AGE, as `connection` for rooms."""
    wrapper = DatabaseWrapper(
        {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(tmp_path / "lunch.sqlite3"),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": False,
            "AUTOCOMMIT": True,
            "ATOMIC_REQUESTS": False,
            "OPTIONS": {},
            "TIME_ZONE": None,
            "USER": "",
            "PASSWORD": "",
            "HOST": "",
            "PORT": "",
            "TEST": {},
        },
        alias="sqlite_file_test",
    )
    monkeypatch.setattr(database, "connection", wrapper)
    connections[wrapper.alias] = wrapper  # for transaction.atomic(using=...)
    with django_db_blocker.unblock():  # a database of its own, not the test database
        yield wrapper
        wrapper.close()
    del connections[wrapper.alias]


def test_the_consumers_thread_keeps_its_connection_between_calls(sqlite_file) -> None:
    """What Channels runs around each service call leaves the connection open."""
    sqlite_file.ensure_connection()
    opened = sqlite_file.connection
    sqlite_file.close_if_unusable_or_obsolete()
    assert sqlite_file.connection is opened


def test_the_end_of_a_request_closes_its_connection(sqlite_file) -> None:
    """A request's thread ends with it: its connection is closed then, not left to the
    garbage collector (rooms/apps.py connects the receiver)."""
    sqlite_file.ensure_connection()
    request_finished.send(sender=None)
    assert sqlite_file.connection is None


def test_a_connection_inside_a_transaction_is_left_to_it(sqlite_file) -> None:
    """Django's test client ends its requests on the test's thread, inside the test's
    transaction: that connection is not the request's to close."""
    with sqlite_file.cursor():
        pass
    opened = sqlite_file.connection
    with transaction.atomic(using=sqlite_file.alias):
        request_finished.send(sender=None)
        assert sqlite_file.connection is opened
