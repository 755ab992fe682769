#!/usr/bin/env bash
# The development server: DEBUG on, autoreload, loopback only (http://127.0.0.1:8000/).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_venv requirements-dev.txt
export DJANGO_DEBUG="${DJANGO_DEBUG:-1}"
"$VENV/bin/python" manage.py migrate --noinput -v0
log "lunchsite (development) on http://127.0.0.1:${PORT:-8000}/ (Ctrl-C stops it)"
exec "$VENV/bin/python" manage.py runserver "127.0.0.1:${PORT:-8000}"
