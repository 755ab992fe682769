# Shared by scripts/run.sh and scripts/test.sh: install what is missing, idempotently.

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

log() { printf '==> %s\n' "$*" >&2; }

# apt-get install the Debian packages that are missing (root only). Arguments come in
# pairs: what shows the package is there (a command, or an absolute file path), its name.
ensure_debian_packages() {
  local missing=()
  while [ $# -gt 0 ]; do
    local check="$1" pkg="$2"; shift 2
    case "$check" in
      /*) [ -e "$check" ] || missing+=("$pkg") ;;
      *) command -v "$check" >/dev/null 2>&1 || missing+=("$pkg") ;;
    esac
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    log "missing Debian packages: ${missing[*]} (install them, or run as root to let this script)"
    return 1
  fi
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Create the virtualenv and install a lock file (requirements.txt or requirements-dev.txt: every
# package pinned with its hashes, made by `make lock`), skipping the work when unchanged.
# --require-hashes: a file whose hash is not in the lock, or a package missing from it, is
# refused rather than installed.
ensure_venv() {
  local requirements="$1" stamp
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  stamp="$VENV/.installed-$(cat requirements*.txt | sha256sum | cut -c1-16)-$(basename "$requirements")"
  if [ ! -f "$stamp" ]; then
    log "installing Python packages from $requirements"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --require-hashes \
      -r "$requirements"
    touch "$stamp"
  fi
}

# A PostgreSQL URL: the machine's server on 5432 if it answers, else a private cluster
# that scripts/pg_local.py starts (installing Debian's postgresql when root).
postgres_url() {
  local machine=postgres://postgres@127.0.0.1:5432/test
  if "$VENV/bin/python" scripts/pg_local.py probe "$machine"; then
    echo "$machine"
  else
    "$VENV/bin/python" scripts/pg_local.py start
  fi
}
