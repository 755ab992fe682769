"""Find a PostgreSQL for the tests, or start one of our own.

python scripts/pg_local.py probe URL   exit 0 if URL answers
python scripts/pg_local.py start       start (or reuse) a private cluster; print its URL
"""

import glob
import os
import shutil
import subprocess
import sys
import time

import psycopg

DATA_DIR = "/tmp/lunchsite-pg/data"
SOCKET_DIR = "/tmp/lunchsite-pg"
PORT = 55432
URL = f"postgres://postgres@127.0.0.1:{PORT}/postgres"


def log(message: str) -> None:
    print(f"==> {message}", file=sys.stderr)


def answers(url: str) -> bool:
    try:
        with psycopg.connect(url.replace("postgres://", "postgresql://", 1), connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def as_postgres_user(args: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


def start() -> str:
    if answers(URL):
        return URL
    if pg_bin("initdb") is None:
        if os.geteuid() != 0:
            sys.exit("PostgreSQL is not installed and not reachable; install postgresql")
        log("installing Debian's postgresql")
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            stdout=subprocess.DEVNULL,
        )
    os.makedirs(SOCKET_DIR, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(SOCKET_DIR, "postgres", "postgres")
    if not os.path.exists(os.path.join(DATA_DIR, "PG_VERSION")):
        log(f"initialising a private PostgreSQL cluster in {DATA_DIR}")
        subprocess.run(
            as_postgres_user([pg_bin("initdb"), "-D", DATA_DIR, "-U", "postgres", "-A", "trust"]),
            check=True,
            stdout=subprocess.DEVNULL,
        )
    log(f"starting a private PostgreSQL on 127.0.0.1:{PORT}")
    options = f"-p {PORT} -k {SOCKET_DIR} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        as_postgres_user(
            [
                pg_bin("pg_ctl"),
                "-D",
                DATA_DIR,
                "-o",
                options,
                "-l",
                f"{SOCKET_DIR}/log",
                "-w",
                "start",
            ]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    for _ in range(100):
        if answers(URL):
            return URL
        time.sleep(0.1)
    sys.exit("the private PostgreSQL did not answer")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "probe":
        sys.exit(0 if answers(sys.argv[2]) else 1)
    if len(sys.argv) == 2 and sys.argv[1] == "start":
        print(start())
        sys.exit(0)
    sys.exit(__doc__)
