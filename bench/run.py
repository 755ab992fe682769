"""Run the same workload against each server setup; print one table and write a JSON file.

python -m bench.run [--quick] [--rooms R --clients C] [--rates 30,60,...] [--step S]
                    [--scenarios a,b] [--profile-rate A]

A scenario is `app-layer-Np[-sqlite]`: the product or the bare-Channels baseline, on the
in-memory layer or Redis (channels-redis' pub/sub or core layer), on N daphne processes
(the clients of each room split across them), on PostgreSQL (--database-url) or SQLite.
Every setup is started and its R x C clients join at once (the join storm, one setup at a
time); then each rate runs for S seconds on every setup in turn, so the rows a ratio compares
ran minutes apart at most. After each step every room's final state is compared on all its
clients (and with the API, for the product). It starts its own redis-server and daphne processes
on free loopback ports and stops them. Latency and CPU are only comparable within a run:
the table gives each product figure as a ratio against the baseline of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import websockets

from bench import commit_cost
from bench.loadgen import LoadRun, _post_json
from tests.support.processes import RedisServer, free_port

PROJECT_DIR = Path(__file__).resolve().parent.parent
RESULTS_DIR = PROJECT_DIR / "bench" / "results"
LAYERS = {
    "memory": None,
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
    "core": "channels_redis.core.RedisChannelLayer",
}
APPS = {"product": "lunchsite.asgi:application", "baseline": "bench.baseline.asgi:application"}
# The table: the product on one and two processes, the baseline, all on Redis
# pub/sub and PostgreSQL; then the product on SQLite at the lower rates.
DEFAULT_SCENARIOS = [
    "baseline-pubsub-1p",
    "product-pubsub-1p",
    "product-pubsub-2p",
    "product-pubsub-1p-sqlite",
]
DEFAULT_RATES = "30,60,100,150,175,200,250"
SQLITE_RATES = "30,60"
P99_LIMIT_MS = 100.0
# Whose CPU a step's machine share is split into (cpu_by_part); the rest is everything else.
MACHINE_PARTS = ("servers", "postgresql", "redis", "generator")


@dataclass
class Scenario:
    name: str
    app: str
    layer: str
    procs: int
    database: str  # "postgresql" or "sqlite"
    env: dict[str, str]  # settings of this setup's servers, e.g. for an A/B of one lever

    @classmethod
    def parse(cls, name: str) -> Scenario:
        """`app-layer-Np[-sqlite][+KEY=VALUE...]`: `+DATABASE_THREADS=2` sets that variable."""
        base, *overrides = name.split("+")
        if not all("=" in o for o in overrides):
            raise ValueError(f"unknown scenario {name!r}: overrides are +KEY=VALUE")
        env = dict(o.split("=", 1) for o in overrides)
        app, layer, procs, *rest = base.split("-")
        database = rest[0] if rest else "postgresql"
        if (
            app not in APPS
            or layer not in LAYERS
            or not procs.endswith("p")
            or database not in ("postgresql", "sqlite")
            or len(rest) > 1
        ):
            raise ValueError(f"unknown scenario {name!r}")
        return cls(name, app, layer, int(procs[:-1]), database, env)

    @property
    def file_name(self) -> str:
        """The name as a file name: a setting's value may hold a path or spaces."""
        return re.sub(r"[^\w.+=-]", "_", self.name)


class Daphne:
    """One daphne process of the bench, with its memory and CPU readable from /proc."""

    def __init__(self, app: str, env: dict, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        launcher = ["-m", "daphne"]
        log = open(log_path, "ab")  # noqa: SIM115 - kept open for the process's life
        self.process = subprocess.Popen(
            [sys.executable, *launcher, "-b", "127.0.0.1", "-p", str(self.port), app],
            cwd=PROJECT_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.log_path = log_path

    def wait_ready(self, path: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited; see {self.log_path}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(self.url + path, timeout=2) as response,
            ):
                if response.status == 200:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"daphne on {self.port} not ready; see {self.log_path}")

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def cpu_seconds(self) -> float:
        return _stat_cpu_seconds(Path(f"/proc/{self.process.pid}/stat").read_text())

    def stop(self) -> None:
        if self.process.poll() is None:
            # daphne waits on SIGTERM for every consumer's disconnect; the bench has its
            # numbers by now, so it does not wait long.
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


# --- Database -----------------------------------------------------------------------


def database_create(base_url: str, workdir: Path) -> str:
    """A fresh database for the product: on PostgreSQL when base_url names one, else SQLite."""
    if not base_url.startswith(("postgres://", "postgresql://")):
        return f"sqlite:///{workdir / f'bench-{secrets.token_hex(4)}.sqlite3'}"
    import psycopg

    parts = urlsplit(base_url)
    name = f"lunchsite_bench_{secrets.token_hex(4)}"
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}"))


def autovacuum_stand_in(urls: list[str]) -> str:
    """Whether the PostgreSQL server vacuums and analyzes by itself ("on"), else what we do.

    Production runs autovacuum. A server without it (some test machines) never analyzes the
    bench's tables: plans stay as they were made on the empty tables of the join storm, and
    the room rows' dead versions pile up. Then the bench does autovacuum's job itself,
    between steps, untimed.
    """
    postgres = [u for u in urls if u.startswith(("postgres://", "postgresql://"))]
    if not postgres:
        return "on"
    import psycopg

    with psycopg.connect(_libpq(postgres[0]), autocommit=True) as conn:
        if conn.execute("SHOW autovacuum").fetchone()[0] == "on":
            return "on"
    return "off on the server: the bench runs VACUUM (ANALYZE) on each database before each step"


def vacuum_analyze(url: str) -> None:
    if not url.startswith(("postgres://", "postgresql://")):
        return
    import psycopg

    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")


def _libpq(url: str) -> str:
    return urlunsplit(urlsplit(url)._replace(scheme="postgresql"))


def database_drop(url: str) -> None:
    if not url.startswith(("postgres://", "postgresql://")):
        return
    import psycopg

    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{parts.path.lstrip("/")}" WITH (FORCE)')


def server_env(database_url: str, redis_url: str | None, layer: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    env.update(
        DJANGO_SECRET_KEY="bench-secret-key-" + "x" * 40,
        DJANGO_DEBUG="0",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=database_url,
        ROOM_CREATE_PER_MINUTE="0",  # the bench creates its rooms from one address
        PYTHONUNBUFFERED="1",
    )
    if LAYERS[layer]:
        env["REDIS_URL"] = redis_url
        env["CHANNEL_LAYER_BACKEND"] = LAYERS[layer]
    return env


# --- One scenario -------------------------------------------------------------------


async def warm_up(url: str) -> None:
    """One room, one client in and out: imports, connections and caches are warm before RSS."""
    room = await asyncio.to_thread(_post_json, f"{url}/api/rooms/")
    ws_url = url.replace("http://", "ws://", 1) + f"/ws/rooms/{room['id']}/"
    async with websockets.connect(ws_url, open_timeout=30) as ws:
        while json.loads(await ws.recv())["type"] != "state":
            pass


@dataclass
class Setup:
    """One scenario's running servers and joined clients, kept up for every rate."""

    scenario: Scenario
    servers: list[Daphne]
    run: LoadRun | None
    result: dict


async def setup_start(sc: Scenario, args: argparse.Namespace, redis: RedisServer, db: str) -> Setup:
    """Start the servers of one setup and join its clients all at once (the join storm)."""
    workdir = Path(args.workdir)
    env = {**server_env(db, redis.url, sc.layer), **sc.env}
    servers = [
        Daphne(APPS[sc.app], env, workdir / f"{sc.file_name}-{i}.log") for i in range(sc.procs)
    ]
    result: dict = {
        "scenario": sc.name,
        "app": sc.app,
        "layer": sc.layer,
        "procs": sc.procs,
        "database": sc.database,
        "steps": [],
    }
    setup = Setup(sc, servers, None, result)
    try:
        ready = "/healthz" if sc.app == "product" else "/"
        for server in servers:
            await asyncio.to_thread(server.wait_ready, ready)
        for server in servers:
            await warm_up(server.url)
        await asyncio.sleep(1)
        rss_before = sum(s.rss_kib() for s in servers)
        setup.run = LoadRun([s.url for s in servers], rooms=args.rooms, clients=args.clients)
        await setup.run.create_rooms()
        cpu_before = sum(s.cpu_seconds() for s in servers)
        with collector_paused():
            result["join"] = await setup.run.join_all(args.join_concurrency)
        result["join"]["server_cpu_s"] = round(
            sum(s.cpu_seconds() for s in servers) - cpu_before, 2
        )
        await asyncio.sleep(args.settle)
        result["join"]["full_presence"] = setup.run.full_presence()
        result["join"]["first_state_without_self"] = setup.run.errors["first_state_without_self"]
        joined = max(1, result["join"]["joined"])
        result["kib_per_connection"] = round(
            (sum(s.rss_kib() for s in servers) - rss_before) / joined, 1
        )
        print(
            f"    {sc.name}: {joined} joined in {result['join']['all_joined_s']} s;"
            f" {result['join']['full_presence']} see everyone;"
            f" {result['join']['first_state_without_self']} first states without the joiner",
            file=sys.stderr,
            flush=True,
        )
    except Exception as exc:  # one broken setup must not hide the others' numbers
        result["failed"] = f"{type(exc).__name__}: {exc}"
    return setup


async def setup_stop(setup: Setup) -> None:
    if setup.run is not None:
        with contextlib.suppress(Exception):
            await setup.run.close_all()
        setup.result["errors"] = dict(setup.run.errors)
        setup.result["disconnects"] = setup.run.disconnects
        setup.result["close_codes"] = dict(setup.run.close_codes)
    for server in setup.servers:
        await asyncio.to_thread(server.stop)


async def run_step(
    setup: Setup, args: argparse.Namespace, rate: float, profile: bool, redis: RedisServer
) -> dict:
    """One rate for `args.step` seconds: latency, CPU per action, delivered, rooms correct."""
    sc, servers, run = setup.scenario, setup.servers, setup.run
    profilers = []
    if profile and args.profile_rate == rate:
        profilers = [
            start_profiler(
                s, Path(args.workdir) / f"{sc.file_name}-{i}-{rate:g}.pyspy.txt", args.step
            )
            for i, s in enumerate(servers)
        ]
    parts_before = cpu_by_part(servers, redis)
    machine_before = machine_jiffies()
    started = time.perf_counter()
    with collector_paused():
        step = await run.actions(rate, args.step)
    # CPU until every change was delivered (the drain): work left over is the step's too.
    parts_after = cpu_by_part(servers, redis)
    wall = time.perf_counter() - started
    used = {part: parts_after[part] - parts_before[part] for part in MACHINE_PARTS}
    for profiler in profilers:
        profiler.wait(30)
    step["server_cpu_percent"] = round(100 * used["servers"] / wall, 1)
    # All cores, everything on the machine: near 100 the machine, not a process, is the limit.
    (busy_before, total_before, stolen_before) = machine_before
    (busy_after, total_after, stolen_after) = machine_jiffies()
    elapsed = max(1, total_after - total_before)
    step["machine_busy_percent"] = round(100 * (busy_after - busy_before) / elapsed, 1)
    # Cores the hypervisor gave to other guests: part of busy, and no process's doing here.
    step["machine_stolen_percent"] = round(100 * (stolen_after - stolen_before) / elapsed, 1)
    step["cpu_ms_per_action"] = round(1000 * used["servers"] / max(1, step["actions"]), 2)
    # Who kept the machine busy, in % of all cores: what is left for more servers. A
    # PostgreSQL backend that exits during the step takes its CPU time with it: not below 0.
    cores_wall = wall * (os.cpu_count() or 1)
    step["machine_share_percent"] = {
        part: round(max(0.0, 100 * seconds / cores_wall), 1) for part, seconds in used.items()
    }
    # The generator shares the machine: if it is saturated, latencies are its own.
    step["generator_cpu_percent"] = round(100 * used["generator"] / wall, 1)
    step["consistency"] = await run.consistency(with_api=sc.app == "product")
    print(
        f"    {sc.name} {rate:g}/s: p50 {step['fanout_ms']['p50']} p99 {step['fanout_ms']['p99']}"
        f" cpu {step['cpu_ms_per_action']} ms/action done {step['done']}/{step['actions']}"
        f" inconsistent {step['consistency']['inconsistent']}"
        f" machine busy {step['machine_busy_percent']} %",
        file=sys.stderr,
        flush=True,
    )
    return step


@contextlib.contextmanager
def collector_paused():
    """No garbage collection in the generator while it times anything.

    The generator holds a thousand clients: a full collection of its heap stopped its event
    loop for up to 350 ms (gen1 up to 130 ms), and every reply that arrived meanwhile was
    timed as late, whichever setup happened to be running. The cycles a step leaves are
    collected after it, untimed.
    """
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


def in_turn(setups: list, repeat: int) -> list:
    """The setups in the order of this repeat: each one goes first in turn.

    Otherwise a setup always runs right after the same other one (whose writes PostgreSQL
    is still vacuuming, whose sockets are still draining), and a figure can move with its
    place: between two runs the same code moved 15-27 % at p50 when it changed place. With
    as many repeats as setups, every setup runs in every place once.
    """
    start = repeat % len(setups) if setups else 0
    return setups[start:] + setups[:start]


def machine_jiffies() -> tuple[int, int, int]:
    """(busy, total, stolen) CPU time of all cores since boot, from /proc/stat; idle and iowait
    are idle. Stolen time (busy too) is the hypervisor running other guests on our cores."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is in user)
    return total - fields[3] - fields[4], total, fields[7]


def cpu_by_part(servers: list[Daphne], redis: RedisServer) -> dict[str, float]:
    """CPU seconds so far of the servers, PostgreSQL (every `postgres` process), Redis and
    this process (the load generator)."""
    postgres = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            text = stat.read_text()
            if text.split("(", 1)[1].startswith("postgres)"):
                postgres += _stat_cpu_seconds(text)
    return {
        "servers": sum(s.cpu_seconds() for s in servers),
        "postgresql": postgres,
        "redis": _stat_cpu_seconds(Path(f"/proc/{redis.process.pid}/stat").read_text()),
        "generator": time.process_time(),
    }


def _stat_cpu_seconds(stat: str) -> float:
    """User + system seconds from a /proc/<pid>/stat line."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_profiler(server: Daphne, out: Path, duration: float) -> subprocess.Popen:
    """py-spy samples one server during the action phase (collapsed stacks, per thread)."""
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    return subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(server.process.pid),
            "--format",
            "raw",
            "--threads",
            "--rate",
            "50",
            "--duration",
            str(int(duration)),
            "--nonblocking",
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# --- The table ----------------------------------------------------------------------


def _fmt(value: object, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}x" if value is not None and base else "-"


def by_rate(result: dict) -> list[dict]:
    """One step per rate: the median of the repeats' latencies and CPU, their sums and worst.

    A 20 s step's p99 is decided by its slowest second; on a shared machine one such second
    can come from anything else running. With --repeat, each figure is the median over the
    repeats of that rate (which ran interleaved with the other setups), and done/sent and
    rooms correct count every repeat.
    """
    merged = []
    for rate in sorted({s["rate"] for s in result.get("steps", [])}):
        steps = [s for s in result["steps"] if s["rate"] == rate]

        def median(get: Callable[[dict], float | None], steps: list[dict] = steps) -> float | None:
            values = [v for v in map(get, steps) if v is not None]
            return round(statistics.median(values), 2) if values else None

        merged.append(
            {
                "rate": rate,
                "repeats": len(steps),
                "fanout_ms": {
                    "p50": median(lambda s: s["fanout_ms"]["p50"]),
                    "p99": median(lambda s: s["fanout_ms"]["p99"]),
                },
                "cpu_ms_per_action": median(lambda s: s["cpu_ms_per_action"]),
                "machine_busy_percent": median(lambda s: s.get("machine_busy_percent")),
                "machine_stolen_percent": median(lambda s: s.get("machine_stolen_percent")),
                "machine_share_percent": {
                    part: median(lambda s, part=part: s.get("machine_share_percent", {}).get(part))
                    for part in MACHINE_PARTS
                },
                "done": sum(s["done"] for s in steps),
                "actions": sum(s["actions"] for s in steps),
                "consistency": {
                    "rooms": steps[0]["consistency"]["rooms"],
                    "inconsistent": max(s["consistency"]["inconsistent"] for s in steps),
                },
            }
        )
    return merged


def best_rate(result: dict) -> float | None:
    """The highest rate whose (median) p99 stayed <= 100 ms with every change delivered."""
    ok = [
        s["rate"]
        for s in by_rate(result)
        if (s["fanout_ms"]["p99"] or 1e9) <= P99_LIMIT_MS and s["done"] == s["actions"]
    ]
    return max(ok, default=None)


def table(results: list[dict]) -> str:
    """One row per scenario and rate, product figures also as ratios of the baseline's."""
    head = [
        "setup",
        "actions/s",
        "fan-out p50 ms",
        "p99 ms",
        "p50 / p99 x baseline",
        "CPU ms/action",
        "CPU x baseline",
        "done/sent",
        "rooms correct",
        "machine busy %",
    ]
    baseline = next((r for r in results if r["app"] == "baseline" and r["procs"] == 1), None)
    base_steps = {s["rate"]: s for s in by_rate(baseline or {})}
    rows = []
    for r in results:
        if "failed" in r and not r.get("steps"):
            rows.append([r["scenario"], f"FAILED: {r['failed']}"] + [""] * (len(head) - 2))
            continue
        for step in by_rate(r):
            fan, base = step["fanout_ms"], base_steps.get(step["rate"])
            vs = "-"
            if r["app"] == "product" and base:
                bf = base["fanout_ms"]
                vs = f"{_ratio(fan['p50'], bf['p50'])} / {_ratio(fan['p99'], bf['p99'])}"
            cpu_vs = "-"
            if r["app"] == "product" and base:
                cpu_vs = _ratio(step["cpu_ms_per_action"], base["cpu_ms_per_action"])
            cons = step["consistency"]
            correct = f"{cons['rooms'] - cons['inconsistent']}/{cons['rooms']}"
            if r["app"] == "baseline":
                correct += " (clients)"
            rows.append(
                [
                    r["scenario"] + (" FAILED" if "failed" in r else ""),
                    _fmt(step["rate"], 0),
                    _fmt(fan["p50"], 1),
                    _fmt(fan["p99"], 1),
                    vs,
                    _fmt(step["cpu_ms_per_action"], 2),
                    cpu_vs,
                    f"{step['done']}/{step['actions']}",
                    correct,
                    _fmt(step["machine_busy_percent"], 0),
                ]
            )
    return "\n\n".join([markdown(head, rows), machine_shares(results), summary(results, baseline)])


def machine_shares(results: list[dict]) -> str:
    """Who kept the machine busy at each rate, in % of all cores (medians of the repeats)."""
    head = ["setup", "actions/s", "machine busy %", *MACHINE_PARTS, "stolen", "rest"]
    rows = []
    for r in results:
        for step in by_rate(r):
            shares = step["machine_share_percent"]
            stolen = step.get("machine_stolen_percent")
            known = [*(shares[p] for p in MACHINE_PARTS), stolen]
            busy = step["machine_busy_percent"]
            rest = None
            if busy is not None and None not in known:
                rest = busy - sum(known)
            rows.append(
                [
                    r["scenario"],
                    _fmt(step["rate"], 0),
                    _fmt(busy, 0),
                    *(_fmt(v, 0) for v in known),
                    _fmt(rest, 0),
                ]
            )
    return markdown(head, rows)


def summary(results: list[dict], baseline: dict | None) -> str:
    """The join storm, the two-process gain and SQLite against PostgreSQL, as ratios."""
    head = [
        "setup",
        "all joined in s",
        "x baseline",
        "join CPU s",
        "first state lists self",
        "see everyone",
        "p99<=100ms up to /s",
    ]
    rows = []
    for r in results:
        join = r.get("join", {})
        base_join = (baseline or {}).get("join", {})
        rows.append(
            [
                r["scenario"],
                _fmt(join.get("all_joined_s"), 2),
                _ratio(join.get("all_joined_s"), base_join.get("all_joined_s"))
                if r["app"] == "product"
                else "-",
                _fmt(join.get("server_cpu_s"), 1),
                f"{join.get('joined', 0) - join.get('first_state_without_self', 0)}"
                f"/{join.get('clients', '-')}",
                f"{join.get('full_presence', '-')}/{join.get('clients', '-')}",
                _fmt(best_rate(r), 0),
            ]
        )
    lines = [markdown(head, rows)]
    by_name = {r["scenario"]: r for r in results}
    one, two = by_name.get("product-pubsub-1p"), by_name.get("product-pubsub-2p")
    if one and two and best_rate(one) and best_rate(two):
        highest = max(s["rate"] for s in by_rate(two))
        capped = " (capped: the highest rate run)" if best_rate(two) == highest else ""
        lines.append(
            f"Two processes / one: highest rate with p99 <= 100 ms {best_rate(two):g} / "
            f"{best_rate(one):g} = {best_rate(two) / best_rate(one):.2f}x{capped}."
        )
    lite = by_name.get("product-pubsub-1p-sqlite")
    if one and lite:
        pg = {s["rate"]: s["cpu_ms_per_action"] for s in by_rate(one)}
        ratios = [
            f"{s['rate']:g}/s: {s['cpu_ms_per_action'] / pg[s['rate']]:.2f}x"
            for s in by_rate(lite)
            if pg.get(s["rate"])
        ]
        lines.append("SQLite CPU per action / PostgreSQL's: " + ", ".join(ratios))
    return "\n\n".join(lines)


def markdown(head: list[str], rows: list[list[str]]) -> str:
    """A Markdown table, columns padded to their widest cell (every bench prints its tables so)."""
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head))]

    def line(row: list[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), sep, *(line(row) for row in rows)])


def postgresql_paced(database_url: str, pace: float = 60) -> dict:
    """What waking an idle PostgreSQL costs on this machine (bench.commit_cost), measured once
    the servers have stopped: a round trip and an UPDATE with its COMMIT, paced (60 a second
    by default) against back to back. Every everyday change pays it, and the baseline, which
    keeps no data, does not (docs/performance.md)."""
    rows = commit_cost.measure(database_url, n=200, pace=pace)
    return {
        "ms": {f"{operation}, {name}": list(times) for (operation, name), times in rows.items()},
        "summary": f"PostgreSQL paced at {pace:g}/s against back to back (bench.commit_cost): "
        + commit_cost.paced_summary(rows, pace),
    }


def machine() -> dict:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_avg_start": os.getloadavg(),
    }


# --- Main ---------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small and short: about 3 minutes")
    p.add_argument("--rooms", type=int, default=100)
    p.add_argument("--clients", type=int, default=10, help="clients per room")
    p.add_argument("--rates", default=DEFAULT_RATES, help="actions per second, one step each")
    p.add_argument("--sqlite-rates", default=SQLITE_RATES, help="the steps of SQLite scenarios")
    p.add_argument("--step", type=float, default=15, help="seconds of actions per rate")
    p.add_argument(
        "--repeat", type=int, default=3, help="steps per rate and setup, interleaved; medians"
    )
    p.add_argument("--join-concurrency", type=int, default=200)
    p.add_argument("--settle", type=float, default=3, help="idle seconds before RSS after join")
    p.add_argument(
        "--scenarios", default="", help="comma-separated; default: " + ",".join(DEFAULT_SCENARIOS)
    )
    p.add_argument("--profile-rate", type=float, default=0, help="py-spy the servers at this rate")
    p.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", ""))
    p.add_argument("--workdir", default="")
    p.add_argument("--out", default="")
    args = p.parse_args(argv)
    if args.quick:
        args.rooms, args.step, args.settle, args.repeat = 30, 5, 1, 1
        args.rates, args.sqlite_rates = "30,60", "30"
    args.rates = [float(x) for x in args.rates.split(",") if x]
    args.sqlite_rates = [float(x) for x in args.sqlite_rates.split(",") if x]
    args.scenarios = [
        Scenario.parse(n) for n in (args.scenarios or ",".join(DEFAULT_SCENARIOS)).split(",")
    ]
    return args


async def main(argv: list[str]) -> int:
    args = parse_args(argv)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    workdir = Path(args.workdir or RESULTS_DIR / f"run-{stamp}")
    workdir.mkdir(parents=True, exist_ok=True)
    args.workdir = str(workdir)
    info = {"command": " ".join(["python -m bench.run", *argv]), "machine": machine()}
    info["config"] = {
        k: v for k, v in vars(args).items() if k not in {"scenarios", "workdir", "database_url"}
    }
    redis = RedisServer().start()
    databases: dict[str, str] = {}
    setups: list[Setup] = []
    try:
        # Every setup is started and joined first (one join storm at a time), then each rate
        # runs on every setup in turn: the rows compared in a ratio are minutes apart at most.
        # Each setup has a database of its own: in a shared one, the prepared plans of the
        # setup started first were made on emptier tables than the others'.
        for sc in args.scenarios:
            base = args.database_url if sc.database == "postgresql" else ""
            databases[sc.name] = database_create(base, workdir)
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
                cwd=PROJECT_DIR,
                env=server_env(databases[sc.name], None, "memory"),
                check=True,
            )
            print(f"==> {sc.name}: join storm", file=sys.stderr, flush=True)
            setups.append(await setup_start(sc, args, redis, databases[sc.name]))
        info["autovacuum"] = autovacuum_stand_in(list(databases.values()))
        for rate in sorted({*args.rates, *args.sqlite_rates}):
            for repeat in range(args.repeat):
                for setup in in_turn(setups, repeat):
                    rates = args.sqlite_rates if setup.scenario.database == "sqlite" else args.rates
                    if rate not in rates or "failed" in setup.result:
                        continue
                    try:
                        if info["autovacuum"] != "on":
                            await asyncio.to_thread(vacuum_analyze, databases[setup.scenario.name])
                        step = await run_step(setup, args, rate, repeat == 0, redis)
                        setup.result["steps"].append({**step, "repeat": repeat})
                    except Exception as exc:
                        setup.result["failed"] = f"{type(exc).__name__}: {exc}"
    finally:
        for setup in setups:
            await setup_stop(setup)
        redis.stop()
        for url in databases.values():
            database_drop(url)
    if args.database_url and any(sc.database == "postgresql" for sc in args.scenarios):
        # With the servers stopped: their heartbeats would keep PostgreSQL awake.
        info["postgresql_paced"] = await asyncio.to_thread(postgresql_paced, args.database_url)
    results = [setup.result for setup in setups]
    info["machine"]["load_avg_end"] = os.getloadavg()
    report = {**info, "results": results, "table": table(results)}
    out = Path(args.out or RESULTS_DIR / f"bench-{stamp}.json")
    out.write_text(json.dumps(report, indent=2))
    shutil.copyfile(out, RESULTS_DIR / "latest.json")
    print(report["table"])
    if "postgresql_paced" in info:
        print(f"\n{info['postgresql_paced']['summary']}")
    load = info["machine"]
    print(
        f"\nmachine: {load['cores']} cores, {load['cpu']}; load avg at start "
        f"{load['load_avg_start'][0]:.2f}, at end {load['load_avg_end'][0]:.2f}; JSON: {out}"
    )
    failed = [r for r in results if "failed" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
