"""PostgreSQL and Redis of the run's own on the bridge: the database host, outside the quotas.

The machine's PostgreSQL listens on its loopback, and a namespace's loopback is its own; making
the machine's server listen elsewhere would mean changing and restarting a service others use.
So the run starts a cluster of its own with PostgreSQL's defaults (fsync and autovacuum on, as in
production), reachable from the hosts' subnet only, and throws it away at the end.
"""

from __future__ import annotations

import glob
import shutil
import signal
import subprocess
from pathlib import Path

from bench.hosts.launch import spawn, stop, wait_for_port
from bench.hosts.net import CpuGroup

POSTGRES_PORT = 5432
REDIS_PORT = 6379
# Ten per daphne process (docs/scaling.md), for up to 13 processes at once, and the bench's own.
POSTGRES_MAX_CONNECTIONS = 300


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    path = found[-1] if found else shutil.which(name)
    if path is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (scripts/bench.sh installs it)")
    return path


class PrivatePostgres:
    """A throwaway PostgreSQL cluster listening on the bridge's address."""

    def __init__(self, address: str, subnet: str, group: CpuGroup, run_dir: Path) -> None:
        self.address, self.subnet, self.group = address, subnet, group
        self.data = run_dir / "pg"
        self.run_dir = run_dir
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"postgres://postgres@{self.address}:{POSTGRES_PORT}/postgres"

    def start(self) -> PrivatePostgres:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.run_dir, "postgres", "postgres")
        subprocess.run(
            [
                *("setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"),
                *(pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust"),
                *("--no-sync", "-E", "UTF8"),
            ],
            check=True,
            capture_output=True,
        )
        with open(self.data / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {self.subnet} trust\n")
        self.process = spawn(
            [
                *(pg_bin("postgres"), "-D", str(self.data)),
                *("-c", f"listen_addresses={self.address}", "-c", f"port={POSTGRES_PORT}"),
                *("-c", f"unix_socket_directories={self.run_dir}"),
                *("-c", f"max_connections={POSTGRES_MAX_CONNECTIONS}"),
            ],
            group=self.group,
            user="postgres",
            log_path=self.run_dir / "postgresql.log",
        )
        wait_for_port(self.address, POSTGRES_PORT, process=self.process)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process, signal.SIGINT, timeout=15)  # PostgreSQL's fast shutdown


class BridgeRedis:
    """The channel layer's redis-server, listening on the bridge's address, no persistence."""

    def __init__(self, address: str, group: CpuGroup, log_path: Path) -> None:
        self.address, self.group, self.log_path = address, group, log_path
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.address}:{REDIS_PORT}/0"

    def start(self) -> BridgeRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (scripts/bench.sh installs it)")
        self.process = spawn(
            [
                *(binary, "--bind", self.address, "--port", str(REDIS_PORT)),
                *("--save", "", "--appendonly", "no", "--logfile", ""),
                # Without a password Redis answers loopback only; it listens on the bridge,
                # which only the run's own namespaces reach.
                *("--protected-mode", "no"),
            ],
            group=self.group,
            log_path=self.log_path,
        )
        wait_for_port(self.address, REDIS_PORT, process=self.process)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
