"""What the room ate and who owes whom, as one message for the group's chat.

Pure functions of the room's state: the tally of the orders, shown on the page, and the
message the page copies for KakaoTalk (`state.room.summary`) and `announce` posts to a
group's webhook. Built once, here, in the room's language (Django's catalogues).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.utils import translation
from django.utils.translation import gettext

from . import text

if TYPE_CHECKING:
    from .protocol import BillState, OrderLine, OrderState, StateEvent


_TIMES = "\N{MULTIPLICATION SIGN}"  # the count after a dish: 짬뽕 x2, with the sign


def order_tally(orders: Sequence[OrderState]) -> list[OrderLine]:
    """Orders that compare equal (text.item_key, as duplicate items do) on one line, spelled
    as the first of them was; most ordered first, then in the order first given."""
    lines: dict[str, OrderLine] = {}
    for order in orders:
        key = text.item_key(order["text"])
        line = lines.setdefault(key, {"text": order["text"], "count": 0, "ids": []})
        line["count"] += 1
        line["ids"].append(order["id"])
    # sorted is stable: equal counts keep the order first given.
    return sorted(lines.values(), key=lambda line: -line["count"])


def amount_format(amount: int, currency: str) -> str:
    """An amount as people write it: `13,500원` in Korean, `13,500 KRW` otherwise."""
    if currency == "KRW" and translation.get_language() == "ko":
        return f"{amount:,}원"
    return f"{amount:,} {currency}"


def room_summary(state: StateEvent, *, language: str) -> str:
    """The message for the group's chat: the place, the orders, the bill and who sends what
    to whom. The room must have decided."""
    room = state["room"]
    decision = room["decision"]
    assert decision is not None
    with translation.override(language):
        lines = [gettext("Lunch: %(place)s") % {"place": decision["item"]}]
        if room["order_tally"]:
            lines.append(gettext("Orders:"))
            lines += [f"- {line['text']} {_TIMES}{line['count']}" for line in room["order_tally"]]
        if room["bill"] is not None:
            lines += _bill_lines(room["bill"])
    return "\n".join(lines)


def _bill_lines(bill: BillState) -> list[str]:
    payer = bill["paid_by"]["name"]
    total = amount_format(bill["total"], bill["currency"])
    lines = [gettext("Total %(total)s, paid by %(payer)s") % {"total": total, "payer": payer}]
    owed = [share for share in bill["shares"] if share["id"] != bill["paid_by"]["id"]]
    if owed:
        lines.append(gettext("Please send %(payer)s:") % {"payer": payer})
    for share in owed:
        amount = amount_format(share["amount"], bill["currency"])
        line = f"- {share['name']} {amount}"
        if share["paid"]:
            line += " " + gettext("(sent)")
        lines.append(line)
    return lines
