"""Friendly random nicknames for people who have not picked one yet, in the page's language."""

import random

from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

# Short words so "adjective + food" stays well under the name limit in both languages.
_ADJECTIVES = [
    pgettext_lazy("nickname adjective", "Hungry"),
    pgettext_lazy("nickname adjective", "Sleepy"),
    pgettext_lazy("nickname adjective", "Happy"),
    pgettext_lazy("nickname adjective", "Brave"),
    pgettext_lazy("nickname adjective", "Curious"),
    pgettext_lazy("nickname adjective", "Speedy"),
    pgettext_lazy("nickname adjective", "Cheerful"),
    pgettext_lazy("nickname adjective", "Calm"),
]
_FOODS = [
    _("Dumpling"),
    _("Noodle"),
    _("Kimbap"),
    _("Tofu"),
    _("Mandu"),
    _("Bibimbap"),
    _("Pancake"),
    _("Tteok"),
]


def nickname_random(rng: random.Random | None = None) -> str:
    """A nickname like "Hungry Dumpling" (or "배고픈 만두") for the active language."""
    rng = rng or random.Random()
    return f"{rng.choice(_ADJECTIVES)} {rng.choice(_FOODS)}"
