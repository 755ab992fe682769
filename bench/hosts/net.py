"""The simulated hosts' plumbing: network namespaces on a bridge, cgroup v1 CPU groups, a sweep.

Every namespace and interface this module creates is named `lh-…` and every cgroup lives under
`lunchsite-hosts/`, so a run killed outright (SIGKILL, a session stopped) leaves nothing the next
run's `sweep()` cannot find; one run at a time holds `LOCK_PATH`, so a sweep never takes
another run's hosts.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

PREFIX = "lh"  # namespaces and interfaces; an interface name has 15 characters at most
BRIDGE = f"{PREFIX}-br"
CGROUP = "lunchsite-hosts"
CPU_ROOT = Path("/sys/fs/cgroup/cpu")
CPUACCT_ROOT = Path("/sys/fs/cgroup/cpuacct")
LOCK_PATH = Path("/run/lunchsite-hosts.lock")
RUN_DIR = Path("/tmp/lunchsite-hosts")  # the private PostgreSQL's data and nginx's prefix
# Hosts get .10, .11, …; .1 is the bridge, where nginx, PostgreSQL and Redis are reached.
FIRST_HOST = 10
# What the hosts need from the machine, as (command, why).
COMMANDS = (("ip", "iproute2, for the namespaces"), ("setpriv", "util-linux"))


class Busy(RuntimeError):
    """Another run of the simulated hosts holds the lock."""


# --- Can this machine do it? --------------------------------------------------------------


def skip_reason(
    *, euid: int, has_command: Callable[[str], bool], has_path: Callable[[Path], bool]
) -> str | None:
    """Why the simulated hosts cannot run here, or None; from facts the caller looked up."""
    if euid != 0:
        return "needs root (it creates network namespaces, veth pairs and cgroups)"
    for command, why in COMMANDS:
        if not has_command(command):
            return f"no `{command}` command ({why})"
    if not has_path(CPU_ROOT / "cpu.cfs_quota_us"):
        return (
            f"no cgroup v1 CPU controller with quotas at {CPU_ROOT} "
            "(a cgroup v2-only machine: cpu.max is not supported by this bench)"
        )
    if not has_path(CPUACCT_ROOT / "cpuacct.usage"):
        return f"no cgroup v1 cpuacct controller at {CPUACCT_ROOT}"
    return None


def unavailable() -> str | None:
    """Why this machine cannot run the simulated hosts, or None when it can."""
    reason = skip_reason(
        euid=os.geteuid(),
        has_command=lambda c: shutil.which(c) is not None,
        has_path=Path.exists,
    )
    if reason:
        return reason
    probe = f"{PREFIX}-probe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


@contextlib.contextmanager
def exclusive() -> Iterator[None]:
    """Hold the machine-wide lock of the simulated hosts for the run."""
    with open(LOCK_PATH, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(f"another run of the simulated hosts holds {LOCK_PATH}") from None
        yield


# --- CPU groups -------------------------------------------------------------------------


@dataclass
class CpuGroup:
    """A cgroup in the cpu (quota) and cpuacct (usage) hierarchies, for one part of the run."""

    name: str
    quota_cores: float | None = None  # None: no quota (PostgreSQL, Redis, nginx)
    period_us: int = 100_000

    def dirs(self) -> list[Path]:
        # Some machines mount cpu and cpuacct together: the same directory, written once.
        paths = [CPU_ROOT / CGROUP / self.name, CPUACCT_ROOT / CGROUP / self.name]
        return list(dict.fromkeys(p.resolve() for p in paths))

    def create(self) -> CpuGroup:
        for path in self.dirs():
            path.mkdir(parents=True, exist_ok=True)
        if self.quota_cores is not None:
            cpu = CPU_ROOT / CGROUP / self.name
            (cpu / "cpu.cfs_period_us").write_text(str(self.period_us))
            (cpu / "cpu.cfs_quota_us").write_text(str(self.quota_us))
        return self

    @property
    def quota_us(self) -> int:
        return round((self.quota_cores or 0) * self.period_us)

    @property
    def procs_files(self) -> list[Path]:
        return [path / "cgroup.procs" for path in self.dirs()]

    def usage_seconds(self) -> float:
        """CPU seconds of every process that ever ran in the group, exited ones included."""
        return int((CPUACCT_ROOT / CGROUP / self.name / "cpuacct.usage").read_text()) / 1e9

    def throttling(self) -> tuple[int, int]:
        """(periods, periods throttled) since the group was made."""
        stat = parse_cpu_stat((CPU_ROOT / CGROUP / self.name / "cpu.stat").read_text())
        return stat.get("nr_periods", 0), stat.get("nr_throttled", 0)


def parse_cpu_stat(text: str) -> dict[str, int]:
    return {key: int(value) for key, value in (line.split() for line in text.splitlines() if line)}


# --- The network ------------------------------------------------------------------------


@dataclass
class Host:
    """One simulated host: a namespace with one veth on the bridge, and its CPU group."""

    index: int
    address: str
    prefixlen: int
    cpu: CpuGroup

    @property
    def netns(self) -> str:
        return f"{PREFIX}-{self.index}"

    @property
    def veth(self) -> str:
        return f"{PREFIX}-{self.index}-v"

    def commands(self) -> list[list[str]]:
        """The `ip` commands that make it. No default route: the subnet is all it reaches."""
        ns = self.netns
        return [
            ["ip", "netns", "add", ns],
            ["ip", "link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns", ns],
            ["ip", "link", "set", self.veth, "master", BRIDGE, "up"],
            ["ip", "-n", ns, "addr", "add", f"{self.address}/{self.prefixlen}", "dev", "eth0"],
            ["ip", "-n", ns, "link", "set", "eth0", "up"],
            ["ip", "-n", ns, "link", "set", "lo", "up"],
        ]

    def create(self) -> Host:
        self.cpu.create()
        for command in self.commands():
            _ip(command)
        return self


@dataclass
class Network:
    """The private subnet: a bridge in the root namespace and the hosts' addresses on it."""

    subnet: ipaddress.IPv4Network

    @property
    def bridge_address(self) -> str:
        return str(self.subnet[1])

    def commands(self) -> list[list[str]]:
        return [
            ["ip", "link", "add", BRIDGE, "type", "bridge"],
            ["ip", "addr", "add", f"{self.bridge_address}/{self.subnet.prefixlen}", "dev", BRIDGE],
            ["ip", "link", "set", BRIDGE, "up"],
        ]

    def create(self) -> Network:
        for command in self.commands():
            _ip(command)
        return self

    def host(self, index: int, cpu: CpuGroup) -> Host:
        address = self.subnet[FIRST_HOST + index]
        if address == self.subnet.broadcast_address:
            raise ValueError(f"{self.subnet} has no room for host {index}")
        return Host(index, str(address), self.subnet.prefixlen, cpu)


def _ip(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()}")


# --- The sweep ----------------------------------------------------------------------------


def sweep() -> list[str]:
    """Remove every process, cgroup, namespace and interface a run left; say what it removed."""
    removed = []
    for root in dict.fromkeys(p.resolve() for p in (CPU_ROOT / CGROUP, CPUACCT_ROOT / CGROUP)):
        if not root.is_dir():
            continue
        for group in sorted(p for p in root.iterdir() if p.is_dir()):
            removed += _empty_and_remove(group)
        with contextlib.suppress(OSError):
            root.rmdir()
    for line in _lines(["ip", "netns", "list"]):
        name = line.split()[0]
        if name.startswith(f"{PREFIX}-"):
            _ip(["ip", "netns", "del", name])
            removed.append(f"namespace {name}")
    for line in _lines(["ip", "-o", "link", "show"]):
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(f"{PREFIX}-"):
            # A namespace's deletion takes its veth pair along; what is left here is ours.
            with contextlib.suppress(RuntimeError):
                _ip(["ip", "link", "del", name])
                removed.append(f"interface {name}")
    if RUN_DIR.exists():
        shutil.rmtree(RUN_DIR, ignore_errors=True)
        removed.append(str(RUN_DIR))
    return removed


def _empty_and_remove(group: Path) -> list[str]:
    """SIGKILL what still runs in a group of ours, then remove the group."""
    removed = []
    deadline = time.monotonic() + 10
    while True:
        pids = [int(p) for p in (group / "cgroup.procs").read_text().split()]
        if not pids or time.monotonic() > deadline:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                if f"process {pid}" not in removed:
                    removed.append(f"process {pid}")
        time.sleep(0.1)
    with contextlib.suppress(OSError):
        group.rmdir()
        removed.append(f"cgroup {group}")
    return removed


def _lines(command: list[str]) -> list[str]:
    return subprocess.run(command, capture_output=True, text=True).stdout.splitlines()
