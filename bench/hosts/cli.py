"""The simulated hosts' command line: `python -m bench.hosts`, its skip, its clean-up."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import signal
import sys
import time
from pathlib import Path

from bench.hosts import net, report, scenario
from bench.run import RESULTS_DIR, machine

SKIPPED = "hosts scenario skipped: "


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=scenario.__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--check", action="store_true", help="exit 0 if this machine can run it")
    p.add_argument("--table", default="", help="print the tables of a run's JSON, run nothing")
    p.add_argument("--quick", action="store_true", help="1 and 2 processes, short: ~5 minutes")
    p.add_argument("--procs", default="1,2,4", help="process counts; 1 is the reference")
    p.add_argument("--placements", default="split,room", help="split (least_conn), room (hash)")
    p.add_argument(
        "--levels", default=scenario.DEFAULT_LEVELS, help="actions/s per process, ramped"
    )
    p.add_argument("--quota", type=float, default=0.3, help="cores per host (cfs quota/period)")
    p.add_argument(
        "--period-ms",
        type=float,
        default=100,
        help="the CFS period: a host that used its quota waits for the next (kernel default 100)",
    )
    p.add_argument("--rooms", type=int, default=100)
    p.add_argument("--clients", type=int, default=10, help="clients per room")
    p.add_argument("--step", type=float, default=15, help="seconds of actions per step")
    p.add_argument("--repeat", type=int, default=3, help="steps per level and setup; medians")
    p.add_argument(
        "--stop-after", type=int, default=1, help="a setup stops after this many failed levels"
    )
    p.add_argument("--join-concurrency", type=int, default=200)
    p.add_argument("--settle", type=float, default=3, help="idle seconds after the join storm")
    p.add_argument("--subnet", default="10.27.0.0/24", help="private, for the bridge and hosts")
    p.add_argument("--profile-level", type=float, default=0, help="py-spy every server then")
    p.add_argument("--max-minutes", type=float, default=120, help="stop (and clean up) by then")
    p.add_argument("--workdir", default="")
    p.add_argument("--out", default="")
    args = p.parse_args(argv)
    if args.quick:
        args.procs, args.levels, args.rooms = "1,2", "40,80", 30
        args.step, args.repeat, args.settle = 5, 1, 1
    args.procs = [int(x) for x in args.procs.split(",") if x]
    if 1 not in args.procs:
        p.error("--procs needs 1: every figure is a ratio against the one-process setup")
    args.placements = [x for x in args.placements.split(",") if x]
    args.levels = [float(x) for x in args.levels.split(",") if x]
    args.subnet = ipaddress.IPv4Network(args.subnet)
    if not args.subnet.is_private:
        p.error("--subnet must be a private range: the hosts' traffic stays on this machine")
    args.period_us = round(args.period_ms * 1000)
    return args


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.table:
        run_json = json.loads(Path(args.table).read_text())
        print(report.tables(run_json["results"], run_json))
        return 0
    reason = net.unavailable()
    if reason:
        print(SKIPPED + reason, flush=True)
        return 1 if args.check else 0
    if args.check:
        return 0
    stamp = time.strftime("%Y%m%d-%H%M%S")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    workdir = Path(args.workdir or RESULTS_DIR / f"hosts-{stamp}")
    workdir.mkdir(parents=True, exist_ok=True)
    args.workdir = str(workdir)
    info = {"command": " ".join(["python -m bench.hosts", *argv]), "machine": machine()}
    info["config"] = {
        k: (str(v) if k == "subnet" else v) for k, v in vars(args).items() if k != "workdir"
    }
    # An interrupt, a TERM or the deadline all end in the sweep below.
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGALRM):
        signal.signal(sig, _interrupted)
    signal.alarm(int(args.max_minutes * 60))
    try:
        with net.exclusive():
            left = net.sweep()
            if left:
                print(f"==> removed what a killed run left: {', '.join(left)}", file=sys.stderr)
            try:
                results = asyncio.run(scenario.run(args, info))
            finally:
                signal.alarm(0)
                net.sweep()
    except net.Busy as busy:
        print(f"hosts scenario not run: {busy}", flush=True)
        return 1
    info["machine"]["load_avg_end"] = os.getloadavg()
    text = report.tables(results, info)
    out = Path(args.out or RESULTS_DIR / f"hosts-{stamp}.json")
    out.write_text(json.dumps({**info, "results": results, "table": text}, indent=2))
    print(text)
    load = info["machine"]
    print(
        f"\nmachine: {load['cores']} cores, {load['cpu']}; load avg at start "
        f"{load['load_avg_start'][0]:.2f}, at end {load['load_avg_end'][0]:.2f}; JSON: {out}"
    )
    return 1 if any("failed" in r for r in results) else 0
