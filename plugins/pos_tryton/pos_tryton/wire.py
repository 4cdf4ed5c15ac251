"""Tryton's JSON encoding of values plain JSON lacks.

Tryton's JSON-RPC sends decimals, dates and datetimes as objects tagged with ``__class__``
(``{"__class__": "Decimal", "decimal": "8.50"}``). :func:`encode` turns Python values into that
form before a request and :func:`decode` turns a response back into Python values. Tryton's
datetimes are naive and in UTC; they are read as aware UTC datetimes here, so nothing past this
module sees a naive time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any


def encode(value: Any) -> Any:
    """``value`` with every Decimal, datetime and date in Tryton's tagged form."""
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    if isinstance(value, dt.datetime):
        utc = value.astimezone(dt.UTC) if value.tzinfo is not None else value
        return {
            "__class__": "datetime",
            "year": utc.year,
            "month": utc.month,
            "day": utc.day,
            "hour": utc.hour,
            "minute": utc.minute,
            "second": utc.second,
            "microsecond": utc.microsecond,
        }
    if isinstance(value, dt.date):
        return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}
    if isinstance(value, Mapping):
        return {key: encode(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [encode(item) for item in value]
    return value


def decode(value: Any) -> Any:
    """``value`` with Tryton's tagged objects turned into Decimal, date and aware datetime."""
    if isinstance(value, list):
        return [decode(item) for item in value]
    if not isinstance(value, dict):
        return value
    kind = value.get("__class__")
    if kind == "Decimal":
        return Decimal(value["decimal"])
    if kind == "datetime":
        return dt.datetime(
            value["year"],
            value["month"],
            value["day"],
            value["hour"],
            value["minute"],
            value["second"],
            value["microsecond"],
            tzinfo=dt.UTC,
        )
    if kind == "date":
        return dt.date(value["year"], value["month"], value["day"])
    return {key: decode(item) for key, item in value.items()}
