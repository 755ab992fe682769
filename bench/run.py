"""Run the same workload against each server setup; print one table and write a JSON file.

python -m bench.run [--quick] [--rooms R --clients C --rate A --duration S] [--scenarios a,b]

Setups (scenario names): product or baseline, on the in-memory layer or Redis (channels-redis'
pub/sub or core layer), on one daphne process or two (clients of each room split across them).
It starts its own redis-server and daphne processes on free loopback ports and stops them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import websockets

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
ALL_SCENARIOS = [
    "product-memory-1p",
    "baseline-memory-1p",
    "product-pubsub-1p",
    "baseline-pubsub-1p",
    "product-core-1p",
    "baseline-core-1p",
    "product-pubsub-2p",
    "baseline-pubsub-2p",
    "product-core-2p",
    "baseline-core-2p",
]
QUICK_SCENARIOS = [
    "product-memory-1p",
    "baseline-memory-1p",
    "product-pubsub-1p",
    "product-pubsub-2p",
]
P99_LIMIT_MS = 100.0


@dataclass
class Scenario:
    name: str
    app: str
    layer: str
    procs: int

    @classmethod
    def parse(cls, name: str) -> Scenario:
        app, layer, procs = name.split("-")
        if app not in APPS or layer not in LAYERS or not procs.endswith("p"):
            raise ValueError(f"unknown scenario {name!r}")
        return cls(name, app, layer, int(procs[:-1]))


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
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

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
        return f"sqlite:///{workdir / 'bench.sqlite3'}"
    import psycopg

    parts = urlsplit(base_url)
    name = f"lunchsite_bench_{secrets.token_hex(4)}"
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}"))


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


async def run_scenario(sc: Scenario, args: argparse.Namespace, redis: RedisServer, db: str) -> dict:
    """Start the servers of one setup, run the workload, measure, stop everything."""
    workdir = Path(args.workdir)
    env = server_env(db, redis.url, sc.layer)
    servers = [Daphne(APPS[sc.app], env, workdir / f"{sc.name}-{i}.log") for i in range(sc.procs)]
    result: dict = {"scenario": sc.name, "app": sc.app, "layer": sc.layer, "procs": sc.procs}
    run: LoadRun | None = None
    phases: dict[str, float] = {}
    mark = time.monotonic()

    def phase(name: str) -> None:
        nonlocal mark
        now = time.monotonic()
        phases[name] = round(now - mark, 1)
        mark = now

    result["phase_s"] = phases
    try:
        ready = "/healthz" if sc.app == "product" else "/"
        for server in servers:
            await asyncio.to_thread(server.wait_ready, ready)
        for server in servers:
            await warm_up(server.url)
        await asyncio.sleep(1)
        phase("start")
        rss_before = sum(s.rss_kib() for s in servers)
        run = LoadRun([s.url for s in servers], rooms=args.rooms, clients=args.clients)
        await run.create_rooms()
        result["join"] = await run.join_all(args.join_concurrency)
        phase("join")
        await asyncio.sleep(args.settle)
        rss_after = sum(s.rss_kib() for s in servers)
        joined = max(1, result["join"]["joined"])
        result["memory"] = {
            "rss_before_kib": rss_before,
            "rss_after_kib": rss_after,
            "kib_per_connection": round((rss_after - rss_before) / joined, 1),
        }
        profilers = (
            [
                start_profiler(s, workdir / f"{sc.name}-{i}.pyspy.txt", args.duration)
                for i, s in enumerate(servers)
            ]
            if args.profile
            else []
        )
        cpu_before = sum(s.cpu_seconds() for s in servers)
        own_before = time.process_time()
        started = time.perf_counter()
        result["actions"] = await run.actions(args.rate, args.duration)
        busy = sum(s.cpu_seconds() for s in servers) - cpu_before
        wall = time.perf_counter() - started
        result["actions"]["server_cpu_percent"] = round(100 * busy / wall, 1)
        # The generator shares the machine: if it is saturated, latencies are its own.
        result["actions"]["generator_cpu_percent"] = round(
            100 * (time.process_time() - own_before) / wall, 1
        )
        for profiler in profilers:
            profiler.wait(30)
        phase("actions")
        result["knee"] = []
        for rate in args.knee_rates:
            step = await run.actions(rate, args.knee_duration)
            result["knee"].append(step)
            if (step["fanout_ms"]["p99"] or 0) > P99_LIMIT_MS or step["errors"]:
                break
        phase("knee")
        result["consistency"] = await run.consistency(with_api=sc.app == "product")
    except Exception as exc:  # one broken setup must not hide the others' numbers
        result["failed"] = f"{type(exc).__name__}: {exc}"
    finally:
        if run is not None:
            with contextlib.suppress(Exception):
                await run.close_all()
            result["errors"] = dict(run.errors)
            result["disconnects"] = run.disconnects
            result["close_codes"] = dict(run.close_codes)
            result["skipped_actions"] = run.skipped
            phase("close")
        for server in servers:
            await asyncio.to_thread(server.stop)
        phase("stop")
    return result


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


def knee_text(result: dict) -> str:
    """The highest deliveries/s that kept p99 <= 100 ms, and the rate that broke it."""
    steps = [result.get("actions"), *result.get("knee", [])] if result.get("actions") else []
    ok = [s for s in steps if (s["fanout_ms"]["p99"] or 1e9) <= P99_LIMIT_MS and not s["errors"]]
    bad = [s for s in steps if s not in ok]
    best = max((s["deliveries_per_s"] for s in ok), default=None)
    text = f"{best:.0f}" if best is not None else "-"
    if bad:
        text += f" (<{bad[0]['deliveries_per_s']:.0f})"
    else:
        text += " (no knee)"
    return text


def table(results: list[dict]) -> str:
    head = [
        "scenario",
        "join p50/p99 ms",
        "all joined s",
        "deliv/s",
        "fan-out p50/p90/p99/max ms",
        "x baseline p50/p99",
        "errors",
        "disc",
        "KiB/conn",
        "cpu%",
        "consistent",
        "p99<=100ms up to deliv/s",
    ]
    baselines = {(r["layer"], r["procs"]): r for r in results if r["app"] == "baseline"}
    rows = []
    for r in results:
        if "failed" in r and "actions" not in r:
            rows.append([r["scenario"], f"FAILED: {r['failed']}"] + [""] * (len(head) - 2))
            continue
        join, act = r.get("join", {}), r.get("actions", {})
        fan = act.get("fanout_ms", {})
        ratio = "-"
        base = baselines.get((r["layer"], r["procs"]))
        if r["app"] == "product" and base and base.get("actions"):
            bf = base["actions"]["fanout_ms"]
            if bf["p50"] and bf["p99"] and fan.get("p50") is not None:
                ratio = f"{fan['p50'] / bf['p50']:.2f}/{fan['p99'] / bf['p99']:.2f}"
        cons = r.get("consistency")
        consistent = "-"
        if cons:
            consistent = "yes" if not cons["inconsistent"] else f"NO {cons['inconsistent']}"
            if r["app"] == "baseline":
                consistent += " (clients only)"
        rows.append(
            [
                r["scenario"] + (" FAILED" if "failed" in r else ""),
                f"{_fmt(join.get('p50_ms'), 0)}/{_fmt(join.get('p99_ms'), 0)}",
                _fmt(join.get("all_joined_s"), 2),
                _fmt(act.get("deliveries_per_s"), 0),
                "/".join(_fmt(fan.get(k), 1) for k in ("p50", "p90", "p99", "max")),
                ratio,
                str(sum(r.get("errors", {}).values())),
                str(r.get("disconnects", "-")),
                _fmt(r.get("memory", {}).get("kib_per_connection"), 1),
                _fmt(act.get("server_cpu_percent"), 0),
                consistent,
                knee_text(r) if act else "-",
            ]
        )
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head))]

    def line(row: list[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), sep, *(line(row) for row in rows)])


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
    p.add_argument("--quick", action="store_true", help="small and short: under 2 minutes")
    p.add_argument("--rooms", type=int, default=100)
    p.add_argument("--clients", type=int, default=10, help="clients per room")
    p.add_argument("--rate", type=float, default=100, help="actions per second in total")
    p.add_argument("--duration", type=float, default=60, help="seconds of actions (the hold)")
    p.add_argument("--knee-rates", default="150,200,300,400,600", help="actions/s steps")
    p.add_argument("--knee-duration", type=float, default=8)
    p.add_argument("--join-concurrency", type=int, default=200)
    p.add_argument("--settle", type=float, default=3, help="idle seconds before RSS after join")
    p.add_argument("--scenarios", default="", help="comma-separated; default: all")
    p.add_argument("--profile", action="store_true", help="py-spy the servers during actions")
    p.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", ""))
    p.add_argument("--workdir", default="")
    p.add_argument("--out", default="")
    args = p.parse_args(argv)
    if args.quick:
        args.rooms, args.rate, args.duration, args.settle = 30, 50, 5, 1
        args.knee_rates, args.knee_duration = "150", 3
        args.scenarios = args.scenarios or ",".join(QUICK_SCENARIOS)
    args.knee_rates = [float(x) for x in args.knee_rates.split(",") if x]
    args.scenarios = [
        Scenario.parse(n) for n in (args.scenarios or ",".join(ALL_SCENARIOS)).split(",")
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
    info["config"]["database"] = (
        "postgresql" if args.database_url.startswith("postgres") else "sqlite"
    )
    redis = RedisServer().start()
    db = database_create(args.database_url, workdir)
    migrate_env = server_env(db, None, "memory")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=PROJECT_DIR,
        env=migrate_env,
        check=True,
    )
    results = []
    try:
        for sc in args.scenarios:
            print(f"==> {sc.name}", file=sys.stderr, flush=True)
            began = time.monotonic()
            result = await run_scenario(sc, args, redis, db)
            result["wall_s"] = round(time.monotonic() - began, 1)
            results.append(result)
            print(f"    {json.dumps(result)[:400]}", file=sys.stderr, flush=True)
    finally:
        redis.stop()
        database_drop(db)
    info["machine"]["load_avg_end"] = os.getloadavg()
    report = {**info, "results": results, "table": table(results)}
    out = Path(args.out or RESULTS_DIR / f"bench-{stamp}.json")
    out.write_text(json.dumps(report, indent=2))
    shutil.copyfile(out, RESULTS_DIR / "latest.json")
    print(report["table"])
    load = info["machine"]
    print(
        f"\nmachine: {load['cores']} cores, {load['cpu']}; load avg at start "
        f"{load['load_avg_start'][0]:.2f}, at end {load['load_avg_end'][0]:.2f}; "
        f"database {info['config']['database']}; JSON: {out}"
    )
    failed = [r for r in results if "failed" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
