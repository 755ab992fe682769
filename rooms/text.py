"""How user text becomes an item name, a comparison key or a nickname."""

import unicodedata

from django.conf import settings

from .errors import ClientError

# Control characters, surrogates and private-use code points never belong in a name;
# format characters (zero-width space, joiners, direction marks) render as nothing.
_REMOVED_CATEGORIES = {"Cc", "Cs", "Co", "Cn"}
_INVISIBLE_CATEGORIES = {"Cf", "Zs", "Zl", "Zp"}
# Letters that draw nothing (Hangul fillers, the blank braille pattern): a favourite way
# to post an "empty" name.
_BLANK_LETTERS = {"\u115f", "\u1160", "\u3164", "\uffa0", "\u2800"}


def clean(text: str) -> str:
    """NFC, unprintable characters dropped, whitespace folded, invisible edges trimmed."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(" " if unicodedata.category(ch) in _REMOVED_CATEGORIES else ch for ch in text)
    text = " ".join(text.split())
    start, end = 0, len(text)
    while start < end and _is_invisible(text[start]):
        start += 1
    while end > start and _is_invisible(text[end - 1]):
        end -= 1
    return text[start:end]


def _is_invisible(ch: str) -> bool:
    return ch.isspace() or ch in _BLANK_LETTERS or unicodedata.category(ch) in _INVISIBLE_CATEGORIES


def has_visible_text(text: str) -> bool:
    return any(not _is_invisible(ch) for ch in text)


def item_key(name: str) -> str:
    """The form two items are compared in: case-folded, zero-width characters ignored."""
    visible = "".join(ch for ch in clean(name) if unicodedata.category(ch) != "Cf")
    return unicodedata.normalize("NFC", visible.casefold())


def item_name(raw: str) -> str:
    """A valid item name from user text, or ClientError(empty_item / item_too_long)."""
    name = clean(raw)
    if not has_visible_text(name):
        raise ClientError("empty_item")
    if len(name) > settings.ROOM_ITEM_MAX_LENGTH:
        raise ClientError("item_too_long")
    return name


def participant_name(raw: str) -> str:
    """A valid nickname from user text, or ClientError(invalid_name)."""
    name = clean(raw)
    if not has_visible_text(name) or len(name) > settings.ROOM_NAME_MAX_LENGTH:
        raise ClientError("invalid_name")
    return name


def order_text(raw: str) -> str:
    """A valid order from user text (cleaned as an item name is), or ClientError(invalid_order).

    Two orders are the same dish when their `item_key`s are equal (the tally folds them)."""
    order = clean(raw)
    if not has_visible_text(order) or len(order) > settings.ROOM_ORDER_MAX_LENGTH:
        raise ClientError("invalid_order")
    return order


# --- Tags: what is in a dish, and what someone can't eat ------------------------------

TAG_MAX_LENGTH = 12
TAGS_PER_ITEM = 3
AVOIDS_PER_PARTICIPANT = 5


def tag_names(raw: object, *, at_most: int) -> list[str]:
    """Valid tags from a client's list of strings, cleaned as items are and without the
    repeats (compared as items are, the first spelling kept); else ClientError(invalid_tag):
    more than `at_most`, or one that is empty or longer than TAG_MAX_LENGTH once cleaned."""
    if not isinstance(raw, list | tuple) or len(raw) > at_most:
        raise ClientError("invalid_tag")
    names: dict[str, str] = {}
    for tag in raw:
        if not isinstance(tag, str):
            raise ClientError("invalid_tag")
        name = clean(tag)
        if not has_visible_text(name) or len(name) > TAG_MAX_LENGTH:
            raise ClientError("invalid_tag")
        names.setdefault(item_key(name), name)
    return list(names.values())
