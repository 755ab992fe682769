"""The project's own settings, with a throwaway secret key so tests run with DEBUG off."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key-" + "x" * 40)

# Connections are opened per use in tests: a pooled or persistent one would outlive the
# test that opened it.
os.environ.setdefault("DATABASE_POOL", "0")
os.environ.setdefault("DATABASE_CONN_MAX_AGE", "0")

from lunchsite.settings import *  # noqa: F403

# A name of its own per run, so two test runs on one PostgreSQL server never collide.
DATABASES["default"]["TEST"] = {"NAME": f"test_lunchsite_{os.getpid()}"}  # noqa: F405
