"""Processes of the simulated hosts: each in its CPU group (and namespace), bound to the bench."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

from bench.hosts.net import CpuGroup


def launch_command(
    argv: list[str], *, procs_files: list[Path], netns: str | None = None, user: str | None = None
) -> list[str]:
    """argv, started in a CPU group (and a namespace, as a user) and bound to the bench's life.

    The shell writes its own pid into the group before it execs, so the group holds every CPU
    second of the process and its children from the first. The parent-death signal kills the
    process when the bench dies, even by SIGKILL; it is set last, after any change of user,
    which would clear it. `ip netns exec` and setpriv exec in place: the pid stays the shell's.
    """
    joins = " && ".join(f'echo $$ > "${i + 1}"' for i in range(len(procs_files)))
    script = f'{joins} && shift {len(procs_files)} && exec "$@"'
    chain: list[str] = []
    if netns:
        chain += ["ip", "netns", "exec", netns]
    if user:
        chain += ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"]
    chain += ["setpriv", "--pdeathsig", "KILL", *argv]
    return ["sh", "-c", script, "sh", *map(str, procs_files), *chain]


def spawn(
    argv: list[str],
    *,
    group: CpuGroup,
    log_path: Path,
    netns: str | None = None,
    user: str | None = None,
    env: dict | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen:
    """Start argv as `launch_command` says, its output into log_path. Call from the main
    thread: the parent-death signal follows the thread that started the process."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            launch_command(argv, procs_files=group.procs_files, netns=netns, user=user),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
        )


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 5) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def wait_for_port(
    host: str, port: int, timeout: float = 30, process: subprocess.Popen | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the process for {host}:{port} exited")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout} s")
