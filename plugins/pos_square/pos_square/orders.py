"""Pure translation of universal orders into Square requests: CreateOrder, the CreatePayment of
each prepaid payment, and the UpdateOrder that cancels an order.

No I/O here. The order is sent so that Square's own computation of it (as Square documents it:
discounts, then service charges, then taxes on what is left, then tips, rounding half to even)
gives the total the customer paid:

* line items name the ``ITEM_VARIATION`` (our variant id) and their modifiers; prices come from
  Square's catalog, which is where the menu's prices came from, and Square applies the items'
  catalog taxes (``auto_apply_taxes``), as the published menu says;
* every discount becomes a ``FIXED_AMOUNT`` discount of ``LINE_ITEM`` scope with its exact
  amount: a line's own discount on its line, an order discount split over the lines exactly as
  the host splits it for the tax (:func:`~posintegrator.model.order_totals.apportion`), so
  Square taxes each line on the same amount as the host checked (a percentage is sent as the
  amount it gave, never for Square to compute again);
* every charge (delivery, service, packaging, bag fee) becomes a fixed-amount service charge in
  the ``SUBTOTAL_PHASE``; a taxable one carries its tax (by its catalog id) in ``applied_taxes``;
* the tip is the ``tip_money`` of the prepaid payments, first ones first;
* each PREPAID payment is recorded as an ``EXTERNAL`` payment (AT_COUNTER ones are taken at the
  till); a DELIVERY order gets a ``DELIVERY`` fulfillment with the address, the courier, the
  aggregator's order id and the courier's code, any other a ``PICKUP`` one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from pos_square.translate import rfc3339
from posintegrator.model import (
    Delivery,
    Order,
    OrderLine,
    OrderType,
    Payment,
    PaymentMethod,
    PaymentMode,
    SelectedModifier,
)
from posintegrator.model.order_totals import apportion, line_net

JSONDict = dict[str, Any]

#: ``Order.source.name`` of the orders we create; lookups filter on it.
ORDER_SOURCE_NAME = "posintegrator"
#: Metadata keys on the Square orders we create.
META_ORDER_ID = "posintegrator_order_id"
META_KEY = "posintegrator_key"
#: Set by the first release on a prepaid order, to record its one payment after a lookup.
META_PREPAID = "posintegrator_prepaid_amount"
#: Square's limits on the fields we fill (from the OpenAPI spec).
REFERENCE_ID_MAX = 40
PAYMENT_KEY_MAX = 45
RECIPIENT_PHONE_MAX = 17
PICKUP_NOTE_MAX = 500
DELIVERY_NOTE_MAX = 550
TICKET_NAME_MAX = 30
DISCOUNT_NAME_MAX = 255
SERVICE_CHARGE_NAME_MAX = 512
CANCEL_REASON_MAX = 100
EXTERNAL_DELIVERY_ID_MAX = 50
COURIER_PROVIDER_MAX = 255
#: How long Square is told an ASAP delivery takes to prepare (it requires one).
DEFAULT_DELIVERY_PREP = "PT20M"

#: How a prepaid payment's method is recorded in Square's ``external_details.type``.
_EXTERNAL_TYPES: dict[PaymentMethod, str] = {
    PaymentMethod.CARD: "CARD",
    PaymentMethod.GIFT_CARD: "OTHER_GIFT_CARD",
    PaymentMethod.VOUCHER: "OTHER",
    PaymentMethod.WALLET: "EMONEY",
    PaymentMethod.LOYALTY_POINTS: "STORED_BALANCE",
    PaymentMethod.ACCOUNT: "STORED_BALANCE",
    PaymentMethod.AGGREGATOR: "EXTERNAL",
    PaymentMethod.CASH: "OTHER",
    PaymentMethod.OTHER: "OTHER",
}


def order_to_square(
    order: Order,
    square_location_id: str,
    idempotency_key: str,
    *,
    variations: Mapping[str, str] | None = None,
    delivery_prep: str = DEFAULT_DELIVERY_PREP,
) -> JSONDict:
    """The CreateOrder request body for ``order``.

    ``reference_id`` is our order id (Square allows 40 characters); modifiers name the
    ``MODIFIER`` (nested choices are flattened: Square modifiers do not nest); the fulfillment
    carries the customer, the time (``ASAP`` when none) and the customer's note.

    :param variations: item id -> its only variation id, for lines that name no variant.
    :param delivery_prep: how long an ASAP delivery takes (an RFC 3339 duration).
    :raises ValueError: for an order Square cannot take (a combo, a DINE_IN order, a reference
        longer than 40 characters, a line without a variation); the plugin turns it into a
        :class:`~posintegrator.errors.PermanentError`.
    """
    if order.type == OrderType.DINE_IN:
        raise ValueError(
            f"order type {order.type} is not supported: Square takes PICKUP and DELIVERY orders"
        )
    if len(order.id) > REFERENCE_ID_MAX:
        raise ValueError(
            f"order id {order.id!r} is longer than Square's {REFERENCE_ID_MAX}-character "
            "reference_id"
        )
    discounts, applied = _discounts(order)
    body: JSONDict = {
        "location_id": square_location_id,
        "reference_id": order.id,
        "source": {"name": ORDER_SOURCE_NAME},
        "line_items": [
            _line_item(n, line, variations or {}, applied[n - 1])
            for n, line in enumerate(order.lines, 1)
        ],
        "fulfillments": [
            _delivery(order, order.delivery, delivery_prep)
            if order.type == OrderType.DELIVERY
            else _pickup(order)
        ],
        "metadata": {META_ORDER_ID: order.id, META_KEY: idempotency_key},
        # Let Square apply the items' catalog taxes, as the menu we published says they apply:
        # the order's total then matches what the cloud charged.
        "pricing_options": {"auto_apply_taxes": True},
    }
    if discounts:
        body["discounts"] = discounts
    charges, taxes = _service_charges(order)
    if charges:
        body["service_charges"] = charges
    if taxes:
        body["taxes"] = taxes
    if order.customer is not None and order.customer.name:
        body["ticket_name"] = order.customer.name[:TICKET_NAME_MAX]
    return {"idempotency_key": idempotency_key, "order": body}


def _money(amount: int, currency: str) -> JSONDict:
    return {"amount": amount, "currency": currency}


def _discounts(order: Order) -> tuple[list[JSONDict], list[list[str]]]:
    """Square's discounts of ``order`` (all fixed amounts on single lines), and for each line the
    uids of the discounts applied to it.

    An order discount is split over the lines as the host splits the order's discounts for the
    tax: their sum over the line nets by the largest remainder, then each line's share over the
    discounts in proportion to their amounts. Zero shares are left out.
    """
    discounts: list[JSONDict] = []
    applied: list[list[str]] = [[] for _ in order.lines]

    def add(uid: str, name: str, amount: int, line: int) -> None:
        if amount <= 0:
            return
        discounts.append(
            {
                "uid": uid,
                "name": name[:DISCOUNT_NAME_MAX],
                "type": "FIXED_AMOUNT",
                "amount_money": _money(amount, order.currency),
                "scope": "LINE_ITEM",
            }
        )
        applied[line].append(uid)

    for n, line in enumerate(order.lines):
        for k, discount in enumerate(line.discounts):
            add(f"line-{n + 1}-discount-{k + 1}", discount.name, discount.amount, n)
    shares = apportion(sum(d.amount for d in order.discounts), [line_net(x) for x in order.lines])
    weights = [d.amount for d in order.discounts]
    for n, share in enumerate(shares):
        for k, part in enumerate(apportion(share, weights)):
            add(f"discount-{k + 1}-line-{n + 1}", order.discounts[k].name, part, n)
    return discounts, applied


def _service_charges(order: Order) -> tuple[list[JSONDict], list[JSONDict]]:
    """Square's service charges of ``order``, and the catalog taxes its taxable ones apply."""
    charges: list[JSONDict] = []
    taxes: dict[str, JSONDict] = {}
    for m, charge in enumerate(order.charges, 1):
        square: JSONDict = {
            "uid": f"charge-{m}",
            "name": charge.name[:SERVICE_CHARGE_NAME_MAX],
            "amount_money": _money(charge.amount, order.currency),
            "calculation_phase": "SUBTOTAL_PHASE",
            "taxable": charge.taxable,
        }
        if charge.taxable and charge.tax_id is not None:
            # A combined tax of the menu joins its Square taxes' ids with "+".
            uids = []
            for catalog_id in charge.tax_id.split("+"):
                uid = f"tax-{catalog_id}"[:60]
                taxes.setdefault(
                    uid, {"uid": uid, "catalog_object_id": catalog_id, "scope": "LINE_ITEM"}
                )
                uids.append(uid)
            square["applied_taxes"] = [{"tax_uid": uid} for uid in uids]
        charges.append(square)
    return charges, list(taxes.values())


def _line_item(
    number: int, line: OrderLine, variations: Mapping[str, str], discount_uids: list[str]
) -> JSONDict:
    if line.components:
        raise ValueError(
            f"line {number}: combo {line.product_id!r} cannot be sent: Square has no combos"
        )
    variation = line.variant_id or variations.get(line.product_id)
    if variation is None:
        raise ValueError(f"line {number}: product {line.product_id!r} names no variation")
    item: JSONDict = {
        "uid": f"line-{number}",
        "catalog_object_id": variation,
        "quantity": str(line.quantity),
    }
    modifiers = _flatten(line.modifiers)
    if modifiers:
        item["modifiers"] = [
            {"uid": f"line-{number}-mod-{m}", "catalog_object_id": option, "quantity": str(qty)}
            for m, (option, qty) in enumerate(modifiers, 1)
        ]
    if discount_uids:
        item["applied_discounts"] = [
            {"uid": f"{uid}-applied"[:60], "discount_uid": uid} for uid in discount_uids
        ]
    if line.note:
        item["note"] = line.note
    return item


def _flatten(modifiers: list[SelectedModifier]) -> list[tuple[str, int]]:
    """Selected modifiers and everything nested in them, depth first, as (id, quantity)."""
    flat: list[tuple[str, int]] = []
    for modifier in modifiers:
        flat.append((modifier.option_id, modifier.quantity))
        flat.extend(_flatten(modifier.modifiers))
    return flat


def _phone(raw: str | None) -> str | None:
    """A phone number as Square takes it: digits and ``+``, at most 17 characters."""
    if not raw:
        return None
    phone = "".join(ch for ch in raw if ch.isdigit() or ch == "+")
    return phone if 0 < len(phone) <= RECIPIENT_PHONE_MAX else None


def _recipient(order: Order) -> JSONDict:
    customer = order.customer
    recipient: JSONDict = {
        "display_name": (customer.name if customer and customer.name else f"Order {order.id}")
    }
    phone = _phone(customer.phone if customer is not None else None)
    if phone is not None:
        recipient["phone_number"] = phone
    return recipient


def _pickup(order: Order) -> JSONDict:
    details: JSONDict = {"recipient": _recipient(order)}
    if order.pickup_time is not None:
        details["schedule_type"] = "SCHEDULED"
        details["pickup_at"] = rfc3339(order.pickup_time)
    else:
        details["schedule_type"] = "ASAP"
    if order.customer_note:
        details["note"] = order.customer_note[:PICKUP_NOTE_MAX]
    return {"uid": "pickup", "type": "PICKUP", "state": "PROPOSED", "pickup_details": details}


def _delivery(order: Order, delivery: Delivery | None, prep: str) -> JSONDict:
    """The DELIVERY fulfillment: where to, by whom, when; the courier's code for the kitchen."""
    recipient = _recipient(order)
    details: JSONDict = {"recipient": recipient}
    when = (delivery.promised_at if delivery is not None else None) or order.pickup_time
    if when is not None:
        details["schedule_type"] = "SCHEDULED"
        details["deliver_at"] = rfc3339(when)
    else:
        details["schedule_type"] = "ASAP"
        details["prep_time_duration"] = prep
    notes = [order.customer_note] if order.customer_note else []
    if delivery is not None:
        if delivery.address is not None:
            address: JSONDict = {
                "address_line_1": delivery.address.street,
                "locality": delivery.address.city,
                "country": delivery.address.country,
            }
            if delivery.address.extra:
                address["address_line_2"] = delivery.address.extra
            if delivery.address.postal_code:
                address["postal_code"] = delivery.address.postal_code
            if delivery.address.region:
                address["administrative_district_level_1"] = delivery.address.region
            recipient["address"] = address
        if delivery.display_code:
            notes.insert(0, f"Courier code {delivery.display_code}")
        if delivery.aggregator_order_id:
            details["external_delivery_id"] = delivery.aggregator_order_id[
                :EXTERNAL_DELIVERY_ID_MAX
            ]
        if delivery.instructions:
            details["dropoff_notes"] = delivery.instructions[:DELIVERY_NOTE_MAX]
        courier = delivery.courier
        if courier is not None:
            provider = courier.provider or courier.name
            if provider:
                details["courier_provider_name"] = provider[:COURIER_PROVIDER_MAX]
            phone = _phone(courier.phone)
            if phone is not None:
                details["courier_support_phone_number"] = phone
            details["managed_delivery"] = bool(courier.provider and courier.provider != "own")
    if notes:
        details["note"] = " | ".join(notes)[:DELIVERY_NOTE_MAX]
    return {"uid": "delivery", "type": "DELIVERY", "state": "PROPOSED", "delivery_details": details}


# ---------------------------------------------------------------------------------------------
# Payments: each prepaid payment as an EXTERNAL one, with the tip
# ---------------------------------------------------------------------------------------------


def payment_idempotency_key(key: str, index: int = 0) -> str:
    """The CreatePayment idempotency key of payment ``index`` of the order with key ``key``
    (at most 45 characters; the first payment's is what the first release used)."""
    suffix = "-pay" if index == 0 else f"-pay{index + 1}"
    candidate = f"{key}{suffix}"
    if len(candidate) <= PAYMENT_KEY_MAX:
        return candidate
    digest = hashlib.sha256(f"{key}{suffix}".encode()).hexdigest()
    return ("pay-" + digest)[:PAYMENT_KEY_MAX]


def payment_request(
    *,
    amount: int,
    currency: str,
    square_order_id: str,
    key: str,
    order_id: str,
    square_location_id: str | None = None,
    provider_reference: str | None = None,
    tip: int = 0,
    external_type: str = "OTHER",
    source: str = ORDER_SOURCE_NAME,
) -> JSONDict:
    """A CreatePayment body recording money taken outside Square against a Square order.

    ``amount`` is what the payment pays, tip included: Square takes the tip apart, as
    ``tip_money``, and ``amount_money`` is the rest.
    """
    external: JSONDict = {"type": external_type, "source": source[:255]}
    if provider_reference:
        external["source_id"] = provider_reference[:255]
    body: JSONDict = {
        "idempotency_key": key,
        "source_id": "EXTERNAL",
        "amount_money": _money(amount - tip, currency),
        "order_id": square_order_id,
        "external_details": external,
        "autocomplete": True,
    }
    if tip:
        body["tip_money"] = _money(tip, currency)
    if len(order_id) <= REFERENCE_ID_MAX:
        body["reference_id"] = order_id
    if square_location_id is not None:
        body["location_id"] = square_location_id
    return body


def tips_of(order: Order) -> list[int]:
    """How the order's tip is split over its payments: prepaid ones carry it, first ones first,
    each at most its own amount. A tip left over (only AT_COUNTER payments to carry it) is taken
    at the till with the payment that is due."""
    left = order.tip
    tips = []
    for payment in order.payments:
        part = min(left, payment.amount) if payment.mode == PaymentMode.PREPAID else 0
        tips.append(part)
        left -= part
    return tips


def payments_for(
    order: Order, square_order_id: str, key: str, *, square_location_id: str | None = None
) -> list[JSONDict]:
    """The CreatePayment bodies recording the order's PREPAID payments, in order (none for an
    order paid at the counter).

    Each is ``source_id: "EXTERNAL"`` with ``external_details`` of the payment's method and
    provider; its idempotency key is derived from ours and its position
    (:func:`payment_idempotency_key`), so a retry records each payment once.
    """
    bodies = []
    for index, (payment, tip) in enumerate(zip(order.payments, tips_of(order), strict=True)):
        if payment.mode != PaymentMode.PREPAID:
            continue
        bodies.append(
            payment_request(
                amount=payment.amount,
                currency=order.currency,
                square_order_id=square_order_id,
                key=payment_idempotency_key(key, index),
                order_id=order.id,
                square_location_id=square_location_id,
                provider_reference=payment.reference,
                tip=tip,
                external_type=_external_type(payment),
                source=payment.provider or ORDER_SOURCE_NAME,
            )
        )
    return bodies


def _external_type(payment: Payment) -> str:
    return _EXTERNAL_TYPES.get(payment.method, "OTHER")


def missing_payment(square_order: JSONDict) -> JSONDict | None:
    """The CreatePayment body a PREPAID order of the first release still needs, from its
    metadata (the first release recorded its one payment amount there; this one keeps the
    payments it still has to record in the connection's state instead).

    Used when a lookup finds an order whose submission was cut short between CreateOrder and
    CreatePayment: the payment is the same request (same idempotency key) the submission would
    have sent. None when the order is not ours, not prepaid, or already has tenders.
    """
    metadata = square_order.get("metadata") or {}
    amount, key = metadata.get(META_PREPAID), metadata.get(META_KEY)
    if amount is None or key is None or square_order.get("tenders"):
        return None
    total = square_order.get("total_money") or {}
    return payment_request(
        amount=int(amount),
        currency=total.get("currency") or "USD",
        square_order_id=square_order["id"],
        key=payment_idempotency_key(key),
        order_id=metadata.get(META_ORDER_ID) or square_order.get("reference_id") or "",
        square_location_id=square_order.get("location_id"),
    )


# ---------------------------------------------------------------------------------------------
# Cancellation: the order CANCELED, with its fulfillment
# ---------------------------------------------------------------------------------------------


def cancel_request(square_order: JSONDict, reason: str) -> JSONDict:
    """The UpdateOrder body that cancels ``square_order``: its state ``CANCELED``, and its open
    fulfillments ``CANCELED`` with the reason (Square keeps 100 characters of it).

    The idempotency key names the order's version, so a resend of the same update is one update,
    while an update after the order changed is a new request (Square refuses the old version).
    """
    fulfillments = []
    for fulfillment in square_order.get("fulfillments") or []:
        if fulfillment.get("state") in ("COMPLETED", "CANCELED", "FAILED"):
            continue
        details_field = "delivery_details" if fulfillment.get("type") == "DELIVERY" else None
        details_field = details_field or "pickup_details"
        fulfillments.append(
            {
                "uid": fulfillment["uid"],
                "state": "CANCELED",
                details_field: {"cancel_reason": reason[:CANCEL_REASON_MAX]},
            }
        )
    order: JSONDict = {
        "location_id": square_order["location_id"],
        "version": square_order["version"],
        "state": "CANCELED",
    }
    if fulfillments:
        order["fulfillments"] = fulfillments
    return {
        "idempotency_key": f"{square_order['id']}-cancel-v{square_order['version']}",
        "order": order,
    }
