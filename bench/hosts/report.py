"""The simulated hosts' tables: every figure as a ratio against the one-process setup's."""

from __future__ import annotations

import statistics
from collections.abc import Callable

from bench.run import P99_LIMIT_MS, markdown

# Whose CPU a step is split into: the setup's own daphne processes, the other setups' (joined,
# idle), nginx, PostgreSQL, Redis (each a cgroup of the run) and the generator (this process).
PARTS = ("servers", "idle setups", "nginx", "postgresql", "redis", "generator")
TARGETS = {2: 1.8, 4: 3.2}


def by_level(result: dict) -> list[dict]:
    """One row per level: medians of the repeats; done/sent summed, the worst room count."""
    merged = []
    for level in sorted({s["level"] for s in result.get("steps", [])}):
        steps = [s for s in result["steps"] if s["level"] == level]

        def median(get: Callable[[dict], float | None], steps: list[dict] = steps) -> float | None:
            values = [v for v in map(get, steps) if v is not None]
            return round(statistics.median(values), 2) if values else None

        merged.append(
            {
                "level": level,
                "rate": steps[0]["rate"],
                "repeats": len(steps),
                "p50": median(lambda s: s["fanout_ms"]["p50"]),
                "p99": median(lambda s: s["fanout_ms"]["p99"]),
                "cpu_ms_per_action": median(lambda s: s["cpu_ms_per_action"]),
                "machine_busy_percent": median(lambda s: s["machine_busy_percent"]),
                "machine_stolen_percent": median(lambda s: s["machine_stolen_percent"]),
                "share_percent": {
                    part: median(lambda s, part=part: s["share_percent"].get(part))
                    for part in PARTS
                },
                "quota_used_percent": median(lambda s: max(s["quota_used_percent"])),
                "throttled_percent": median(lambda s: max(s["throttled_percent"])),
                "done": sum(s["done"] for s in steps),
                "actions": sum(s["actions"] for s in steps),
                "inconsistent": max(s["consistency"]["inconsistent"] for s in steps),
                "rooms": steps[0]["consistency"]["rooms"],
            }
        )
    return merged


def passes(row: dict) -> bool:
    """Median p99 within the limit, and every change reached every client of its room."""
    return (row["p99"] or 1e9) <= P99_LIMIT_MS and row["done"] == row["actions"]


def best(result: dict) -> dict | None:
    """The highest level that passed, or None."""
    return max((r for r in by_level(result) if passes(r)), key=lambda r: r["level"], default=None)


def per_busiest_host_cpu(row: dict) -> float | None:
    """The rate per unit of the busiest host's quota used: how far the rate could grow before
    that host runs out of quota, whatever else held the machine back. Against one process's,
    it is the gain the hosts' CPU allows, apart from the latency the measured rate needed."""
    used = row["quota_used_percent"]
    return row["rate"] / used if used else None


# A part this close to its ceiling (in %) is named with the nearest one: two can be at theirs.
NEAR_CEILING = 90


def nearest_ceilings(row: dict, cores: int) -> list[tuple[str, int]]:
    """The parts closest to their own ceilings, in % of that ceiling, nearest first: every
    one at NEAR_CEILING % or more, else the nearest alone. The ceilings: a host's quota, one
    core for single-threaded Redis and the generator's event loop, the machine's cores for
    nginx (one worker per core), PostgreSQL and everything together."""
    share = row["share_percent"]
    ceilings = {
        "the busiest host's quota": row["quota_used_percent"],
        "the generator's core": (share["generator"] or 0) * cores,
        "Redis's core": (share["redis"] or 0) * cores,
        "nginx's cores": share["nginx"] or 0,
        "PostgreSQL's cores": share["postgresql"] or 0,
        "the machine": row["machine_busy_percent"],
    }
    ranked = sorted(((name, round(v or 0)) for name, v in ceilings.items()), key=lambda c: -c[1])
    return [c for c in ranked if c[1] >= NEAR_CEILING] or ranked[:1]


def _ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}x" if value is not None and base else "-"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def steps_table(results: list[dict]) -> str:
    """Every level of every setup, against the one-process setup at the same level."""
    one = next((r for r in results if r["procs"] == 1), {})
    base = {row["level"]: row for row in by_level(one)}
    base_best = (best(one) or {}).get("rate")
    head = [
        "setup",
        "actions/s",
        "x 1p's highest",
        "p50 x 1p",
        "p99 x 1p",
        "p99 <= 100 ms",
        "CPU/action x 1p",
        "rate per busiest host's CPU x 1p",
        "busiest host's quota used %",
        "throttled periods %",
        "done/sent",
        "rooms correct",
    ]
    rows = []
    for r in results:
        if "failed" in r and not r.get("steps"):
            rows.append([r["setup"], f"FAILED: {r['failed']}"] + [""] * (len(head) - 2))
            continue
        for row in by_level(r):
            b = base.get(row["level"], {})
            rows.append(
                [
                    r["setup"] + (" FAILED" if "failed" in r else ""),
                    f"{row['rate']:g}",
                    _ratio(row["rate"], base_best),
                    _ratio(row["p50"], b.get("p50")),
                    _ratio(row["p99"], b.get("p99")),
                    "yes" if passes(row) else "no",
                    _ratio(row["cpu_ms_per_action"], b.get("cpu_ms_per_action")),
                    _ratio(per_busiest_host_cpu(row), b and per_busiest_host_cpu(b)),
                    _fmt(row["quota_used_percent"]),
                    _fmt(row["throttled_percent"]),
                    f"{row['done']}/{row['actions']}",
                    f"{row['rooms'] - row['inconsistent']}/{row['rooms']}",
                ]
            )
    return markdown(head, rows)


def shares_table(results: list[dict]) -> str:
    """Who kept the machine busy at each step, in % of all cores (medians of the repeats)."""
    head = ["setup", "actions/s", "machine busy %", *PARTS, "stolen", "rest"]
    rows = []
    for r in results:
        for row in by_level(r):
            shares = [row["share_percent"][p] for p in PARTS]
            stolen, busy = row["machine_stolen_percent"], row["machine_busy_percent"]
            known = [*shares, stolen]
            rest = busy - sum(known) if busy is not None and None not in known else None
            rows.append([r["setup"], f"{row['rate']:g}", _fmt(busy), *map(_fmt, known), _fmt(rest)])
    return markdown(head, rows)


def summary_table(results: list[dict], cores: int) -> str:
    """Per setup: its highest rate as a ratio of one process's, the target, and what was
    nearest its ceiling at the first level that failed (the knee)."""
    one = next((r for r in results if r["procs"] == 1), {})
    base_best = (best(one) or {}).get("rate")
    head = [
        "setup",
        "placement",
        "highest rate, p99 <= 100 ms, x 1p",
        "target",
        "rate per busiest host's CPU x 1p, lowest level",
        "join storm x 1p",
        "clients per process",
        "rooms on one process",
        "first failed at x 1p's highest",
        "nearest its ceiling there",
    ]
    rows = []
    base_join = one.get("join", {}).get("all_joined_s")
    base_rows = {row["level"]: row for row in by_level(one)}
    for r in results:
        top = best(r)
        rows_r = by_level(r)
        lowest = rows_r[0] if rows_r else None
        base_low = base_rows.get(lowest["level"]) if lowest else None
        headroom = "-"
        if lowest and base_low:
            headroom = _ratio(per_busiest_host_cpu(lowest), per_busiest_host_cpu(base_low))
        failed = [row for row in by_level(r) if not passes(row)]
        knee = min(failed, key=lambda row: row["level"]) if failed else None
        if knee is not None:
            near = nearest_ceilings(knee, cores)
            where = _ratio(knee["rate"], base_best)
            limit = ", ".join(f"{part} ({percent} %)" for part, percent in near)
        else:
            where, limit = "not reached", "-"
        check = r.get("placement_check", {})
        spread = check.get("rooms_by_processes_reached", {})
        join = r.get("join", {})
        rows.append(
            [
                r["setup"],
                r["placement"],
                _ratio((top or {}).get("rate"), base_best),
                f">= {TARGETS[r['procs']]}x" if r["procs"] in TARGETS else "-",
                headroom,
                _ratio(join.get("all_joined_s"), base_join),
                "/".join(map(str, check.get("connections_per_process", {}).values())) or "-",
                f"{spread.get(1, spread.get('1', 0))}/{sum(spread.values())}" if spread else "-",
                where,
                limit,
            ]
        )
    return markdown(head, rows)


def tables(results: list[dict], info: dict) -> str:
    cores = info["machine"]["cores"] or 1
    one = next((r for r in results if r["procs"] == 1), {})
    top = best(one)
    lines = [
        summary_table(results, cores),
        steps_table(results),
        shares_table(results),
        "1p's highest rate: "
        + (f"{top['rate']:g} actions/s" if top else "none passed")
        + f" (each host {info['config']['quota']:g} of a core, CFS period"
        f" {info['config']['period_ms']:g} ms).",
    ]
    return "\n\n".join(lines)
