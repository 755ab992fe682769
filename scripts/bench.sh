#!/usr/bin/env bash
# The benchmark (docs/performance.md): 100 rooms x 10 clients speaking the public protocol
# against a bare-Channels baseline and the product (one and two daphne processes, Redis pub/sub,
# PostgreSQL; then one process on SQLite), at 30 to 250 actions/s. Prints one
# table of ratios against the baseline of the same run; writes bench/results/*.json. It starts
# its own redis-server, databases and daphne processes on free loopback ports and stops them.
#   make bench                      the full run: each rate three times, interleaved (25 to 40 minutes)
#   ./scripts/bench.sh --quick      a smaller, shorter run (about 3 minutes)
#   ./scripts/bench.sh --help       every option (rooms, clients, rates, step, scenarios)
#   ./scripts/bench.sh hosts [...]  the simulated hosts instead (bench/hosts: root, namespaces and
#                                   cgroup v1 CPU quotas; skipped with the reason elsewhere)
#   ./scripts/bench.sh office [...] office scale instead (bench/office.py): one process holding
#                                   1,000 and 10,000 connections against the baseline (about 15 minutes)
#   ./scripts/bench.sh faults [...] PostgreSQL and Redis failing under 5,000 clients (bench/faults.py;
#                                   its own PostgreSQL cluster, so it needs the server binaries: ~5 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_debian_packages redis-server redis-server
ensure_venv requirements-dev.txt

if [ "${1:-}" = hosts ]; then
  shift
  # Its own nginx, PostgreSQL cluster and redis-server; installed only where it can run.
  if "$VENV/bin/python" -m bench.hosts --check; then
    ensure_debian_packages nginx nginx /usr/lib/postgresql postgresql
    log "simulated hosts (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
    exec "$VENV/bin/python" -m bench.hosts "$@"
  fi
  exit 0
fi

# PostgreSQL, as in production: BENCH_DATABASE_URL, else the machine's on 5432, else our own.
PG_URL="${BENCH_DATABASE_URL:-$(postgres_url)}"

if [ "${1:-}" = office ]; then
  shift
  log "office scale (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
  exec "$VENV/bin/python" -m bench.office --database-url "$PG_URL" "$@"
fi
if [ "${1:-}" = faults ]; then
  shift
  ensure_debian_packages /usr/lib/postgresql postgresql
  log "faults under load (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
  exec "$VENV/bin/python" -m bench.faults "$@"
fi

log "benchmark (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
exec "$VENV/bin/python" -m bench.run --database-url "$PG_URL" "$@"
