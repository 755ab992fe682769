#!/usr/bin/env bash
# Serve the group on the office network: every interface, DEBUG off, a secret key made once
# (kept in .secret_key, git-ignored), this machine's names and addresses allowed. Prints the
# addresses friends can open and a QR code. HOST and PORT override 0.0.0.0 and 8000;
# SECRET_KEY_FILE where the key is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_venv requirements.txt
HOST="${HOST:-0.0.0.0}"
PORT="${PORT:-8000}"
export DJANGO_DEBUG=0
export DJANGO_SECRET_KEY="${DJANGO_SECRET_KEY:-$("$VENV/bin/python" scripts/lan.py secret-key "${SECRET_KEY_FILE:-.secret_key}")}"
export DJANGO_ALLOWED_HOSTS="${DJANGO_ALLOWED_HOSTS:-$("$VENV/bin/python" scripts/lan.py hosts)}"
# The links the lunch groups' scheduler posts: PUBLIC_URL if set, else the office address.
export GROUP_LINK_BASE_URL="${GROUP_LINK_BASE_URL:-$("$VENV/bin/python" scripts/lan.py url "$PORT")}"
"$VENV/bin/python" manage.py migrate --noinput -v0
"$VENV/bin/python" scripts/lan.py banner "$PORT"
# The scheduler opens each lunch group's room at its time (docs/operations.md, "The scheduler");
# daphne serves pages, static files (WhiteNoise) and WebSockets in one process. Both run until
# the server stops: Ctrl-C or SIGTERM here stops both, and daphne ending stops the scheduler.
"$VENV/bin/python" manage.py run_scheduler &
scheduler=$!
"$VENV/bin/daphne" -b "$HOST" -p "$PORT" lunchsite.asgi:application &
daphne=$!
trap 'kill -TERM "$daphne" "$scheduler" 2>/dev/null || true' TERM INT HUP
set +e
wait "$daphne"
status=$?
while kill -0 "$daphne" 2>/dev/null; do  # a trapped signal interrupted the wait: wait again
  wait "$daphne"
  status=$?
done
kill -TERM "$scheduler" 2>/dev/null
wait "$scheduler"
exit "$status"
