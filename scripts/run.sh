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
"$VENV/bin/python" manage.py migrate --noinput -v0
"$VENV/bin/python" scripts/lan.py banner "$PORT"
# daphne serves pages, static files (WhiteNoise) and WebSockets in one process.
exec "$VENV/bin/daphne" -b "$HOST" -p "$PORT" lunchsite.asgi:application
