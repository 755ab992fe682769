#!/usr/bin/env bash
# The benchmark (docs/performance.md): R rooms x C clients speaking the public protocol against
# the product and a bare Channels baseline, on the in-memory layer and on Redis, one and two
# daphne processes. Prints one table; writes bench/results/*.json. It starts its own
# redis-server, database and daphne processes on free loopback ports and stops them.
#   make bench                      the full run (about 20 minutes)
#   ./scripts/bench.sh --quick      a smaller, shorter run (under 2 minutes)
#   ./scripts/bench.sh --help       every option (rooms, clients, rate, duration, scenarios)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_debian_packages redis-server redis-server
ensure_venv requirements-dev.txt

# PostgreSQL, as in production: BENCH_DATABASE_URL, else the machine's on 5432, else our own.
PG_URL="${BENCH_DATABASE_URL:-$(postgres_url)}"

log "benchmark (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
exec "$VENV/bin/python" -m bench.run --database-url "$PG_URL" "$@"
