"""Tryton's tagged JSON values: what we send and what we read back."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import orjson

from pos_tryton.wire import decode, encode


def test_decimals_travel_as_tagged_strings_and_come_back_exact() -> None:
    sent = encode({"amount": Decimal("8.50"), "lines": [[1, Decimal("0.1")]]})
    assert sent == {
        "amount": {"__class__": "Decimal", "decimal": "8.50"},
        "lines": [[1, {"__class__": "Decimal", "decimal": "0.1"}]],
    }
    assert decode(orjson.loads(orjson.dumps(sent))) == {
        "amount": Decimal("8.50"),
        "lines": [[1, Decimal("0.1")]],
    }


def test_aware_datetimes_are_sent_in_utc_and_read_back_aware() -> None:
    berlin = dt.timezone(dt.timedelta(hours=2))
    sent = encode(dt.datetime(2026, 7, 1, 14, 30, 5, 7, tzinfo=berlin))
    assert sent == {
        "__class__": "datetime",
        "year": 2026,
        "month": 7,
        "day": 1,
        "hour": 12,
        "minute": 30,
        "second": 5,
        "microsecond": 7,
    }
    back = decode(sent)
    assert back == dt.datetime(2026, 7, 1, 12, 30, 5, 7, tzinfo=dt.UTC)
    assert back.tzinfo is dt.UTC


def test_dates_and_plain_values_pass_through() -> None:
    assert decode(encode(dt.date(2026, 1, 31))) == dt.date(2026, 1, 31)
    plain = {"name": "Cola", "ids": [1, 2], "active": True, "parent": None}
    assert encode(plain) == plain and decode(plain) == plain
