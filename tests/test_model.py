"""The universal model: strict money and time, the forward-only state machine."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest
from pydantic import ValidationError

from posintegrator.model import (
    FINAL_STATUSES,
    Menu,
    Order,
    OrderStatus,
    PriceList,
    StatusEvent,
    can_retry_delivery,
    can_transition,
)

S = OrderStatus
HAPPY = [S.RECEIVED, S.SUBMITTING, S.ACCEPTED, S.IN_PREPARATION, S.READY, S.COMPLETED]


def test_happy_path_moves_forward_and_may_skip() -> None:
    for earlier, later in itertools.combinations(HAPPY, 2):
        assert can_transition(earlier, later), (earlier, later)
        assert not can_transition(later, earlier), (later, earlier)


def test_repeats_and_finals_are_refused() -> None:
    for status in S:
        assert not can_transition(status, status)
    for final, other in itertools.product(FINAL_STATUSES, S):
        assert not can_transition(final, other)
    for status in set(S) - FINAL_STATUSES:
        for final in FINAL_STATUSES:
            assert can_transition(status, final), (status, final)


def test_needs_attention_only_before_the_pos_confirms() -> None:
    assert can_transition(S.RECEIVED, S.NEEDS_ATTENTION)
    assert can_transition(S.SUBMITTING, S.NEEDS_ATTENTION)
    assert not can_transition(S.ACCEPTED, S.NEEDS_ATTENTION)
    assert can_transition(S.NEEDS_ATTENTION, S.ACCEPTED)
    assert not can_transition(S.NEEDS_ATTENTION, S.SUBMITTING), "only an operator retries"
    assert can_retry_delivery(S.NEEDS_ATTENTION) and not can_retry_delivery(S.ACCEPTED)


def order_data(example: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(example)


def test_money_is_integer_minor_units(example_order: dict[str, Any]) -> None:
    order = Order.model_validate(example_order)
    assert order.total == 1990 and order.currency == "EUR"
    for bad in (19.9, "1990", -1):
        data = order_data(example_order)
        data["total"] = bad
        with pytest.raises(ValidationError) as info:
            Order.model_validate(data)
        assert info.value.errors()[0]["loc"][0] == "total"
    data = order_data(example_order)
    data["currency"] = "euro"
    with pytest.raises(ValidationError):
        Order.model_validate(data)


def test_times_must_carry_a_zone_and_become_utc(example_order: dict[str, Any]) -> None:
    data = order_data(example_order)
    data["pickup_time"] = "2026-12-01T13:00:00+01:00"
    assert Order.model_validate(data).pickup_time.isoformat() == "2026-12-01T12:00:00+00:00"  # type: ignore[union-attr]
    data["pickup_time"] = "2026-12-01T13:00:00"
    with pytest.raises(ValidationError, match="timezone"):
        Order.model_validate(data)


def test_payments_must_cover_the_total(example_order: dict[str, Any]) -> None:
    data = order_data(example_order)
    data["payments"][0]["amount"] = 1000
    with pytest.raises(ValidationError, match="add up to 1000 but the total is 1990") as info:
        Order.model_validate(data)
    assert [e["loc"] for e in info.value.errors()] == [("payments",)]
    data["payments"][0]["mode"] = "AT_COUNTER"
    with pytest.raises(ValidationError):
        Order.model_validate(data)
    data["payments"].append({"mode": "AT_COUNTER", "amount": 990, "method": "CASH"})
    assert [p.amount for p in Order.model_validate(data).payments] == [1000, 990]


def test_a_first_release_payment_is_named(example_order: dict[str, Any]) -> None:
    data = order_data(example_order)
    data["payment"] = data.pop("payments")[0]
    with pytest.raises(ValidationError, match="replaced by payments") as info:
        Order.model_validate(data)
    assert [e["loc"] for e in info.value.errors()] == [("payment",)]


def test_an_order_cannot_be_changed_into_one_that_does_not_add_up(
    example_order: dict[str, Any],
) -> None:
    order = Order.model_validate(example_order)
    with pytest.raises(ValidationError, match="= 2090"):
        order.tip = 100
    assert order.tip == 0
    more = order.model_copy(update={"tip": 100, "total": 2090}).model_dump()
    more["payments"][0]["amount"] = 2090
    assert Order.model_validate(more).total == 2090


def test_status_event_names_an_order() -> None:
    with pytest.raises(ValidationError, match="order_id or pos_order_id"):
        StatusEvent(status=S.READY)
    assert StatusEvent(pos_order_id="P1", status=S.READY).occurred_at.tzinfo is not None


@pytest.mark.parametrize("zone", ["Europe", "x" * 300, "", "Europe/Nowhere", "../etc/passwd"])
def test_a_timezone_that_is_not_a_zone_is_a_validation_error(zone: str) -> None:
    # "Europe" names a folder of the zone database and a long name is too long for a file
    # name: both made ZoneInfo raise OSError, which escaped validation as a crash.
    with pytest.raises(ValidationError, match="unknown time zone"):
        Menu(location="x", currency="EUR", timezone=zone, price_lists=[PriceList(id="p", name="P")])


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00"])
def test_a_time_beyond_the_calendar_in_utc_is_a_validation_error(moment: str) -> None:
    # Converting these to UTC overflows the calendar: astimezone raised OverflowError, which
    # escaped validation as a crash.
    with pytest.raises(ValidationError, match="outside the range of dates this host handles"):
        StatusEvent(pos_order_id="P1", status=S.READY, occurred_at=moment)
