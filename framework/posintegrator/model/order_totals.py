"""How an order's amounts add up: one rule, in integers, with every rounding stated.

The rule (worked through in docs/model.md):

* each line costs ``unit_price x quantity``, less its own discounts: its *net*;
* the *items* are the sum of the line nets;
* the order's discounts come off the items, its charges are added, then the tip and the tax
  added on top of the prices (exclusive taxes; 0 where prices include every tax):
  ``total = items - discounts + charges + tip + tax``;
* the payments add up to the total, exactly.

A discount or charge given as a percentage (``rate_ppm``, parts per million) must carry the
amount that rate gives, rounded half up to a whole minor unit: a line discount of the line's
``unit_price x quantity``, an order discount of the items, a charge of the items less the order's
discounts. Several percentages on the same base each apply to that base (they do not compound).

Everything here is order-local. What needs the menu (unit prices, the tax) is checked in
:mod:`posintegrator.model.order_check`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from posintegrator.model.order import Charge, Discount, Order, OrderLine

#: A rate of 100 %, in parts per million.
PPM = 1_000_000
#: ``PaymentMode.PREPAID`` (a string enum), named here without importing the model it serves.
PREPAID = "PREPAID"

#: A problem of an order: the path of the field at fault, and why.
Problem = tuple[tuple[str | int, ...], str]


def round_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded to the nearest integer, an exact half up.

    Integers only: money never touches floats. Both arguments are non-negative.
    """
    return (2 * numerator + denominator) // (2 * denominator)


def round_half_even(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded to the nearest integer, an exact half to the even one
    (bankers' rounding, as Square rounds). Both arguments are non-negative."""
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        return quotient + 1
    return quotient


def rate_of(base: int, rate_ppm: int) -> int:
    """``rate_ppm`` parts per million of ``base``, rounded half up."""
    return round_half_up(base * rate_ppm, PPM)


def apportion(amount: int, weights: Sequence[int]) -> list[int]:
    """Split ``amount`` over ``weights`` in proportion, in whole units that add up to ``amount``.

    Each share is first rounded down; the units left over go one each to the largest
    remainders, an earlier weight first on a tie (the largest remainder method). With no weight
    at all, everything goes to the first.
    """
    if not weights:
        return []
    total = sum(weights)
    if total == 0:
        return [amount] + [0] * (len(weights) - 1)
    shares = [amount * w // total for w in weights]
    remainders = [amount * w % total for w in weights]
    left = amount - sum(shares)
    for index in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:left]:
        shares[index] += 1
    return shares


def line_gross(line: OrderLine) -> int:
    """What a line costs before its discounts: ``unit_price x quantity``."""
    return line.unit_price * line.quantity


def line_net(line: OrderLine) -> int:
    """What a line costs after its own discounts (never below 0 on a valid order)."""
    return line_gross(line) - sum(d.amount for d in line.discounts)


@dataclass(frozen=True)
class OrderAmounts:
    """The parts of an order's total, as the rule computes them from its fields."""

    items: int
    """The sum of the line nets."""
    discounts: int
    """The order's own discounts (line discounts are inside ``items``)."""
    charges: int
    tip: int
    tax: int
    payments: int
    prepaid: int
    """The part of the payments already taken (PREPAID)."""

    @property
    def total(self) -> int:
        """``items - discounts + charges + tip + tax``: what the order's total must be."""
        return self.items - self.discounts + self.charges + self.tip + self.tax

    @property
    def after_discounts(self) -> int:
        """The items less the order's discounts: the base of a percentage charge."""
        return self.items - self.discounts


def amounts(order: Order) -> OrderAmounts:
    """The parts of ``order``'s total."""
    return OrderAmounts(
        items=sum(line_net(line) for line in order.lines),
        discounts=sum(d.amount for d in order.discounts),
        charges=sum(c.amount for c in order.charges),
        tip=order.tip,
        tax=order.tax,
        payments=sum(p.amount for p in order.payments),
        prepaid=sum(p.amount for p in order.payments if p.mode == PREPAID),
    )


def order_problems(order: Order) -> list[Problem]:
    """Every way ``order``'s amounts fail to add up.

    Each problem names the field at fault: ``lines[0].discounts[1].amount``, ``discounts``,
    ``charges[0].tax_id``, ``total``, ``payments``.
    """
    problems: list[Problem] = []
    for index, line in enumerate(order.lines):
        gross = line_gross(line)
        problems += _percentages(("lines", index, "discounts"), line.discounts, gross, "the line")
        taken = sum(d.amount for d in line.discounts)
        if taken > gross:
            problems.append(
                (
                    ("lines", index, "discounts"),
                    f"take {taken} off a line of {gross} (unit_price x quantity): a discount "
                    "cannot make a line cost less than nothing",
                )
            )
    parts = amounts(order)
    problems += _percentages(("discounts",), order.discounts, parts.items, "the items")
    if parts.discounts > parts.items:
        problems.append(
            (
                ("discounts",),
                f"take {parts.discounts} off items of {parts.items}: discounts cannot make the "
                "order cost less than nothing",
            )
        )
    base = max(parts.after_discounts, 0)
    problems += _percentages(("charges",), order.charges, base, "the items after discounts")
    problems += _charge_taxes(order.charges)
    if order.total != parts.total:
        problems.append(
            (
                ("total",),
                f"is {order.total} but items {parts.items} - discounts {parts.discounts} + "
                f"charges {parts.charges} + tip {parts.tip} + tax {parts.tax} = {parts.total}",
            )
        )
    if parts.payments != order.total:
        problems.append(
            (
                ("payments",),
                f"add up to {parts.payments} but the total is {order.total}: the payments "
                "must cover the total exactly",
            )
        )
    return problems


def _percentages(
    path: tuple[str | int, ...],
    adjustments: Sequence[Discount | Charge],
    base: int,
    base_name: str,
) -> list[Problem]:
    problems: list[Problem] = []
    for index, adjustment in enumerate(adjustments):
        if adjustment.rate_ppm is None:
            continue
        expected = rate_of(base, adjustment.rate_ppm)
        if adjustment.amount != expected:
            problems.append(
                (
                    (*path, index, "amount"),
                    f"is {adjustment.amount} but rate_ppm {adjustment.rate_ppm} of "
                    f"{base_name} ({base}) is {expected} (rounded half up)",
                )
            )
    return problems


def _charge_taxes(charges: Sequence[Charge]) -> list[Problem]:
    problems: list[Problem] = []
    for index, charge in enumerate(charges):
        if charge.taxable and charge.tax_id is None:
            problems.append(
                (("charges", index, "tax_id"), "a taxable charge names the menu tax that applies")
            )
        if not charge.taxable and charge.tax_id is not None:
            problems.append(
                (("charges", index, "tax_id"), "only a taxable charge names a tax; set taxable")
            )
    return problems
