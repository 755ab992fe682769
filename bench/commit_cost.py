"""What a round trip and a durable COMMIT cost on this machine's PostgreSQL.

python -m bench.commit_cost [--database-url URL] [--n 300]

Prints the median and p90, in ms, of: `SELECT 1` (one round trip), and a one-row UPDATE
with its COMMIT with `synchronous_commit` on (the WAL flushed to disk before COMMIT
returns, as lunchsite runs) and off (not flushed: a crash may lose the last commits).
The difference between the two COMMITs is the durability every room change pays and the
bare-Channels baseline, which keeps no data, does not (docs/performance.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import psycopg


def timed(n: int, run) -> tuple[float, float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.9 * (n - 1))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    default = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    p.add_argument("--database-url", default=default)
    p.add_argument("--n", type=int, default=300)
    args = p.parse_args()
    table = f"commit_cost_{os.getpid()}"
    with psycopg.connect(args.database_url) as conn:
        # A real table: a temporary one writes no WAL, so its COMMIT flushes nothing.
        conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, v int)")
        conn.execute(f"INSERT INTO {table} VALUES (1, 0)")
        conn.commit()

        def update_and_commit() -> None:
            conn.execute(f"UPDATE {table} SET v = v + 1 WHERE id = 1")
            conn.commit()

        rows = [("SELECT 1 (a round trip)", timed(args.n, lambda: conn.execute("SELECT 1")))]
        conn.commit()
        for mode in ("on", "off"):
            conn.execute(f"SET synchronous_commit = {mode}")
            conn.commit()
            rows.append(
                (f"UPDATE + COMMIT, synchronous_commit {mode}", timed(args.n, update_and_commit))
            )
        conn.execute(f"DROP TABLE {table}")
        conn.commit()
    print(f"{'':45} {'median ms':>10} {'p90 ms':>8}")
    for name, (median, p90) in rows:
        print(f"{name:45} {median:10.3f} {p90:8.3f}")
    (round_trip, _), (durable, _), (not_durable, _) = (times for _, times in rows)
    print(
        f"durable COMMIT: {durable / not_durable:.1f}x a non-durable one, "
        f"{durable / round_trip:.1f}x a round trip (medians, this run)"
    )


if __name__ == "__main__":
    main()
