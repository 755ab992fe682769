"""Simulated hosts: do 2 and 4 daphne processes carry 2 and 4 times one's rate?

python -m bench.hosts [--procs 1,2,4] [--placements split,room] [--levels 40,60,...]
                      [--quota 0.3] [--period-ms 100] [--step 15] [--repeat 3] [--quick]

Each daphne process runs in a network namespace of its own (a veth pair on a bridge, a private
subnet) and in a cgroup v1 CPU group with a quota (0.3 of a core by default): a host. Debian's
nginx in the root namespace is the one address of each setup, as docs/scaling.md describes;
PostgreSQL (a throwaway cluster of the run's own) and Redis listen on the bridge, outside the
quotas; the load generator (bench/loadgen.py) talks to nginx over loopback. Setups: one process,
then 2 and 4 with each placement: `split` (nginx's least_conn: a room's clients spread over the
processes) and `room` (nginx hashes the room id: a room's clients on one process). Every setup
is joined first (100 rooms x 10 clients each), then each level of actions/s per process runs on
every setup in turn, so a setup of N processes runs at N times the level; a setup stops at the
first level (by default) whose median p99 passed 100 ms or lost a change. The table gives every
figure as a ratio against the one-process setup of the same run. Everything it creates is
removed at the end, on an interrupt, and by the next run after a kill.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench.hosts import launch, net, report
from bench.hosts.front import Nginx, Site
from bench.hosts.services import BridgeRedis, PrivatePostgres
from bench.loadgen import LoadRun
from bench.run import (
    APPS,
    PROJECT_DIR,
    collector_paused,
    database_create,
    in_turn,
    machine_jiffies,
    server_env,
    start_profiler,
    warm_up,
)
from tests.support.processes import free_port

DAPHNE_PORT = 8000
DEFAULT_LEVELS = "40,60,80,100,120,140,160,180"  # actions/s per process


@dataclass
class Server:
    """One daphne process on its host (`process` as bench.run.start_profiler expects it)."""

    host: net.Host
    process: subprocess.Popen
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{self.host.address}:{DAPHNE_PORT}"


@dataclass
class HostSetup:
    """One setup: N hosts behind one nginx site, its clients and its steps."""

    name: str
    procs: int
    placement: str
    servers: list[Server] = field(default_factory=list)
    site: Site | None = None
    run: LoadRun | None = None
    result: dict = field(default_factory=dict)
    failed_levels: int = 0

    @property
    def hosts(self) -> list[net.Host]:
        return [s.host for s in self.servers]


def setup_names(procs: list[int], placements: list[str]) -> list[tuple[str, int, str]]:
    """(name, processes, placement) of each setup; one process has one placement only."""
    names = []
    for n in procs:
        for placement in [placements[0]] if n == 1 else placements:
            names.append((f"{n}p" if n == 1 else f"{n}p-{placement}", n, placement))
    return names


# --- Start --------------------------------------------------------------------------------


def start_daphne(host: net.Host, env: dict, workdir: Path, name: str) -> Server:
    log_path = workdir / f"{name}-{host.netns}.log"
    env = {**env, "DJANGO_ALLOWED_HOSTS": f"127.0.0.1,localhost,{host.address}"}
    argv = [sys.executable, "-m", "daphne", "--proxy-headers"]
    argv += ["-b", host.address, "-p", str(DAPHNE_PORT), APPS["product"]]
    process = launch.spawn(
        argv, group=host.cpu, netns=host.netns, env=env, cwd=PROJECT_DIR, log_path=log_path
    )
    return Server(host, process, log_path)


def wait_ready(server: Server, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    answer = "no answer"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"daphne exited; see {server.log_path}")
        try:
            with urllib.request.urlopen(server.url + "/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as error:
            answer = error.read().decode(errors="replace")
        except OSError as error:
            answer = str(error)
        time.sleep(0.2)
    raise TimeoutError(
        f"daphne on {server.host.address} not ready ({answer}); see {server.log_path}"
    )


async def join(setup: HostSetup, args: argparse.Namespace) -> None:
    """Warm each process, create the rooms through nginx and join every client at once."""
    for server in setup.servers:
        await warm_up(server.url)
    setup.run = LoadRun(
        [f"http://127.0.0.1:{setup.site.port}"], rooms=args.rooms, clients=args.clients
    )
    await setup.run.create_rooms()
    before = sum(h.cpu.usage_seconds() for h in setup.hosts)
    with collector_paused():
        joined = await setup.run.join_all(args.join_concurrency)
    joined["server_cpu_s"] = round(sum(h.cpu.usage_seconds() for h in setup.hosts) - before, 2)
    await asyncio.sleep(args.settle)
    joined["full_presence"] = setup.run.full_presence()
    joined["first_state_without_self"] = setup.run.errors["first_state_without_self"]
    setup.result["join"] = joined
    print(
        f"    {setup.name}: {joined['joined']}/{joined['clients']} joined in"
        f" {joined['all_joined_s']} s",
        file=sys.stderr,
        flush=True,
    )


# --- One step -----------------------------------------------------------------------------


def cpu_seconds(setup: HostSetup, setups: list[HostSetup], groups: dict) -> dict[str, float]:
    """CPU seconds so far of each part of the machine (report.PARTS) this run can name."""
    idle = [h for s in setups if s is not setup for h in s.hosts]
    return {
        "servers": sum(h.cpu.usage_seconds() for h in setup.hosts),
        "idle setups": sum(h.cpu.usage_seconds() for h in idle),
        **{part: group.usage_seconds() for part, group in groups.items()},
        "generator": time.process_time(),
    }


async def run_step(
    setup: HostSetup,
    setups: list[HostSetup],
    groups: dict,
    level: float,
    args: argparse.Namespace,
    profile: bool,
) -> dict:
    """One rate (the level x the processes) for args.step seconds, with each part's CPU."""
    rate = level * setup.procs
    profilers = []
    if profile:
        workdir = Path(args.workdir)
        profilers = [
            start_profiler(s, workdir / f"{setup.name}-{i}-{rate:g}.pyspy.txt", args.step)
            for i, s in enumerate(setup.servers)
        ]
    parts_before = cpu_seconds(setup, setups, groups)
    hosts_before = [h.cpu.usage_seconds() for h in setup.hosts]
    throttle_before = [h.cpu.throttling() for h in setup.hosts]
    machine_before = machine_jiffies()
    started = time.perf_counter()
    with collector_paused():
        step = await setup.run.actions(rate, args.step)
    wall = time.perf_counter() - started
    parts_after = cpu_seconds(setup, setups, groups)
    machine_after = machine_jiffies()
    for profiler in profilers:
        profiler.wait(30)
    used = {part: parts_after[part] - parts_before[part] for part in report.PARTS}
    cores_wall = wall * (os.cpu_count() or 1)
    step["level"] = level
    step["cpu_ms_per_action"] = round(1000 * used["servers"] / max(1, step["actions"]), 2)
    step["share_percent"] = {p: round(100 * s / cores_wall, 1) for p, s in used.items()}
    step["quota_used_percent"] = [
        round(100 * (h.cpu.usage_seconds() - before) / (h.cpu.quota_cores * wall), 1)
        for h, before in zip(setup.hosts, hosts_before, strict=True)
    ]
    step["throttled_percent"] = [
        round(100 * (t1 - t0) / max(1, p1 - p0), 1)
        for h, (p0, t0) in zip(setup.hosts, throttle_before, strict=True)
        for (p1, t1) in [h.cpu.throttling()]
    ]
    (busy0, total0, stolen0), (busy1, total1, stolen1) = machine_before, machine_after
    elapsed = max(1, total1 - total0)
    step["machine_busy_percent"] = round(100 * (busy1 - busy0) / elapsed, 1)
    step["machine_stolen_percent"] = round(100 * (stolen1 - stolen0) / elapsed, 1)
    step["consistency"] = await setup.run.consistency(with_api=True)
    print(
        f"    {setup.name} {rate:g}/s: p50 {step['fanout_ms']['p50']} p99"
        f" {step['fanout_ms']['p99']} ms, cpu {step['cpu_ms_per_action']} ms/action,"
        f" done {step['done']}/{step['actions']}, quota used {step['quota_used_percent']} %,"
        f" machine busy {step['machine_busy_percent']} %",
        file=sys.stderr,
        flush=True,
    )
    return step


async def ramp(setups: list[HostSetup], groups: dict, args: argparse.Namespace) -> None:
    """Each level on every setup in turn; a setup past its knee stops climbing."""
    active = [s for s in setups if "failed" not in s.result]
    for level in args.levels:
        if not active:
            break
        print(f"==> {level:g} actions/s per process", file=sys.stderr, flush=True)
        for repeat in range(args.repeat):
            for setup in in_turn(active, repeat):
                profile = repeat == 0 and level == args.profile_level
                try:
                    step = await run_step(setup, setups, groups, level, args, profile)
                    setup.result["steps"].append({**step, "repeat": repeat})
                except Exception as exc:  # one broken setup must not hide the others' numbers
                    setup.result["failed"] = f"{type(exc).__name__}: {exc}"
        for setup in list(active):
            merged = report.by_level(setup.result)
            passed = merged and merged[-1]["level"] == level and report.passes(merged[-1])
            setup.failed_levels = 0 if passed else setup.failed_levels + 1
            if "failed" in setup.result or setup.failed_levels >= args.stop_after:
                active.remove(setup)


# --- The run ------------------------------------------------------------------------------


async def run(args: argparse.Namespace, info: dict) -> list[dict]:
    """Make the hosts, start everything, join, ramp; stop what it started (the sweep after
    it removes the rest, whatever happened)."""
    workdir = Path(args.workdir)
    network = net.Network(args.subnet).create()
    groups = {p: net.CpuGroup(p).create() for p in ("nginx", "postgresql", "redis")}
    postgres = PrivatePostgres(
        network.bridge_address, str(args.subnet), groups["postgresql"], net.RUN_DIR
    ).start()
    redis = BridgeRedis(network.bridge_address, groups["redis"], workdir / "redis.log").start()
    setups: list[HostSetup] = []
    nginx: Nginx | None = None
    try:
        index = 0
        for name, procs, placement in setup_names(args.procs, args.placements):
            setup = HostSetup(name, procs, placement)
            setup.result = {
                "setup": name,
                "procs": procs,
                "placement": placement if procs > 1 else "-",
                "steps": [],
            }
            setups.append(setup)
            database = database_create(postgres.url, workdir)
            env = server_env(database, redis.url, "pubsub")
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
                cwd=PROJECT_DIR,
                env=server_env(database, None, "memory"),
                check=True,
            )
            for _ in range(procs):
                quota = net.CpuGroup(f"host-{index}", args.quota, args.period_us)
                host = network.host(index, quota).create()
                setup.servers.append(start_daphne(host, env, workdir, name))
                index += 1
            setup.site = Site(
                name.replace("-", "_"),
                free_port(),
                placement,
                [f"{s.host.address}:{DAPHNE_PORT}" for s in setup.servers],
            )
        for setup in setups:
            for server in setup.servers:
                await asyncio.to_thread(wait_ready, server)
        nginx = Nginx(net.RUN_DIR / "nginx", [s.site for s in setups], groups["nginx"]).start()
        for setup in setups:
            print(f"==> {setup.name}: join storm", file=sys.stderr, flush=True)
            try:
                await join(setup, args)
            except Exception as exc:
                setup.result["failed"] = f"{type(exc).__name__}: {exc}"
        await ramp(setups, groups, args)
    finally:
        for setup in setups:
            if setup.run is not None:
                try:
                    await setup.run.close_all()
                except Exception as exc:
                    setup.result.setdefault("failed", f"closing: {type(exc).__name__}: {exc}")
                setup.result["errors"] = dict(setup.run.errors)
                setup.result["disconnects"] = setup.run.disconnects
        for setup in setups:
            if nginx is not None and setup.site is not None:
                setup.result["placement_check"] = nginx.placement(setup.site)
            for server in setup.servers:
                launch.stop(server.process, timeout=3)
        if nginx is not None:
            nginx.stop()
        redis.stop()
        postgres.stop()
    info["hosts"] = [
        {"setup": s.name, "netns": h.netns, "address": h.address} for s in setups for h in s.hosts
    ]
    return [s.result for s in setups]
