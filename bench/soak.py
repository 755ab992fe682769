"""Memory soaks against real daphne and Redis: print RSS and leftover subscriptions as they go.

python -m bench.soak cycles [--cycles 6000 --round 2000 --concurrency 20]
python -m bench.soak workload [--duration 300 --rooms 50 --clients 10 --rate 50 --procs 2]

`cycles`: connections come and go, `concurrency` at a time, in rooms where someone keeps
acting, so closing connections keep receiving broadcasts (what leaked a pub/sub channel and
its queue per connection, issue 9). After each round: the worker's RSS, the `asgispecific.*`
channels still subscribed in Redis, and how many cycles failed.
`workload`: the benchmark's rooms, clients and action rate (bench/loadgen.py) held for
`duration` seconds on `procs` workers; every `--every` seconds the RSS of each worker.
Both start their own redis-server, daphne processes and database, and stop them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import redis
import websockets

from bench.loadgen import LoadRun
from bench.run import Daphne, database_create, database_drop, server_env
from tests.support.processes import RedisServer


def _post(url: str) -> dict:
    request = urllib.request.Request(url, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _session_cookie(page_url: str) -> str:
    with urllib.request.urlopen(page_url, timeout=30) as response:
        cookies = response.headers.get_all("Set-Cookie") or []
    return next(c for c in cookies if c.startswith("sessionid=")).split(";")[0]


def _subscriptions(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return len(client.pubsub_channels("asgispecific.*"))
    finally:
        client.close()


def _mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


async def _talk(ws_url: str, stop: asyncio.Event) -> None:
    """One participant who toggles a vote twice a second (the per-person limit allows it)."""
    async with websockets.connect(ws_url, open_timeout=30) as ws:
        reader = asyncio.create_task(_drain(ws))
        await ws.send("add:soup")
        while not stop.is_set():
            await ws.send("vote:soup")
            await asyncio.sleep(0.5)
        reader.cancel()


async def _drain(ws) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        async for _ in ws:
            pass


async def soak_cycles(args: argparse.Namespace, redis_url: str, workdir: Path, db: str) -> None:
    env = server_env(db, redis_url, "pubsub")
    server = Daphne("lunchsite.asgi:application", env, workdir / "soak-cycles.log")
    try:
        await asyncio.to_thread(server.wait_ready, "/healthz")
        http, ws_base = server.url, server.url.replace("http://", "ws://", 1)
        rooms = [_post(f"{http}/api/rooms/")["id"] for _ in range(args.rooms)]
        # Each slot is one browser (its own session cookie), so a room sees the same few
        # participants come and go rather than thousands of new ones.
        slots = [
            (rooms[i % len(rooms)], _session_cookie(f"{http}/rooms/{rooms[i % len(rooms)]}/"))
            for i in range(args.concurrency)
        ]
        stop = asyncio.Event()
        talkers = [
            asyncio.create_task(_talk(f"{ws_base}/ws/rooms/{room}/?name=talker", stop))
            for room in rooms
        ]
        await asyncio.sleep(2)
        failures = 0

        async def cycle(room: str, cookie: str) -> None:
            nonlocal failures
            try:
                async with websockets.connect(
                    f"{ws_base}/ws/rooms/{room}/",
                    additional_headers={"Cookie": cookie},
                    open_timeout=30,
                ) as ws:
                    while json.loads(await ws.recv())["type"] not in {"state", "error"}:
                        pass
            except Exception:
                failures += 1

        start_rss = server.rss_kib()
        print(f"{'cycles':>7} {'rss MiB':>8} {'subscribed asgispecific.*':>26} {'failed':>7}")
        print(f"{0:>7} {_mib(start_rss):>8} {_subscriptions(redis_url):>26} {0:>7}", flush=True)
        done = 0
        while done < args.cycles:
            round_end = min(args.cycles, done + args.round)
            started = time.monotonic()
            while done < round_end:
                batch = min(args.concurrency, round_end - done)
                await asyncio.gather(*(cycle(*slots[i]) for i in range(batch)))
                done += batch
            await asyncio.sleep(2)  # disconnects finish
            print(
                f"{done:>7} {_mib(server.rss_kib()):>8} {_subscriptions(redis_url):>26} "
                f"{failures:>7}   ({time.monotonic() - started:.0f} s)",
                flush=True,
            )
        stop.set()
        await asyncio.gather(*talkers, return_exceptions=True)
        await asyncio.sleep(2)
        print(
            f"after the talkers left: rss {_mib(server.rss_kib())} MiB, "
            f"subscribed asgispecific.* {_subscriptions(redis_url)}",
            flush=True,
        )
    finally:
        await asyncio.to_thread(server.stop)


async def soak_workload(args: argparse.Namespace, redis_url: str, workdir: Path, db: str) -> None:
    env = server_env(db, redis_url, "pubsub")
    servers = [
        Daphne("lunchsite.asgi:application", env, workdir / f"soak-workload-{i}.log")
        for i in range(args.procs)
    ]
    run: LoadRun | None = None
    try:
        for server in servers:
            await asyncio.to_thread(server.wait_ready, "/healthz")

        def rss() -> str:
            return " ".join(f"{_mib(s.rss_kib()):>8}" for s in servers)

        header = " ".join(f"{'w' + str(i) + ' MiB':>8}" for i in range(len(servers)))
        print(f"{'phase':>18} {header}", flush=True)
        print(f"{'started':>18} {rss()}", flush=True)
        run = LoadRun([s.url for s in servers], rooms=args.rooms, clients=args.clients)
        await run.create_rooms()
        joined = await run.join_all(200)
        print(f"{'joined ' + str(joined['joined']):>18} {rss()}", flush=True)
        elapsed = 0.0
        while elapsed < args.duration:
            step = min(args.every, args.duration - elapsed)
            result = await run.actions(args.rate, step)
            elapsed += step
            label = f"{elapsed:.0f} s, {result['errors']} err"
            print(f"{label:>18} {rss()}", flush=True)
        consistency = await run.consistency(with_api=True)
        errors = dict(run.errors)
        await run.close_all()
        run = None
        await asyncio.sleep(3)
        print(f"{'all closed':>18} {rss()}", flush=True)
        print(f"consistency: {consistency}", flush=True)
        print(f"errors by kind: {errors or 'none'}", flush=True)
        print(f"subscribed asgispecific.* after close: {_subscriptions(redis_url)}", flush=True)
    finally:
        if run is not None:
            with contextlib.suppress(Exception):
                await run.close_all()
        for server in servers:
            await asyncio.to_thread(server.stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    cycles = sub.add_parser("cycles", help="connect/disconnect cycles during broadcasts")
    cycles.add_argument("--cycles", type=int, default=6000)
    cycles.add_argument("--round", type=int, default=2000, help="print after this many")
    cycles.add_argument("--concurrency", type=int, default=20)
    cycles.add_argument("--rooms", type=int, default=4)
    workload = sub.add_parser("workload", help="the benchmark's workload, held")
    workload.add_argument("--duration", type=float, default=300)
    workload.add_argument("--every", type=float, default=30, help="seconds between RSS lines")
    workload.add_argument("--rooms", type=int, default=50)
    workload.add_argument("--clients", type=int, default=10, help="clients per room")
    workload.add_argument("--rate", type=float, default=50, help="actions per second in total")
    workload.add_argument("--procs", type=int, default=2)
    for mode in (cycles, workload):
        mode.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", ""))
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="lunchsite-soak-"))
    redis_server = RedisServer().start()
    db = database_create(args.database_url, workdir)
    try:
        migrate_env = server_env(db, redis_server.url, "pubsub")
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
            cwd=Path(__file__).resolve().parent.parent,
            env=migrate_env,
            check=True,
        )
        soak = soak_cycles if args.mode == "cycles" else soak_workload
        asyncio.run(soak(args, redis_server.url, workdir, db))
        print(f"server logs: {workdir}")
    finally:
        redis_server.stop()
        database_drop(db)


if __name__ == "__main__":
    main()
