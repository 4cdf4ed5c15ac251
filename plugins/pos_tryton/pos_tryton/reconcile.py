"""Which Tryton sale is an order's, when the answer to its creation may have been lost.

Tryton 8.2's point-of-sale sale has no free reference field, so the plugin marks a sale as an
order's with an ``ir.note`` on it whose first line is :func:`marker` (``posintegrator order
"ID"``). The note can only be written once the sale's id is known, so there is a window (the
answer to ``create`` lost, or the host stopped before the note) in which a sale of ours carries no
marker. For that window the plugin keeps, in the connection's durable state and *before* it asks
Tryton to create anything, a :class:`Pending` record of what it is about to create: the sale
point, the lines, the total, and when it started.

The rules (see the README for their limits):

* A sale belongs to the order of the **first** marker note on it (lowest note id). Whoever writes
  a marker checks this afterwards and withdraws when another order got there first.
* A lookup considers the sales the integration user created at the order's sale point since the
  submission started (less the allowed clock skew).
* A sale marked for the order: found. Several: a person must look.
* Else the sale whose id the plugin recorded after ``create`` answered, if no other order owns it.
* Else unmarked sales with exactly the order's lines and total: exactly one is found (and then
  marked); none means Tryton does not have the order, so it may be sent again; several mean
  nobody can tell which is the order's: a person must look.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import orjson

MARKER_PREFIX = "posintegrator order "

#: (Tryton product id, quantity) of each line, sorted: what two sales must share to match.
LineKey = tuple[tuple[int, Decimal], ...]


def marker(order_id: str) -> str:
    """The first line of the note that marks a sale as this order's (the id JSON-quoted, so
    any id reads back exactly)."""
    return MARKER_PREFIX + orjson.dumps(order_id).decode()


def order_in_note(message: str) -> str | None:
    """The order id a note's first line marks, or None for any other note."""
    first = message.split("\n", 1)[0]
    if not first.startswith(MARKER_PREFIX):
        return None
    try:
        value = orjson.loads(first[len(MARKER_PREFIX) :])
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, str) else None


def resource(sale_id: int) -> str:
    """The ``ir.note`` resource reference of a sale."""
    return f"sale.point.sale,{sale_id}"


def owners(notes: Iterable[Mapping[str, Any]]) -> dict[int, str]:
    """Sale id -> the order of the first marker note on it (``ir.note`` records with ``id``,
    ``resource`` and ``message``)."""
    first: dict[int, tuple[int, str]] = {}
    for note in notes:
        order_id = order_in_note(str(note.get("message") or ""))
        model, _, sale = str(note.get("resource") or "").partition(",")
        if order_id is None or model != "sale.point.sale" or not sale.isdigit():
            continue
        sale_id, note_id = int(sale), int(note["id"])
        if sale_id not in first or note_id < first[sale_id][0]:
            first[sale_id] = (note_id, order_id)
    return {sale_id: order_id for sale_id, (_, order_id) in first.items()}


def line_key(lines: Iterable[tuple[int, Decimal | float | int]]) -> LineKey:
    """The comparable form of (product, quantity) pairs."""
    return tuple(sorted((int(p), Decimal(str(q)).normalize()) for p, q in lines))


@dataclass(frozen=True)
class Pending:
    """What the plugin was about to create for an order, stored before asking Tryton.

    :param started_at: when the first submission of the order began (our clock, UTC).
    :param point: the sale point.
    :param lines: the lines' :data:`LineKey`.
    :param total: the sale's total as Tryton will compute it.
    :param prepaid: the amount to record as paid, or None for an order paid at the counter.
    :param note: the marker note to put on the sale (the marker, then what the cashier needs).
    :param sale_id: the sale Tryton created, once its answer arrived.
    """

    started_at: dt.datetime
    point: int
    lines: LineKey
    total: Decimal
    prepaid: Decimal | None
    note: str
    sale_id: int | None = None

    def with_sale(self, sale_id: int | None) -> Pending:
        """The same record, naming the sale Tryton created (or none)."""
        return replace(self, sale_id=sale_id)

    def dumps(self) -> str:
        """The record as a JSON string for the connection's state."""
        return orjson.dumps(
            {
                "started_at": self.started_at.isoformat(),
                "point": self.point,
                "lines": [[product, str(quantity)] for product, quantity in self.lines],
                "total": str(self.total),
                "prepaid": None if self.prepaid is None else str(self.prepaid),
                "note": self.note,
                "sale_id": self.sale_id,
            }
        ).decode()

    @classmethod
    def loads(cls, raw: str) -> Pending:
        """Read a record written by :meth:`dumps`.

        :raises ValueError: the text is not such a record.
        """
        try:
            data = orjson.loads(raw)
            return cls(
                started_at=dt.datetime.fromisoformat(data["started_at"]),
                point=int(data["point"]),
                lines=line_key((p, Decimal(q)) for p, q in data["lines"]),
                total=Decimal(data["total"]),
                prepaid=None if data["prepaid"] is None else Decimal(data["prepaid"]),
                note=str(data["note"]),
                sale_id=None if data["sale_id"] is None else int(data["sale_id"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ArithmeticError) as exc:
            raise ValueError(f"not a pending-sale record: {exc!r}") from exc


@dataclass(frozen=True)
class SaleFacts:
    """A sale as a lookup compares it: its id, total and lines."""

    id: int
    total: Decimal
    lines: LineKey


@dataclass(frozen=True)
class Found:
    """The order's sale. ``marked`` says whether it already carries the order's marker."""

    sale_id: int
    marked: bool


@dataclass(frozen=True)
class Missing:
    """Tryton does not have the order: it may be sent again."""


@dataclass(frozen=True)
class Unsettled:
    """Nobody can tell from Tryton's data which sale, if any, is the order's."""

    reason: str


Decision = Found | Missing | Unsettled


def decide(
    order_id: str, pending: Pending, sales: Sequence[SaleFacts], owner_of: Mapping[int, str]
) -> Decision:
    """Apply the module's rules to the sales a lookup found (see the module docstring).

    :param sales: the integration user's sales at the pending record's sale point, created since
        the submission started (less the clock skew).
    :param owner_of: :func:`owners` of the notes on those sales.
    """
    mine = sorted(s.id for s in sales if owner_of.get(s.id) == order_id)
    if len(mine) == 1:
        return Found(mine[0], marked=True)
    if mine:
        return Unsettled(f"sales {mine} in Tryton all carry order {order_id!r}")
    present = {s.id for s in sales}
    if pending.sale_id is not None:
        if pending.sale_id not in present:
            return Unsettled(
                f"sale {pending.sale_id}, which Tryton created for order {order_id!r}, is gone "
                "(deleted in Tryton?)"
            )
        if pending.sale_id not in owner_of:
            return Found(pending.sale_id, marked=False)
    fitting = sorted(
        s.id
        for s in sales
        if s.id not in owner_of and s.lines == pending.lines and s.total == pending.total
    )
    if not fitting:
        return Missing()
    if len(fitting) == 1:
        return Found(fitting[0], marked=False)
    return Unsettled(
        f"{len(fitting)} unmarked sales {fitting} in Tryton have the lines and total of order "
        f"{order_id!r}: check which one (if any) is this order's"
    )
