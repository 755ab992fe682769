"""A serving process takes every open file its hard limit allows (lunchsite/descriptors.py)."""

import json
import resource
import subprocess
import sys

from tests.support.processes import PROJECT_DIR, server_env

# What daphne does, started as systemd or a shell would: a soft limit of 1024.
PROBE = (
    "import json, resource;"
    "hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1];"
    "resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard));"
    "import lunchsite.asgi;"
    "print(json.dumps(resource.getrlimit(resource.RLIMIT_NOFILE)))"
)


def test_the_application_raises_its_open_files_to_the_hard_limit() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    env = server_env("sqlite:///:memory:", DJANGO_SETTINGS_MODULE="lunchsite.settings")
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    soft, reported_hard = json.loads(done.stdout.splitlines()[-1])
    assert reported_hard == hard
    assert soft == hard if hard != resource.RLIM_INFINITY else soft >= 1 << 20
    assert soft > 1024
