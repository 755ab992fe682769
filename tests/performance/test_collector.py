"""The serving process's garbage collector (lunchsite/collector.py), in a process of its own."""

import json
import subprocess
import sys

from tests.support.processes import PROJECT_DIR, server_env

# What daphne does: import the ASGI application, then serve.
PROBE = (
    "import gc, json, lunchsite.asgi;"
    "print(json.dumps({'thresholds': gc.get_threshold(), 'frozen': gc.get_freeze_count()}))"
)


def collector_of_a_serving_process(**settings: object) -> dict:
    env = server_env("sqlite:///:memory:", DJANGO_SETTINGS_MODULE="lunchsite.settings", **settings)
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout.splitlines()[-1])


def test_the_application_freezes_what_loading_made_and_collects_young_objects_less_often() -> None:
    collector = collector_of_a_serving_process()
    assert collector["thresholds"] == [20_000, 2, 500]
    # Django's, Channels' and the project's modules, classes and functions.
    assert collector["frozen"] > 10_000


def test_a_young_threshold_of_zero_keeps_pythons_collector() -> None:
    collector = collector_of_a_serving_process(GC_YOUNG_THRESHOLD=0)
    assert collector == {"thresholds": [700, 10, 10], "frozen": 0}
