#!/usr/bin/env bash
# The lock files, made with uv from pyproject.toml: requirements.txt (what the site runs on) and
# requirements-dev.txt (that, plus tests and tools, the same versions), every package pinned with
# the hashes of its files, for Python 3.11 on any platform. docs/dependencies.md.
#   ./scripts/lock.sh            (make lock)         add or change a dependency: keeps every pin
#                                                    that still fits pyproject.toml
#   ./scripts/lock.sh --upgrade  (make lock-upgrade) the weekly update: the newest versions allowed
#   ./scripts/lock.sh --check    (make lock-check)   fails when the locks do not match pyproject.toml
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_venv requirements-dev.txt
UV="$PWD/$VENV/bin/uv"

compile() {  # in the current directory: pyproject.toml -> requirements.txt -> requirements-dev.txt
  local common=(--quiet --python-version 3.11 --universal --generate-hashes
    --custom-compile-command "make lock" "$@")
  "$UV" pip compile pyproject.toml "${common[@]}" -o requirements.txt
  "$UV" pip compile pyproject.toml --extra dev -c requirements.txt "${common[@]}" \
    -o requirements-dev.txt
}

case "${1:-}" in
  "") compile ;;
  --upgrade) compile --upgrade ;;
  --check)
    # Lock again in a scratch copy (the current pins are kept where they fit) and compare.
    scratch="$(mktemp -d)"
    trap 'rm -rf "$scratch"' EXIT
    cp pyproject.toml requirements.txt requirements-dev.txt "$scratch/"
    (cd "$scratch" && compile)
    if ! diff -u requirements.txt "$scratch/requirements.txt" ||
      ! diff -u requirements-dev.txt "$scratch/requirements-dev.txt"; then
      log "the locks do not match pyproject.toml: run make lock and commit both files"
      exit 1
    fi
    log "the locks match pyproject.toml"
    ;;
  *) log "usage: $0 [--upgrade|--check]"; exit 2 ;;
esac
