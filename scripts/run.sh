#!/usr/bin/env bash
# Install and run the site for development: http://127.0.0.1:8000/ (HTTP and WebSockets).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_venv requirements.txt
export DJANGO_DEBUG="${DJANGO_DEBUG:-1}"
"$VENV/bin/python" manage.py migrate --noinput -v0
log "lunchsite on http://${HOST:-127.0.0.1}:${PORT:-8000}/ (Ctrl-C stops it)"
exec "$VENV/bin/python" manage.py runserver "${HOST:-127.0.0.1}:${PORT:-8000}"
