"""Faults under an office: what 5,000 people online notice when PostgreSQL or Redis fails.

python -m bench.faults [--rooms 500] [--clients 10] [--rate 20] [--seconds 25] [--faults ...]

For each fault a fresh setup: a PostgreSQL cluster of the run's own (it is restarted, so never
the machine's), a redis-server, one daphne process of the product, and --rooms x --clients
clients (bench/loadgen.py, the public protocol) all joined. Actions then run at --rate for
--seconds, round-robin over the rooms, and 5 s in the fault happens:
- `terminate`: pg_terminate_backend of every connection of the database (a failover, a purge);
- `postgresql`: the server stopped and started again 2 s later;
- `redis`: redis-server stopped and started again 2 s later.
Printed per fault: the fan-out before it (p50, p99), how long after the fault was over (the
terminate returned, the server answered again) an action was last slow (over twice the p99
before, and over 100 ms), the newest state of what was sent before Redis answered, done/sent,
disconnects and whether every room ended the same on every client and in the API. The
targets (issue 27): normal again within 5 s of a terminate and 10 s of PostgreSQL answering,
every client with the newest state within 10 s of Redis answering, nothing lost.
The tests in tests/e2e/test_office_scale.py assert the same with 2,000 clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.loadgen import LoadRun
from bench.run import RESULTS_DIR, machine, markdown
from lunchsite.descriptors import descriptor_limit_raised
from tests.support.processes import (
    DaphneServer,
    PostgresServer,
    RedisServer,
    migrate,
    server_env,
    terminate_backends,
)

FAULTS = ("terminate", "postgresql", "redis")
FAULT_AT_SECONDS = 5
DOWN_FOR_SECONDS = 2
SLOW_FLOOR_SECONDS = 0.1


async def measure_fault(fault: str, args: argparse.Namespace, workdir: Path) -> dict:
    """One fault on a fresh setup: the crowd joins, acts, and the fault happens under it."""
    postgres, redis = PostgresServer().start(), RedisServer().start()
    server = None
    try:
        env = server_env(postgres.url, redis.url, ROOM_CREATE_PER_MINUTE=0)
        migrate(env)
        server = DaphneServer(env, workdir / f"daphne-{fault}.log").start()
        run = LoadRun([server.http_url], rooms=args.rooms, clients=args.clients)
        await run.create_rooms()
        joined = await run.join_all(concurrency=200)
        print(f"==> {fault}: {joined['joined']} joined", file=sys.stderr, flush=True)
        breaks: dict[str, Callable[[], object]] = {
            "terminate": lambda: terminate_backends(postgres.url),
            "postgresql": lambda: postgres.restart(down_for=DOWN_FOR_SECONDS),
            "redis": lambda: redis.restart(down_for=DOWN_FOR_SECONDS),
        }
        moments: dict[str, float] = {}

        async def breaker() -> None:
            await asyncio.sleep(FAULT_AT_SECONDS)
            moments["fault"] = time.perf_counter()
            await asyncio.to_thread(breaks[fault])
            moments["over"] = time.perf_counter()

        breaking = asyncio.create_task(breaker())
        step = await run.actions(args.rate, args.seconds)
        await breaking
        consistency = await run.consistency(with_api=True)
        result = summary(run.timeline, moments) | {
            "fault": fault,
            "joined": joined["joined"],
            "done": step["done"],
            "actions": step["actions"],
            "refused": len(run.refused),
            "disconnects": run.disconnects,
            "inconsistent": consistency["inconsistent"],
            "rooms": consistency["rooms"],
        }
        await run.close_all()
        return result
    finally:
        if server is not None:
            server.stop()
        redis.stop()
        postgres.destroy()


def summary(timeline: list[tuple[float, float]], moments: dict[str, float]) -> dict:
    """The figures of one fault from (sent at, fan-out seconds) of every action."""
    before = [latency for sent, latency in timeline if sent < moments["fault"]]
    p50 = statistics.median(before)
    p99 = statistics.quantiles(before, n=100)[98] if len(before) > 1 else before[0]
    slow = max(2 * p99, SLOW_FLOOR_SECONDS)
    over = moments["over"]
    # one entry per delivery: a change reaches each of its room's other clients
    late = [sent for sent, latency in timeline if sent >= moments["fault"] and latency > slow]
    sent_before_over = [sent + latency for sent, latency in timeline if sent <= over]
    return {
        "before_p50_ms": round(p50 * 1000, 2),
        "before_p99_ms": round(p99 * 1000, 2),
        "slow_ms": round(slow * 1000, 1),
        "slow_deliveries": len(late),
        "slowest_ms": round(max(lat for _, lat in timeline) * 1000, 1),
        "fault_s": round(over - moments["fault"], 2),
        # when the last slow action was sent, from the moment the fault was over
        "normal_again_after_s": round(max(0.0, max(late, default=over) - over), 2),
        # when what was sent before the fault was over had reached everyone
        "caught_up_after_s": round(max(0.0, max(sent_before_over) - over), 2),
    }


TARGETS = {"terminate": 5, "postgresql": 10, "redis": 10}


def table(results: list[dict]) -> str:
    head = [
        "fault",
        "online",
        "p50 / p99 before ms",
        "fault lasted s",
        "slow deliveries (> ms)",
        "normal again after s",
        "caught up after s",
        "target s",
        "done/sent",
        "disconnects",
        "rooms correct",
    ]
    rows = [
        [
            r["fault"],
            f"{r['joined']:,}",
            f"{r['before_p50_ms']} / {r['before_p99_ms']}",
            f"{r['fault_s']}",
            f"{r['slow_deliveries']} (> {r['slow_ms']})",
            f"{r['normal_again_after_s']}",
            f"{r['caught_up_after_s']}",
            f"<= {TARGETS[r['fault']]}",
            f"{r['done']}/{r['actions']}",
            f"{r['disconnects']}",
            f"{r['rooms'] - r['inconsistent']}/{r['rooms']}",
        ]
        for r in results
    ]
    return markdown(head, rows)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rooms", type=int, default=500)
    p.add_argument("--clients", type=int, default=10, help="clients per room")
    p.add_argument("--rate", type=float, default=20, help="actions per second throughout")
    p.add_argument("--seconds", type=float, default=25, help="seconds of actions per fault")
    p.add_argument("--faults", default=",".join(FAULTS), help="terminate, postgresql, redis")
    return p.parse_args(argv)


async def main(argv: list[str]) -> int:
    args = parse_args(argv)
    descriptor_limit_raised()  # five thousand clients are five thousand of our descriptors
    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = Path(tempfile.mkdtemp(prefix=f"lunchsite-faults-{stamp}-"))
    results = []
    for fault in args.faults.split(","):
        results.append(await measure_fault(fault, args, workdir))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    out = RESULTS_DIR / f"faults-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"command": argv, "machine": machine(), "results": results}
    out.write_text(json.dumps(report, indent=2))
    print(table(results))
    print(f"\nservers' logs: {workdir}; JSON: {out}")
    lost = any(r["done"] != r["actions"] or r["inconsistent"] for r in results)
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
