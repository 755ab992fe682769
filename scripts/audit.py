"""Audit the locked packages (make audit; CI runs it): pip-audit where a vulnerability service
answers, else a check of every pin against the newest release of its series on the index.

pip-audit asks PyPI's JSON API about each pinned version (`/pypi/<name>/<version>/json`) or
OSV's (`api.osv.dev`). Where neither answers (this machine reaches PyPI's package index, not
those services), pip-audit's PyPI service would skip every package as "not found on PyPI" and
still print "No known vulnerabilities found"; this script never lets that pass as an audit.
Instead it reads the index's release lists and fails when a runtime package is behind a newer
release of its own major.minor series: that is how Django, and most of the others, publish
their security fixes (Django 5.2.19 behind 5.2.20 is what issue 32 found). It is a weaker
check than an audit, and it says so. docs/dependencies.md.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

PROJECT_DIR = Path(__file__).resolve().parent.parent
RUNTIME_LOCK = PROJECT_DIR / "requirements.txt"
DEV_LOCK = PROJECT_DIR / "requirements-dev.txt"
PROBE_SECONDS = 5.0
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^ ;\\]+)", re.MULTILINE)
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


def pins(lock: Path) -> dict[str, str]:
    """name -> version of every package a lock file pins (all platforms' lines)."""
    found: dict[str, str] = {}
    for name, version in PIN.findall(lock.read_text()):
        found.setdefault(canonicalize_name(name), version)  # the first of a marker split
    return found


def service_answering(client: httpx.Client, name: str, version: str) -> str | None:
    """The pip-audit vulnerability service that answers from here, if any."""
    try:
        answer = client.get(f"https://pypi.org/pypi/{name}/{version}/json")
        if answer.status_code == 200 and "vulnerabilities" in answer.json():
            return "pypi"
    except (httpx.HTTPError, ValueError):
        pass
    try:
        query = {"package": {"name": name, "ecosystem": "PyPI"}, "version": version}
        if client.post("https://api.osv.dev/v1/query", json=query).status_code == 200:
            return "osv"
    except httpx.HTTPError:
        pass
    return None


def pip_audit(service: str) -> int:
    """pip-audit over the dev lock (it holds every runtime pin too); --strict: a package the
    service does not know is a failure, not a skip."""
    command = [
        str(Path(sys.executable).parent / "pip-audit"),
        *("-r", str(DEV_LOCK), "--require-hashes", "--disable-pip", "--strict"),
        *("--vulnerability-service", service, "--progress-spinner", "off"),
    ]
    print(f"audit: pip-audit against the {service} vulnerability service", flush=True)
    return subprocess.run(command, check=False).returncode


def index_url() -> str:
    return os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")


def released_versions(client: httpx.Client, name: str) -> set[Version]:
    """The final releases of a project on the index that have a file not yanked."""
    answer = client.get(f"{index_url()}/{name}/", headers={"Accept": SIMPLE_JSON})
    answer.raise_for_status()
    found: set[Version] = set()
    for file in answer.json().get("files", []):
        filename = file["filename"]
        if file.get("yanked"):
            continue
        try:
            if filename.endswith(".whl"):
                version = parse_wheel_filename(filename)[1]
            elif filename.endswith((".tar.gz", ".zip")):
                version = parse_sdist_filename(filename)[1]
            else:
                continue
        except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
            continue
        if not (version.is_prerelease or version.is_devrelease):
            found.add(version)
    return found


def behind_in_series(client: httpx.Client, name: str, pinned: str) -> str | None:
    """The newest release in the pin's major.minor series, when it is newer than the pin."""
    current = Version(pinned)
    series = [v for v in released_versions(client, name) if v.release[:2] == current.release[:2]]
    newest = max(series, default=current)
    return str(newest) if newest > current else None


def series_check(client: httpx.Client) -> int:
    runtime = pins(RUNTIME_LOCK)
    every = pins(DEV_LOCK)
    with ThreadPoolExecutor(max_workers=8) as pool:
        newer = dict(
            zip(
                every, pool.map(lambda n: behind_in_series(client, n, every[n]), every), strict=True
            )
        )
    failed = False
    for name, version in sorted(every.items()):
        if newer[name] is None:
            continue
        part = "runtime" if name in runtime else "dev tool"
        failed |= name in runtime
        print(f"audit: {name} {version} is behind {newer[name]} of its series ({part})")
    print(
        f"audit: {len(every)} pins checked against the index: "
        + (
            "runtime packages are behind a newer release of their series: run make lock-upgrade"
            if failed
            else "none of the runtime packages is behind its series"
        )
    )
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--service",
        choices=["auto", "pypi", "osv", "none"],
        default="auto",
        help="auto: the first service that answers; none: only the series check",
    )
    args = parser.parse_args()
    name, version = "django", pins(RUNTIME_LOCK)["django"]
    with httpx.Client(timeout=PROBE_SECONDS, follow_redirects=True) as client:
        service = (
            service_answering(client, name, version)
            if args.service == "auto"
            else (None if args.service == "none" else args.service)
        )
        if service is not None:
            return pip_audit(service)
        print(
            "audit: no vulnerability service answers from here (PyPI's per-version JSON API "
            "and api.osv.dev), so pip-audit cannot audit. NOT an audit: checking each pin "
            "against the newest release of its series on the index instead.",
            flush=True,
        )
        return series_check(client)


if __name__ == "__main__":
    sys.exit(main())
