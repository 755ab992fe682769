#!/usr/bin/env bash
# The fast tier (docs/testing.md): the tests that run inside pytest's own process on SQLite, and
# the page's modules in Node.js. Left out, by marker, is everything that starts a browser, a
# daphne or redis-server process, nginx, or a second database: `make test` runs those. Extra
# arguments go to pytest (e.g. -k vote).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

# Node.js: tests/js/ and tests/test_korean.py run the page's modules in it.
ensure_debian_packages node nodejs
ensure_venv requirements-dev.txt
# The markers of the slow tier (registered in pyproject.toml; tests/conftest.py adds e2e and
# redis to a test that asks for a daphne process or a redis-server without saying so).
SLOW="e2e or browser or engines or redis or fault or scale or nginx or hosts"

log "the page's modules in Node.js"
node --test tests/js/
log "fast tests on SQLite"
exec env -u DATABASE_URL -u REDIS_URL "$VENV/bin/pytest" -m "not ($SLOW)" "$@"
