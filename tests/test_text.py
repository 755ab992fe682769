"""Item and nickname normalisation: what counts as the same item, what counts as empty."""

import unicodedata

import pytest

from rooms import text
from rooms.errors import ClientError


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (" PIZZA ", "pizza"),
        ("kimchi   stew", "Kimchi Stew"),
        ("kimchi\tstew\n", "kimchi stew"),
        (unicodedata.normalize("NFD", "김치찌개"), unicodedata.normalize("NFC", "김치찌개")),
        ("pizza\u200b", "pizza"),
        ("Straße", "STRASSE"),
    ],
)
def test_same_item_key(a: str, b: str) -> None:
    """Case, spacing, Unicode form and zero-width characters do not make a new item."""
    assert text.item_key(text.item_name(a)) == text.item_key(text.item_name(b))


def test_item_name_is_trimmed_and_folded() -> None:
    """The stored name is NFC with single spaces and no edges."""
    assert text.item_name("  kimchi \n  stew  ") == "kimchi stew"
    assert text.item_name(unicodedata.normalize("NFD", "비빔밥")) == "비빔밥"


@pytest.mark.parametrize("raw", ["", "   ", "\u200b\u200b", "\x00\x01", "\u3164", "\u202e \u200d"])
def test_invisible_items_are_empty(raw: str) -> None:
    """Characters that render as nothing do not make an item non-empty."""
    with pytest.raises(ClientError) as caught:
        text.item_name(raw)
    assert caught.value.code == "empty_item"


def test_item_length_limit_counts_characters_after_folding() -> None:
    """Sixty characters fit (after trimming and folding), sixty-one do not."""
    assert text.item_name("  " + "가" * 60 + "  ") == "가" * 60
    assert text.item_name("a  " * 30) == " ".join("a" * 30)  # 59 characters once folded
    with pytest.raises(ClientError) as caught:
        text.item_name("x" * 61)
    assert caught.value.code == "item_too_long"


def test_emoji_sequences_survive() -> None:
    """Joiners inside emoji and right-to-left text are kept as typed."""
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert text.item_name(f"{family} pizza") == f"{family} pizza"
    assert text.item_name("שווארמה") == "שווארמה"


@pytest.mark.parametrize("raw", ["", " ", "\u200b", "x" * 25])
def test_invalid_names(raw: str) -> None:
    """A nickname is 1 to 24 visible characters."""
    with pytest.raises(ClientError) as caught:
        text.participant_name(raw)
    assert caught.value.code == "invalid_name"


def test_valid_name() -> None:
    """A nickname is cleaned like an item name."""
    assert text.participant_name("  민지  ") == "민지"
    assert text.participant_name("y" * 24) == "y" * 24
