"""Order documents written by earlier releases, brought to the current format.

The store keeps every order as the JSON document it was accepted as. An upgrade that changes the
order's format rewrites the stored documents once (a step of
:mod:`posintegrator.store.migrations`), through the functions here, so the rest of the host only
ever reads the current format. docs/changelog.md says what changed in each format.
"""

from __future__ import annotations

from typing import Any

#: The name a price difference accepted by ``orders.price_tolerance`` gets when a first-release
#: order, whose total was below its lines, is brought to the current format.
TOLERANCE_DISCOUNT_NAME = "Price difference accepted by the price tolerance"


def upgrade_order(document: dict[str, Any]) -> dict[str, Any]:
    """A stored order document in the current format (a current one is returned as it is).

    A first-release document has one ``payment`` and a ``total`` that is its lines plus the
    taxes not included in prices, within ``orders.price_tolerance``. In the current format:

    * ``payment`` becomes ``payments``, one payment of the same mode and reference for the whole
      total. (A first-release ``AT_COUNTER`` payment's ``amount`` was not tied to the total; the
      total is what is due.)
    * what the total holds beyond the lines becomes ``tax``; a total below its lines (a
      difference the price tolerance let through) becomes a discount of that difference, so the
      order still adds up to the same total.
    """
    if "payment" not in document or "payments" in document:
        return document
    upgraded = dict(document)
    payment = upgraded.pop("payment")
    total = int(upgraded["total"])
    lines = sum(int(line["unit_price"]) * int(line["quantity"]) for line in upgraded["lines"])
    if total > lines:
        upgraded["tax"] = total - lines
    elif total < lines:
        upgraded["discounts"] = [
            {"kind": "OTHER", "name": TOLERANCE_DISCOUNT_NAME, "amount": lines - total}
        ]
    upgraded["payments"] = [
        {"mode": payment["mode"], "amount": total, "reference": payment.get("reference")}
    ]
    return upgraded
