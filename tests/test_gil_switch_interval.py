"""The server hands the GIL to a database thread quickly (GIL_SWITCH_INTERVAL_MS).

Set where the ASGI application is built, so it applies to daphne and not to management
commands or the tests.
"""

from __future__ import annotations

import pytest

from .test_security import manage

_PRINT_INTERVAL = "import sys; print(sys.getswitchinterval())"


def _switch_interval(code: str, **env: str) -> float:
    result = manage("shell", "-c", code, DJANGO_DEBUG="1", **env)
    assert result.returncode == 0, result.stderr
    return float(result.stdout.splitlines()[-1])


def test_the_server_switches_every_twentieth_of_a_millisecond_by_default() -> None:
    interval = _switch_interval(f"import lunchsite.asgi; {_PRINT_INTERVAL}")
    assert interval == pytest.approx(0.00005)


def test_the_setting_chooses_the_interval() -> None:
    code = f"import lunchsite.asgi; {_PRINT_INTERVAL}"
    assert _switch_interval(code, GIL_SWITCH_INTERVAL_MS="5") == pytest.approx(0.005)


def test_other_processes_keep_pythons_interval() -> None:
    assert _switch_interval(_PRINT_INTERVAL) == 0.005


def test_a_zero_interval_is_refused_at_start_up() -> None:
    result = manage("check", DJANGO_DEBUG="1", GIL_SWITCH_INTERVAL_MS="0")
    assert result.returncode != 0
    assert "GIL_SWITCH_INTERVAL_MS must be a positive number" in result.stderr
