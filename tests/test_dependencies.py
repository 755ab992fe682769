"""The dependency set: two locks with hashes that agree with pyproject.toml, an installable
manifest, and the audit's fallback that would have caught Django one security release behind."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from scripts import audit

PROJECT_DIR = Path(__file__).resolve().parent.parent
RUNTIME_LOCK = PROJECT_DIR / "requirements.txt"
DEV_LOCK = PROJECT_DIR / "requirements-dev.txt"
MANIFEST = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())


def lock_entries(path: Path) -> list[str]:
    """Each requirement of a lock file with its continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    return [line for line in text.splitlines() if line and not line.lstrip().startswith("#")]


@pytest.mark.parametrize("lock", [RUNTIME_LOCK, DEV_LOCK], ids=["runtime", "dev"])
def test_every_locked_package_is_pinned_with_hashes(lock: Path) -> None:
    """Every line of a lock pins one version and carries the sha256 of its files."""
    entries = lock_entries(lock)
    assert len(entries) > 30, entries  # the transitive set, not only the direct packages
    for entry in entries:
        assert re.match(r"^[\w.-]+(\[[\w,]+\])?==[\w.]+ ", entry), entry
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), entry


def test_the_dev_lock_runs_the_same_versions_as_the_site() -> None:
    """Tests run on the very versions production installs."""
    runtime, dev = audit.pins(RUNTIME_LOCK), audit.pins(DEV_LOCK)
    assert {name: dev.get(name) for name in runtime} == runtime


def test_the_locks_satisfy_the_manifest() -> None:
    """Each direct dependency in pyproject.toml is locked at a version its range allows."""
    runtime, dev = audit.pins(RUNTIME_LOCK), audit.pins(DEV_LOCK)
    declared = [(d, runtime) for d in MANIFEST["project"]["dependencies"]]
    declared += [(d, dev) for d in MANIFEST["project"]["optional-dependencies"]["dev"]]
    for text, pins in declared:
        requirement = Requirement(text)
        pinned = pins.get(canonicalize_name(requirement.name))
        assert pinned is not None, f"{requirement.name} is not in the lock"
        assert requirement.specifier.contains(pinned), (text, pinned)


def test_django_is_current_and_daphne_limits_frames() -> None:
    """Django at 5.2.20 or later (a security release); daphne >= 4.2.2 caps frame sizes."""
    runtime = audit.pins(RUNTIME_LOCK)
    assert Version(runtime["django"]) >= Version("5.2.20")
    assert Version(runtime["daphne"]) >= Version("4.2.2")


@pytest.mark.e2e
def test_pip_install_editable_works(tmp_path: Path) -> None:
    """`pip install -e .` in a fresh virtualenv installs the project's packages from here."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "install", "-q", "--no-deps", "-e", "."],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    probe = (
        "import importlib.metadata as m, importlib.util as u, json; "
        "print(json.dumps({'requires': m.requires('lunchsite'), 'origin': "
        "[u.find_spec(p).origin for p in ('lunchsite', 'rooms', 'rooms.management.commands')]}))"
    )
    found = subprocess.run(
        [str(venv / "bin/python"), "-c", probe], cwd=tmp_path, capture_output=True, text=True
    )
    assert found.returncode == 0, found.stderr
    result = __import__("json").loads(found.stdout)
    assert {Requirement(r).name.lower() for r in result["requires"] if "extra" not in r} >= {
        "django",
        "channels",
        "daphne",
        "django-axes",
    }
    assert all(origin.startswith(str(PROJECT_DIR)) for origin in result["origin"]), result


@pytest.mark.e2e
def test_the_audit_fallback_sees_a_pin_behind_its_series() -> None:
    """Against the real index: Django 5.2.19 is behind a newer 5.2 release (what issue 32 found)."""
    with httpx.Client(timeout=20, follow_redirects=True) as client:
        newer = audit.behind_in_series(client, "django", "5.2.19")
        assert newer is not None and Version(newer) >= Version("5.2.20")
        assert newer.startswith("5.2.")
        latest = max(
            v for v in audit.released_versions(client, "django") if v.release[:2] == (5, 2)
        )
        assert audit.behind_in_series(client, "django", str(latest)) is None
