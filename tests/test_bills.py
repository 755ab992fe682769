"""After the pick: orders, the bill's split, paid marks and the summary (issue 30).

The split and the tally are pure functions, tested for any input with hypothesis; the
services through commands.command_run as the consumer calls them, on SQLite and (in the
PostgreSQL pass) PostgreSQL.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import assume, example, given
from hypothesis import strategies as st

from rooms import commands, selectors, services, text
from rooms.models import Order, Participant, Room, Share
from rooms.protocol import parse_frame
from rooms.services import bills
from rooms.summary import amount_format, order_tally, room_summary
from tests.test_services import error_code, join


def run(room: Room, who: Participant, action: str, argument: str | None = None) -> dict:
    """Send the shorthand `action:argument` (or `action`) as the participant."""
    frame = action if argument is None else f"{action}:{argument}"
    command = parse_frame(frame)
    return commands.command_run(room_id=room.pk, participant_id=who.pk, command=command)


# --- The split, for any total, unit and number of people -------------------------------


@given(
    total=st.integers(min_value=1, max_value=bills.BILL_MAX_TOTAL),
    unit=st.sampled_from([1, 10, 100, 500, 1000]) | st.integers(min_value=1, max_value=50_000),
    sharers=st.integers(min_value=1, max_value=30),
)
@example(total=1400, unit=100, sharers=10)  # the nearest rule alone leaves the payer 500
@example(total=1500, unit=100, sharers=10)  # ... or -300 (150 rounds up to 200)
@example(total=100, unit=1000, sharers=30)  # a unit above the total
def test_split_adds_up_in_units_and_is_fair(total: int, unit: int, sharers: int) -> None:
    others, payer = bills.bill_split(total, sharers, unit)
    shares = [*others, payer]
    assert len(others) == sharers - 1
    assert sum(shares) == total
    assert all(amount % unit == 0 for amount in others)
    assert all(amount >= 0 for amount in shares)
    assert max(shares) - min(shares) <= unit


@given(
    total=st.integers(min_value=1, max_value=bills.BILL_MAX_TOTAL),
    unit=st.sampled_from([1, 10, 100, 1000]),
    sharers=st.integers(min_value=2, max_value=30),
)
def test_split_is_the_nearest_multiple_whenever_that_is_fair(
    total: int, unit: int, sharers: int
) -> None:
    """Each other share is total / sharers rounded to the nearest unit (halves up), unless
    that leaves the payer more than a unit away from the others."""
    nearest = int(total / sharers / unit + 0.5) * unit
    assume(abs(total - nearest * sharers) <= unit)
    assume(abs(total / sharers / unit - round(total / sharers / unit)) != 0.5)  # no float tie
    others, payer = bills.bill_split(total, sharers, unit)
    assert others == [nearest] * (sharers - 1)
    assert payer == total - nearest * (sharers - 1)


def test_split_examples() -> None:
    assert bills.bill_split(54000, 4, 100) == ([13500] * 3, 13500)
    assert bills.bill_split(10000, 3, 100) == ([3300, 3300], 3400)
    assert bills.bill_split(50000, 3, 100) == ([16700, 16700], 16600)
    assert bills.bill_split(7000, 1, 100) == ([], 7000)
    assert bills.bill_split(1400, 10, 100) == ([200] * 3 + [100] * 6, 200)


# --- The tally ------------------------------------------------------------------------

_dishes = st.sampled_from(
    ["짬뽕", "짜장면", "Jjamppong", "JJAMPPONG", "탕수육", " 짬뽕 ", "짬\u200b뽕"]
)


@given(st.lists(_dishes, max_size=30))
def test_tally_folds_equal_orders(dishes: list[str]) -> None:
    orders = [{"id": i + 1, "name": f"p{i}", "text": dish} for i, dish in enumerate(dishes)]
    tally = order_tally(orders)  # type: ignore[arg-type]
    # Every order on exactly one line, a line per key, counted and spelled as first given.
    assert sorted(i for line in tally for i in line["ids"]) == [o["id"] for o in orders]
    keys = [text.item_key(line["text"]) for line in tally]
    assert len(keys) == len(set(keys)) == len({text.item_key(d) for d in dishes})
    for line in tally:
        assert line["count"] == len(line["ids"])
        first = orders[line["ids"][0] - 1]
        assert line["text"] == first["text"]
        assert line["ids"] == sorted(line["ids"])
        assert all(
            text.item_key(orders[i - 1]["text"]) == text.item_key(line["text"]) for i in line["ids"]
        )
    # Most first, then first given.
    assert [(-line["count"], line["ids"][0]) for line in tally] == sorted(
        (-line["count"], line["ids"][0]) for line in tally
    )


def test_amounts_read_as_people_write_them() -> None:
    from django.utils import translation

    with translation.override("ko"):
        assert amount_format(13500, "KRW") == "13,500원"
    with translation.override("en"):
        assert amount_format(13500, "KRW") == "13,500 KRW"


# --- The services ---------------------------------------------------------------------


@pytest.fixture
def room() -> Room:
    return services.room_create()


@pytest.fixture
def alice(room: Room) -> Participant:
    return join(room, "alice")


@pytest.fixture
def bob(room: Room) -> Participant:
    return join(room, "bob")


@pytest.fixture
def decided(room: Room, alice: Participant, bob: Participant) -> Room:
    run(room, alice, "add", "홍콩반점")
    run(room, alice, "pick")
    return room


def bill(room: Room, who: Participant, total: object, paid_by: int | None = None) -> dict:
    return services_bill(room, who, total, paid_by)


def services_bill(room: Room, who: Participant, total: object, paid_by: int | None) -> dict:
    from rooms.protocol import Command

    arguments = {"total": total} if paid_by is None else {"total": total, "paid_by": paid_by}
    command = Command("bill", arguments)
    return commands.command_run(room_id=room.pk, participant_id=who.pk, command=command)


@pytest.mark.django_db
@pytest.mark.usefixtures("channel_layer_memory")
class TestOrders:
    def test_not_before_a_decision(self, room: Room, alice: Participant) -> None:
        assert error_code(run, room, alice, "order", "짬뽕") == "not_decided"

    def test_orders_keep_their_place_and_fold(
        self, decided: Room, alice: Participant, bob: Participant
    ) -> None:
        carol = join(decided, "carol")
        run(decided, alice, "order", "짬뽕 곱빼기")
        run(decided, bob, "order", "탕수육")
        state = run(decided, carol, "order", "  짬뽕   곱빼기 ")
        assert [o["text"] for o in state["room"]["orders"]] == [
            "짬뽕 곱빼기",
            "탕수육",
            "짬뽕 곱빼기",
        ]
        state = run(decided, alice, "order", "짬뽕  곱빼기")  # changed: keeps its place
        assert [o["id"] for o in state["room"]["orders"]] == [alice.pk, bob.pk, carol.pk]
        assert state["room"]["order_tally"] == [
            {"text": "짬뽕 곱빼기", "count": 2, "ids": [alice.pk, carol.pk]},
            {"text": "탕수육", "count": 1, "ids": [bob.pk]},
        ]
        state = run(decided, alice, "order", "")  # withdrawn
        assert [o["id"] for o in state["room"]["orders"]] == [bob.pk, carol.pk]
        assert (
            selectors.room_state(room=Room.objects.get(pk=decided.pk))["room"]["orders"]
            == state["room"]["orders"]
        )

    @pytest.mark.parametrize("raw", ["\u200b", "\u3164", "가" * 41])
    def test_invalid_orders(self, decided: Room, alice: Participant, raw: str) -> None:
        assert error_code(run, decided, alice, "order", raw) == "invalid_order"
        assert not Order.objects.filter(room=decided).exists()

    def test_a_new_decision_clears_orders_and_bill(
        self, decided: Room, alice: Participant, bob: Participant
    ) -> None:
        run(decided, alice, "order", "짬뽕")
        bill(decided, alice, 20000)
        state = run(decided, bob, "pick")
        assert state["room"]["orders"] == [] and state["room"]["bill"] is None
        assert selectors.room_state(room=Room.objects.get(pk=decided.pk)) == {
            **state,
            "version": state["version"],
        }
        assert not Order.objects.filter(room=decided).exists()
        assert not Share.objects.filter(room=decided).exists()


@pytest.mark.django_db
@pytest.mark.usefixtures("channel_layer_memory")
class TestBill:
    def test_split_among_the_online_with_the_payer_paid(
        self, decided: Room, alice: Participant, bob: Participant
    ) -> None:
        state = bill(decided, alice, 10000)
        assert state["room"]["bill"] == {
            "total": 10000,
            "currency": "KRW",
            "unit": 100,
            "paid_by": {"id": alice.pk, "name": "alice"},
            "shares": [
                {"id": alice.pk, "name": "alice", "amount": 5000, "paid": True},
                {"id": bob.pk, "name": "bob", "amount": 5000, "paid": False},
            ],
        }

    def test_sharers_are_the_going_else_who_ordered(
        self, settings, decided: Room, alice: Participant, bob: Participant
    ) -> None:
        settings.ROOM_BILL_UNIT = 1000
        carol = join(decided, "carol")
        run(decided, bob, "order", "짬뽕")
        run(decided, carol, "order", "짜장면")
        shares = bill(decided, alice, 10000)["room"]["bill"]["shares"]
        # who ordered, and the payer (who did not) last
        assert [(s["id"], s["amount"]) for s in shares] == [
            (bob.pk, 3000),
            (carol.pk, 3000),
            (alice.pk, 4000),
        ]
        run(decided, carol, "in")
        state = bill(decided, bob, 10000)  # again: recomputed, bob pays
        assert state["room"]["bill"]["unit"] == 1000
        assert [(s["id"], s["amount"], s["paid"]) for s in state["room"]["bill"]["shares"]] == [
            (carol.pk, 5000, False),
            (bob.pk, 5000, True),
        ]

    def test_paid_by_anyone_of_the_room_online_or_not(
        self, decided: Room, alice: Participant, bob: Participant
    ) -> None:
        gone = join(decided, "gone")
        services.participant_leave(channel_name=_channel_of(gone))
        state = bill(decided, alice, 9000, paid_by=gone.pk)
        assert state["room"]["bill"]["paid_by"] == {"id": gone.pk, "name": "gone"}
        assert sum(s["amount"] for s in state["room"]["bill"]["shares"]) == 9000
        other = services.room_create()
        stranger = join(other, "stranger")
        assert error_code(bill, decided, alice, 9000, stranger.pk) == "unknown_participant"

    @pytest.mark.parametrize("total", [0, -1, 10_000_001, 1.5, "54000", True, "abc"])
    def test_invalid_amounts(self, decided: Room, alice: Participant, total: object) -> None:
        assert error_code(bill, decided, alice, total) == "invalid_amount"

    def test_shorthand_and_off(self, decided: Room, alice: Participant) -> None:
        assert run(decided, alice, "bill", "54,000")["room"]["bill"]["total"] == 54000
        assert error_code(run, decided, alice, "bill", "lots") == "invalid_amount"
        assert run(decided, alice, "bill", "off")["room"]["bill"] is None
        assert not Share.objects.filter(room=decided).exists()

    def test_paid_marks(self, decided: Room, alice: Participant, bob: Participant) -> None:
        carol = join(decided, "carol")
        assert error_code(run, decided, bob, "paid") == "no_share"  # no bill
        run(decided, carol, "in")
        run(decided, bob, "in")
        bill(decided, alice, 30000)  # bob, carol and the payer
        shares = run(decided, bob, "paid")["room"]["bill"]["shares"]
        assert [(s["name"], s["paid"]) for s in shares] == [
            ("carol", False),
            ("bob", True),
            ("alice", True),
        ]
        shares = run(decided, alice, "unpaid")["room"]["bill"]["shares"]  # the payer's stays
        assert shares[-1]["paid"] is True
        shares = run(decided, bob, "unpaid")["room"]["bill"]["shares"]
        assert shares[1]["paid"] is False
        dave = join(decided, "dave")
        assert error_code(run, decided, dave, "paid") == "no_share"
        run(decided, bob, "paid")
        bill(decided, alice, 30000)  # set again: the marks are cleared
        assert [
            s["paid"]
            for s in selectors.room_state(room=Room.objects.get(pk=decided.pk))["room"]["bill"][
                "shares"
            ]
        ] == [
            False,
            False,
            True,
        ]

    def test_paid_is_one_round_trip(
        self, decided: Room, alice: Participant, bob: Participant
    ) -> None:
        bill(decided, alice, 30000)
        with CaptureQueriesContext(connection) as queries:
            run(decided, bob, "paid")
        with CaptureQueriesContext(connection) as rename:
            run(decided, bob, "rename", "bobby")
        assert len(queries) == len(rename)  # the same as any one-statement everyday change


def _channel_of(participant: Participant) -> str:
    return participant.connections.get().channel_name


@pytest.mark.django_db
@pytest.mark.usefixtures("channel_layer_memory")
class TestSummary:
    def test_the_message_in_korean(
        self, decided: Room, alice: Participant, bob: Participant
    ) -> None:
        Room.objects.filter(pk=decided.pk).update(language="ko")
        run(decided, alice, "order", "짬뽕 곱빼기")
        run(decided, bob, "order", "짬뽕  곱빼기")
        run(decided, bob, "in")
        run(decided, alice, "in")
        bill(decided, alice, 27000)
        state = run(decided, bob, "paid")
        assert state["room"]["summary"] == "\n".join(
            [
                "오늘 점심: 홍콩반점",
                "주문:",
                "- 짬뽕 곱빼기 \N{MULTIPLICATION SIGN}2",
                "합계 27,000원, alice 님이 계산했어요",
                "alice 님께 보내 주세요:",
                "- bob 13,500원 (송금 완료)",
            ]
        )

    def test_the_message_in_english_and_before_a_decision(
        self, room: Room, alice: Participant, bob: Participant
    ) -> None:
        assert run(room, alice, "extend")["room"]["summary"] is None
        run(room, alice, "add", "Pho")
        state = run(room, alice, "pick")
        assert state["room"]["summary"] == "Lunch: Pho"
        state = bill(room, bob, 9000)
        assert room_summary(state, language="en") == state["room"]["summary"]
        assert state["room"]["summary"].splitlines()[1:] == [
            "Total 9,000 KRW, paid by bob",
            "Please send bob:",
            "- alice 4,500 KRW",
        ]


@pytest.mark.django_db
@pytest.mark.usefixtures("channel_layer_memory")
def test_a_kicked_participants_order_goes(decided: Room, alice: Participant, bob: Participant):
    run(decided, bob, "order", "짬뽕")
    host = Room.objects.get(pk=decided.pk).host_id
    assert host == alice.pk
    state = run(decided, alice, "kick", str(bob.pk))
    assert state["room"]["orders"] == [] and state["room"]["order_tally"] == []
