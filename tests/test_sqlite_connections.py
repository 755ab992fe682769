"""SQLite's connections: kept between the consumers' calls, closed at the end of each HTTP
request, in the write-ahead log (settings.py, rooms/database.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.signals import request_finished
from django.db import connections, transaction
from django.db.backends.sqlite3.base import DatabaseWrapper

from rooms import database
from tests.support.processes import manage


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


# --- The journal ---------------------------------------------------------------------

_PRAGMAS = (
    "from django.db import connection; c = connection.cursor();"
    "print(c.execute('PRAGMA journal_mode').fetchone()[0],"
    " c.execute('PRAGMA synchronous').fetchone()[0])"
)


def _pragmas_of(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """The journal mode and synchronous level of a SQLite connection the project opens."""
    url = f"sqlite:///{tmp_path / 'lunch.sqlite3'}"
    return manage("shell", "-v", "0", "-c", _PRAGMAS, DJANGO_DEBUG="1", DATABASE_URL=url, **env)


def test_sqlite_writes_ahead_and_syncs_at_checkpoints(tmp_path: Path) -> None:
    """By default the write-ahead log with synchronous NORMAL (1): a COMMIT writes no
    journal file of its own and waits for no disk sync (settings.py)."""
    result = _pragmas_of(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["wal", "1"]


def test_sqlite_journal_and_sync_can_be_sqlites_defaults(tmp_path: Path) -> None:
    """For a file system without shared memory, or every commit synced: SQLite's own."""
    result = _pragmas_of(tmp_path, SQLITE_JOURNAL_MODE="delete", SQLITE_SYNCHRONOUS="full")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["delete", "2"]


@pytest.mark.parametrize("variable", ["SQLITE_JOURNAL_MODE", "SQLITE_SYNCHRONOUS"])
def test_an_unknown_sqlite_setting_is_refused_at_start(tmp_path: Path, variable: str) -> None:
    """Not passed to SQLite as it is (it would be a PRAGMA of the environment's making)."""
    result = _pragmas_of(tmp_path, **{variable: "off; DROP TABLE rooms_room"})
    assert result.returncode != 0
    assert f"{variable} must be one of" in result.stderr
