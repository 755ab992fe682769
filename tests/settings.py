"""The project's own settings, with a throwaway secret key so tests run with DEBUG off."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key-" + "x" * 40)

from lunchsite.settings import *  # noqa: F403
