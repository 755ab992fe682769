"""Real processes for end-to-end tests: redis-server, daphne, and a fresh database each."""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

PROJECT_DIR = Path(__file__).resolve().parents[2]
TEST_SECRET_KEY = "test-secret-key-" + "x" * 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@dataclass
class RedisServer:
    """A redis-server of the test's own, without persistence, so a restart loses everything."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (make test installs it)")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--logfile",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()


class PostgresUnavailable(RuntimeError):
    """PostgreSQL's server binaries (or, as root, a `postgres` user to run them) are missing."""


@dataclass
class PostgresServer:
    """A PostgreSQL cluster of the test's own (never the machine's), which it may stop, restart
    and terminate; fsync off, as nothing in it must survive the test."""

    port: int = field(default_factory=free_port)
    data: Path | None = None

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> PostgresServer:
        if self.data is None:
            self._init()
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg_ctl("-o", options, "-l", str(self.data / "log"), "-w", "start")
        wait_for_port(self.port)
        return self

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("-m", mode, "-w", "stop")

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def destroy(self) -> None:
        if self.data is None:
            return
        pg_ctl = [*self._as_owner(), str(self._bindir() / "pg_ctl"), "-D", str(self.data / "db")]
        subprocess.run(
            [*pg_ctl, "-m", "immediate", "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        shutil.rmtree(self.data, ignore_errors=True)
        self.data = None

    def _init(self) -> None:
        bindir, owner = self._bindir(), self._as_owner()
        self.data = Path(tempfile.mkdtemp(prefix="lunchsite-pg-"))
        if owner:
            shutil.chown(self.data, "postgres", "postgres")
        initdb = [*owner, str(bindir / "initdb"), "-D", str(self.data / "db")]
        subprocess.run(
            [*initdb, "-U", "postgres", "-A", "trust"],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def _pg_ctl(self, *args: str) -> None:
        assert self.data is not None
        subprocess.run(
            [*self._as_owner(), str(self._bindir() / "pg_ctl"), "-D", str(self.data / "db"), *args],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    @staticmethod
    def _bindir() -> Path:
        binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not binaries or not (binaries[-1] / "pg_ctl").exists():
            raise PostgresUnavailable("PostgreSQL server binaries are not installed")
        return binaries[-1]

    @staticmethod
    def _as_owner() -> list[str]:
        """As root, run PostgreSQL's programs as `postgres` (initdb and postgres refuse root)."""
        if os.geteuid() != 0:
            return []
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable("as root, a postgres user is needed") from None
        if shutil.which("runuser") is None:
            raise PostgresUnavailable("as root, runuser is needed")
        return ["runuser", "-u", "postgres", "--"]


def terminate_backends(database_url: str) -> int:
    """End every connection to the database but this one (pg_terminate_backend): what a failover
    or an operator's purge does to a running process's pools. How many were ended."""
    import psycopg

    with psycopg.connect(_psycopg_url(database_url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    return int(row[0]) if row else 0


def database_url_for_test(tmp_dir: Path) -> str:
    """A fresh, empty database for one set of daphne processes.

    With DATABASE_URL (PostgreSQL) a new database on that server; otherwise an SQLite file.
    """
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith(("postgres://", "postgresql://")):
        return f"sqlite:///{tmp_dir / f'e2e-{secrets.token_hex(4)}.sqlite3'}"
    import psycopg

    name = f"lunchsite_e2e_{secrets.token_hex(6)}"
    parts = urlsplit(base)
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(_psycopg_url(admin_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}"))


def drop_database(url: str) -> None:
    if not url.startswith(("postgres://", "postgresql://")):
        return
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(_psycopg_url(admin_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def room_locked(database_url: str, room_id: str) -> Iterator[None]:
    """Hold the room's row (PostgreSQL) or the whole file's write lock (SQLite) from another
    connection: every change to the room waits until the block ends."""
    if database_url.startswith(("postgres://", "postgresql://")):
        import psycopg

        with psycopg.connect(_psycopg_url(database_url)) as conn:
            conn.execute("SELECT 1 FROM rooms_room WHERE id = %s FOR UPDATE", [room_id])
            yield
            conn.rollback()
        return
    lock = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")
        yield
        lock.rollback()
    finally:
        lock.close()


def database_rows(database_url: str, sql: str) -> list[tuple]:
    """The rows of one query on a daphne processes' database (PostgreSQL or SQLite), read
    from outside them, as an operator would."""
    if database_url.startswith(("postgres://", "postgresql://")):
        import psycopg

        with psycopg.connect(_psycopg_url(database_url)) as conn:
            return conn.execute(sql).fetchall()
    reader = sqlite3.connect(database_url.removeprefix("sqlite:///"))
    try:
        return reader.execute(sql).fetchall()
    finally:
        reader.close()


def _psycopg_url(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


def server_env(database_url: str, redis_url: str | None = None, **settings: object) -> dict:
    """The environment a daphne of the tests runs with: production-like (DEBUG off)."""
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    env.update(
        DJANGO_SECRET_KEY=TEST_SECRET_KEY,
        DJANGO_DEBUG="0",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=database_url,
        PYTHONUNBUFFERED="1",
        # A stop (SIGTERM) drains the process's WebSockets over this long (lunchsite/drain.py);
        # the shipped 5 s would add seconds to every test that stops a server with clients.
        ROOM_DRAIN_SECONDS="1",
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update({key: str(value) for key, value in settings.items()})
    return env


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    """Run manage.py in a fresh process with the real settings and the given environment."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "REDIS_URL", "DATABASE_URL", "ROOM_"))
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_DIR,
        env={**base, "DJANGO_SETTINGS_MODULE": "lunchsite.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def migrate(env: dict) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=PROJECT_DIR,
        env=env,
        check=True,
    )


@dataclass
class DaphneServer:
    """One daphne process serving the project on a loopback port."""

    env: dict
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    args: tuple[str, ...] = ()  # more daphne options, e.g. ("--application-close-timeout", "1")
    # The whole command line instead (the shipped systemd unit's ExecStart, in test_deploy.py).
    command: tuple[str, ...] | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(
        self, timeout: float = 30.0, *, wait_healthy: bool = True, wait_live: bool = False
    ) -> DaphneServer:
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the process's life
        command = self.command or (
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(self.port),
            *self.args,
            "lunchsite.asgi:application",
        )
        self.process = subprocess.Popen(
            list(command),
            cwd=PROJECT_DIR,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        if wait_live:  # serving, whatever its dependencies say
            self.wait_healthy(timeout, path="/livez")
        elif wait_healthy:  # fault tests start a server whose dependencies are down
            self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float = 30.0, path: str = "/readyz") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"daphne exited early; see {self.log_path}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.http_url}{path}", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"daphne on port {self.port} not healthy; log:\n{self.log()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(15)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            # daphne waits for consumers still running at SIGTERM (their disconnect
            # handlers); give the ones a test just closed a moment to finish first.
            time.sleep(0.3)
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def rss_kib(self) -> int:
        """The process's resident memory (VmRSS), in KiB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1])
