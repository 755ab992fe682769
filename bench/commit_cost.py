"""What a round trip and a durable COMMIT cost on this machine's PostgreSQL, back to back and
at the pace of a room's actions.

python -m bench.commit_cost [--database-url URL] [--n 300] [--pace 60]

Prints the median and p90, in ms, of: `SELECT 1` (one round trip), and a one-row UPDATE
with its COMMIT with `synchronous_commit` on (the WAL flushed to disk before COMMIT
returns, as lunchsite runs) and off (not flushed: a crash may lose the last commits).
The difference between the two COMMITs is the durability every room change pays and the
bare-Channels baseline, which keeps no data, does not (docs/performance.md).

Each is timed twice: back to back, and paced, one every 1/pace s (the bench's actions/s).
Between paced runs both this process and PostgreSQL's sleep, and each run pays for waking
them: that is what a change pays at 60 actions/s, where the machine is mostly idle.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import psycopg


def timed(n: int, run, *, pause: float = 0.0) -> tuple[float, float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
        time.sleep(pause)
    times.sort()
    return statistics.median(times), times[int(0.9 * (n - 1))]


ROUND_TRIP = "SELECT 1 (a round trip)"
DURABLE = "UPDATE + COMMIT, synchronous_commit on"
NOT_DURABLE = "UPDATE + COMMIT, synchronous_commit off"
BACK_TO_BACK = "back to back"


def measure(
    database_url: str, *, n: int, pace: float
) -> dict[tuple[str, str], tuple[float, float]]:
    """(operation, pace) -> (median, p90) in ms, for each operation back to back and paced."""
    table = f"commit_cost_{os.getpid()}"
    paces = {BACK_TO_BACK: 0.0, paced_name(pace): 1 / pace}
    rows = {}
    with psycopg.connect(database_url) as conn:
        # A real table: a temporary one writes no WAL, so its COMMIT flushes nothing.
        conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, v int)")
        conn.execute(f"INSERT INTO {table} VALUES (1, 0)")
        conn.commit()

        def update_and_commit() -> None:
            conn.execute(f"UPDATE {table} SET v = v + 1 WHERE id = 1")
            conn.commit()

        try:
            for name, pause in paces.items():
                rows[ROUND_TRIP, name] = timed(n, lambda: conn.execute("SELECT 1"), pause=pause)
                conn.commit()
                for mode, operation in (("on", DURABLE), ("off", NOT_DURABLE)):
                    conn.execute(f"SET synchronous_commit = {mode}")
                    conn.commit()
                    rows[operation, name] = timed(n, update_and_commit, pause=pause)
        finally:
            conn.rollback()
            conn.execute(f"DROP TABLE {table}")
            conn.commit()
    return rows


def paced_name(pace: float) -> str:
    return f"paced {pace:g}/s"


def paced_summary(rows: dict[tuple[str, str], tuple[float, float]], pace: float) -> str:
    """How much longer each operation took paced than back to back (medians)."""
    median = {key: times[0] for key, times in rows.items()}
    paced = paced_name(pace)
    return ", ".join(
        f"{operation} {median[operation, paced] / median[operation, BACK_TO_BACK]:.1f}x"
        for operation in (ROUND_TRIP, DURABLE, NOT_DURABLE)
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    default = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    p.add_argument("--database-url", default=default)
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--pace", type=float, default=60, help="paced runs per second")
    args = p.parse_args()
    rows = measure(args.database_url, n=args.n, pace=args.pace)
    print(f"{'':40} {'':14} {'median ms':>10} {'p90 ms':>8}")
    for (operation, pace), (median, p90) in rows.items():
        print(f"{operation:40} {pace:14} {median:10.3f} {p90:8.3f}")
    durable, not_durable, round_trip = (
        rows[operation, BACK_TO_BACK][0] for operation in (DURABLE, NOT_DURABLE, ROUND_TRIP)
    )
    print(
        f"{BACK_TO_BACK}: a durable COMMIT is {durable / not_durable:.1f}x a non-durable one,"
        f" {durable / round_trip:.1f}x a round trip"
    )
    print(
        f"{paced_name(args.pace)}, against back to back: {paced_summary(rows, args.pace)}"
        " (medians, this run)"
    )


if __name__ == "__main__":
    main()
