"""Which sale is an order's after an unknown outcome: the rules, on plain data."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from pos_tryton.reconcile import (
    Found,
    LineKey,
    Missing,
    Pending,
    SaleFacts,
    Unsettled,
    decide,
    line_key,
    marker,
    order_in_note,
    owners,
    resource,
)

LINES = line_key([(6, 2), (25, 1)])
PENDING = Pending(
    started_at=dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC),
    point=1,
    lines=LINES,
    total=Decimal("22.90"),
    prepaid=Decimal("22.90"),
    note=marker("o-1") + "\nTake-away order",
)


def note(note_id: int, sale_id: int, message: str) -> dict[str, object]:
    return {"id": note_id, "resource": resource(sale_id), "message": message}


@pytest.mark.parametrize("order_id", ["o-1", 'quote" and\nnewline', "ünïcode %_"])
def test_marker_reads_back_any_order_id(order_id: str) -> None:
    assert order_in_note(marker(order_id) + "\nmore text") == order_id


@pytest.mark.parametrize(
    "message", ["", "Customer called", "posintegrator order o-1", "posintegrator order 12"]
)
def test_other_notes_mark_nothing(message: str) -> None:
    assert order_in_note(message) is None


def test_a_sale_belongs_to_the_first_marker_on_it() -> None:
    notes = [
        note(9, 100, marker("late")),
        note(4, 100, marker("first")),
        note(2, 100, "a cashier's remark"),
        note(5, 101, marker("other")),
        {"id": 1, "resource": "sale.sale,100", "message": marker("not a pos sale")},
    ]
    assert owners(notes) == {100: "first", 101: "other"}


def test_line_keys_ignore_order_and_number_form() -> None:
    assert line_key([(25, 1.0), (6, 2)]) == line_key([(6, Decimal("2.00")), (25, 1)])
    assert line_key([(6, 2)]) != line_key([(6, 3)])


def test_pending_record_survives_the_state_store() -> None:
    stored = PENDING.with_sale(77)
    assert Pending.loads(stored.dumps()) == stored
    with pytest.raises(ValueError, match="not a pending-sale record"):
        Pending.loads('{"point": 1}')


def sale(sale_id: int, lines: LineKey = LINES, total: str = "22.90") -> SaleFacts:
    return SaleFacts(sale_id, Decimal(total), lines)


def test_the_sale_marked_for_the_order_is_found_whatever_else_fits() -> None:
    sales = [sale(1), sale(2), sale(3)]
    assert decide("o-1", PENDING, sales, {2: "o-1", 3: "o-2"}) == Found(2, marked=True)


def test_two_sales_marked_for_one_order_need_a_person() -> None:
    decision = decide("o-1", PENDING, [sale(1), sale(2)], {1: "o-1", 2: "o-1"})
    assert isinstance(decision, Unsettled) and "[1, 2]" in decision.reason


def test_the_recorded_sale_is_found_even_when_others_fit() -> None:
    decision = decide("o-1", PENDING.with_sale(2), [sale(1), sale(2)], {})
    assert decision == Found(2, marked=False)


def test_a_recorded_sale_that_is_gone_needs_a_person() -> None:
    decision = decide("o-1", PENDING.with_sale(9), [sale(1)], {})
    assert isinstance(decision, Unsettled) and "sale 9" in decision.reason


def test_a_recorded_sale_another_order_owns_is_not_ours() -> None:
    assert decide("o-1", PENDING.with_sale(2), [sale(2)], {2: "o-2"}) == Missing()


def test_exactly_one_unmarked_sale_with_the_lines_and_total_is_found() -> None:
    sales = [
        sale(1),  # fits, but marked for another order
        sale(2, total="22.80"),
        sale(3, lines=line_key([(6, 2)])),
        sale(4),
    ]
    assert decide("o-1", PENDING, sales, {1: "o-2"}) == Found(4, marked=False)


def test_no_fitting_sale_means_tryton_does_not_have_it() -> None:
    assert decide("o-1", PENDING, [sale(1, total="1.00")], {}) == Missing()
    assert decide("o-1", PENDING, [], {}) == Missing()


def test_several_fitting_sales_need_a_person() -> None:
    decision = decide("o-1", PENDING, [sale(5), sale(6)], {})
    assert isinstance(decision, Unsettled)
    assert "[5, 6]" in decision.reason and "o-1" in decision.reason
