"""Office scale: one process holding 1,000 and 10,000 connections, against bare Channels.

python -m bench.office [--sizes 100,1000] [--rate 60] [--step 15] [--repeat 3] [--idle 45]

For each size (rooms of --clients each) the baseline and the product run one after the
other, each on one daphne process with Redis pub/sub (the product on PostgreSQL): all its
clients join at once (the join storm), then the process sits idle for --idle seconds with
every client connected (its idle CPU, heartbeats and pings included), then actions run at
--rate for --step seconds, --repeat times. The generator holds every client of one setup at a
time (10,000 sockets; two setups of that size would pass the 20,000 open files a process may
have here), so the setups of a size run minutes apart, not interleaved. Every figure is
printed as a ratio: the product's against the baseline's of the same size and run, and the
product's 10,000 against its own 1,000 (docs/performance.md, "Office scale").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.run import (
    RESULTS_DIR,
    Scenario,
    Setup,
    database_create,
    database_drop,
    machine,
    markdown,
    run_step,
    server_env,
    setup_start,
    setup_stop,
)
from lunchsite.descriptors import descriptor_limit_raised
from tests.support.processes import RedisServer

PROJECT_DIR = Path(__file__).resolve().parent.parent
APPS = ("baseline", "product")


async def measure_setup(app: str, rooms: int, args: argparse.Namespace, redis: RedisServer) -> dict:
    """One app at one size: join storm, memory, idle CPU, then the action steps."""
    scenario = Scenario.parse(f"{app}-pubsub-1p")
    database = database_create(args.database_url if app == "product" else "", Path(args.workdir))
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=PROJECT_DIR,
        env=server_env(database, None, "memory"),
        check=True,
    )
    setup_args = argparse.Namespace(**{**vars(args), "rooms": rooms})
    print(f"==> {app}, {rooms * args.clients} clients: join storm", file=sys.stderr, flush=True)
    setup: Setup = await setup_start(scenario, setup_args, redis, database)
    result = setup.result
    try:
        if "failed" not in result:
            result["idle"] = await idle_cpu(setup, args.idle)
            for repeat in range(args.repeat):
                step = await run_step(setup, setup_args, args.rate, False, redis)
                result["steps"].append({**step, "repeat": repeat})
    except Exception as exc:
        result["failed"] = f"{type(exc).__name__}: {exc}"
    finally:
        await setup_stop(setup)
        database_drop(database)
    result["connections"] = rooms * args.clients
    return result


async def idle_cpu(setup: Setup, seconds: float) -> dict:
    """The servers' CPU while every client sits connected and nobody acts, in % of a core."""
    servers = setup.servers
    before = sum(s.cpu_seconds() for s in servers)
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    used = sum(s.cpu_seconds() for s in servers) - before
    percent = round(100 * used / (time.perf_counter() - started), 2)
    print(f"    idle for {seconds:g} s: {percent} % of a core", file=sys.stderr, flush=True)
    return {"seconds": seconds, "cpu_percent": percent}


def summary(result: dict) -> dict:
    """The figures the table compares: medians over the repeats of the action steps."""
    steps = result.get("steps", [])

    def median(get) -> float | None:
        values = [get(s) for s in steps if get(s) is not None]
        return round(statistics.median(values), 2) if values else None

    join = result.get("join", {})
    return {
        "connections": result.get("connections"),
        "joined": join.get("joined"),
        "all_joined_s": join.get("all_joined_s"),
        "join_p50_ms": join.get("p50_ms"),
        "first_state_lists_self": join.get("joined", 0) - join.get("first_state_without_self", 0),
        "kib_per_connection": result.get("kib_per_connection"),
        "idle_cpu_percent": result.get("idle", {}).get("cpu_percent"),
        "p50_ms": median(lambda s: s["fanout_ms"]["p50"]),
        "p99_ms": median(lambda s: s["fanout_ms"]["p99"]),
        "cpu_ms_per_action": median(lambda s: s["cpu_ms_per_action"]),
        "done": sum(s["done"] for s in steps),
        "actions": sum(s["actions"] for s in steps),
        "inconsistent": max((s["consistency"]["inconsistent"] for s in steps), default=None),
        "rooms": steps[0]["consistency"]["rooms"] if steps else None,
        "failed": result.get("failed"),
    }


def ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}x" if value is not None and base else "-"


def table(by_size: dict[int, dict[str, dict]]) -> str:
    """One row per size and setup, the product's figures as ratios of the baseline's."""
    head = [
        "connections",
        "setup",
        "all joined s",
        "x baseline",
        "KiB/conn",
        "x baseline",
        "idle CPU %",
        "x baseline",
        "p50 ms",
        "p99 ms",
        "p50 x baseline",
        "CPU ms/action",
        "done/sent",
        "rooms correct",
    ]
    rows = []
    for connections, setups in sorted(by_size.items()):
        base = setups.get("baseline", {})
        for app in APPS:
            s = setups.get(app)
            if s is None:
                continue
            product = app == "product"
            correct = (
                "-" if s["rooms"] is None else f"{s['rooms'] - s['inconsistent']}/{s['rooms']}"
            )
            rows.append(
                [
                    f"{connections:,}",
                    app + (f" FAILED: {s['failed']}" if s["failed"] else ""),
                    _fmt(s["all_joined_s"]),
                    ratio(s["all_joined_s"], base.get("all_joined_s")) if product else "-",
                    _fmt(s["kib_per_connection"]),
                    ratio(s["kib_per_connection"], base.get("kib_per_connection"))
                    if product
                    else "-",
                    _fmt(s["idle_cpu_percent"]),
                    ratio(s["idle_cpu_percent"], base.get("idle_cpu_percent")) if product else "-",
                    _fmt(s["p50_ms"]),
                    _fmt(s["p99_ms"]),
                    ratio(s["p50_ms"], base.get("p50_ms")) if product else "-",
                    _fmt(s["cpu_ms_per_action"]),
                    f"{s['done']}/{s['actions']}",
                    correct,
                ]
            )
    return markdown(head, rows)


def targets(by_size: dict[int, dict[str, dict]]) -> str:
    """Issue 27's targets, each as the ratio it is judged by."""
    sizes = sorted(by_size)
    if not sizes:
        return ""
    small, large = by_size[sizes[0]], by_size[sizes[-1]]
    product_small, product_large = small.get("product", {}), large.get("product", {})
    base_small, base_large = small.get("baseline", {}), large.get("baseline", {})
    lines = [
        f"Join storm of {sizes[0]:,}: "
        f"{ratio(product_small.get('all_joined_s'), base_small.get('all_joined_s'))} the baseline's"
        f" (target <= 2x); first state lists the joiner:"
        f" {product_small.get('first_state_lists_self')}/{sizes[0]:,}.",
    ]
    if len(sizes) > 1:
        lines += [
            f"At {sizes[-1]:,}: joined {product_large.get('joined')}/{sizes[-1]:,}; "
            f"p50 at {sizes[-1]:,} / p50 at {sizes[0]:,} (the product's own) "
            f"{ratio(product_large.get('p50_ms'), product_small.get('p50_ms'))} (target <= 1.3x);"
            f" done {product_large.get('done')}/{product_large.get('actions')};"
            f" rooms correct {_fmt(product_large.get('rooms'))}"
            f" less {_fmt(product_large.get('inconsistent'))}.",
            f"At {sizes[-1]:,}: RSS per connection "
            + ratio(product_large.get("kib_per_connection"), base_large.get("kib_per_connection"))
            + " the baseline's (target <= 1.1x); idle CPU "
            f"{ratio(product_large.get('idle_cpu_percent'), base_large.get('idle_cpu_percent'))}"
            f" (target <= 1.2x); join storm "
            f"{ratio(product_large.get('all_joined_s'), base_large.get('all_joined_s'))}"
            " (target <= 2x).",
        ]
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="100,1000", help="rooms per size, comma-separated")
    p.add_argument("--clients", type=int, default=10, help="clients per room")
    p.add_argument("--rate", type=float, default=60, help="actions per second in each step")
    p.add_argument("--step", type=float, default=15, help="seconds of actions per step")
    p.add_argument("--repeat", type=int, default=3, help="steps per setup; medians")
    p.add_argument("--idle", type=float, default=45, help="idle seconds, all clients connected")
    p.add_argument("--join-concurrency", type=int, default=200)
    p.add_argument("--settle", type=float, default=5, help="idle seconds before RSS after join")
    p.add_argument("--apps", default=",".join(APPS), help="baseline, product or both")
    p.add_argument("--database-url", required=True, help="PostgreSQL for the product")
    p.add_argument("--workdir", default="")
    args = p.parse_args(argv)
    args.sizes = [int(x) for x in args.sizes.split(",") if x]
    args.apps = [app for app in APPS if app in args.apps.split(",")]
    args.profile_rate = 0
    return args


async def main(argv: list[str]) -> int:
    args = parse_args(argv)
    descriptor_limit_raised()  # ten thousand clients are ten thousand of our descriptors
    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = Path(args.workdir or RESULTS_DIR / f"office-{stamp}")
    workdir.mkdir(parents=True, exist_ok=True)
    args.workdir = str(workdir)
    info = {"command": " ".join(["python -m bench.office", *argv]), "machine": machine()}
    redis = RedisServer().start()
    results: dict[int, dict[str, dict]] = {}
    try:
        for rooms in args.sizes:
            connections = rooms * args.clients
            results[connections] = {}
            for app in args.apps:
                results[connections][app] = await measure_setup(app, rooms, args, redis)
    finally:
        redis.stop()
    by_size = {
        size: {app: summary(r) for app, r in setups.items()} for size, setups in results.items()
    }
    report = {**info, "results": results, "table": table(by_size), "targets": targets(by_size)}
    out = RESULTS_DIR / f"office-{stamp}.json"
    out.write_text(json.dumps(report, indent=2))
    print(report["table"])
    print()
    print(report["targets"])
    print(f"\nmachine: {info['machine']['cores']} cores, {info['machine']['cpu']}; JSON: {out}")
    return 1 if any(s.get("failed") for setups in by_size.values() for s in setups.values()) else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
