#!/usr/bin/env bash
# Refresh the translation catalogues from the sources, then compile them (docs/i18n.md).
# Catalogues change only when a string does: no source locations (--no-location), no strings
# the sources no longer use (--no-obsolete), and no new POT-Creation-Date when nothing else
# changed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_debian_packages msgfmt gettext
ensure_venv requirements-dev.txt
export DJANGO_DEBUG="${DJANGO_DEBUG:-1}"

before="$(mktemp -d)"
trap 'rm -rf "$before"' EXIT
for po in locale/*/LC_MESSAGES/*.po; do
  mkdir -p "$before/$(dirname "$po")" && cp "$po" "$before/$po"
done

ignore=(--ignore=.venv --ignore=tests --ignore=bench --ignore=staticfiles
        --ignore=test-artifacts --ignore=node_modules)
for domain in django djangojs; do
  "$VENV/bin/python" manage.py makemessages -d "$domain" -l ko -l en \
    --no-location --no-obsolete "${ignore[@]}" -v0
done

for po in locale/*/LC_MESSAGES/*.po; do
  if cmp -s <(grep -v '^"POT-Creation-Date:' "$before/$po") <(grep -v '^"POT-Creation-Date:' "$po"); then
    cp "$before/$po" "$po"
  fi
done
"$VENV/bin/python" manage.py compilemessages --ignore=.venv -v0

# What is left to do: every Korean entry translated, none fuzzy, placeholders intact.
for po in locale/ko/LC_MESSAGES/*.po; do
  printf '%s: ' "$po" >&2
  msgfmt --check-format --check-domain --statistics -o /dev/null "$po"
done
