"""The universal order: what the cloud asks a POS to make, and what the customer pays for it.

The amounts of an order add up by one rule (:mod:`posintegrator.model.order_totals`, worked
through in docs/model.md): lines + charges - discounts + tip + tax = total, and the payments add
up to the total. An order that does not add up is refused when it is validated, each problem
named by its field (``discounts[1].amount``, ``payments``, ``total``).
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    Field,
    StringConstraints,
    ValidationError,
    ValidatorFunctionWrapHandler,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from posintegrator.model.base import (
    ChannelId,
    Currency,
    Id,
    MinorUnits,
    RatePpm,
    UniversalModel,
    UtcDateTime,
)
from posintegrator.model.order_totals import Problem, order_problems

#: A short, non-empty label (a discount's name, a table's name).
Label = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class OrderType(StrEnum):
    """How the customer gets the order."""

    TAKE_AWAY = "TAKE_AWAY"
    DINE_IN = "DINE_IN"
    DELIVERY = "DELIVERY"


class PaymentMode(StrEnum):
    """Whether the money was taken before the order reached the POS."""

    PREPAID = "PREPAID"
    """Taken by the cloud (or the aggregator): the POS must not charge it again, and the cloud
    refunds it if the order is not made."""
    AT_COUNTER = "AT_COUNTER"
    """Due at handover: at the counter, at the table, or to the courier."""


class PaymentMethod(StrEnum):
    """How a payment is (or will be) made."""

    CARD = "CARD"
    CASH = "CASH"
    GIFT_CARD = "GIFT_CARD"
    VOUCHER = "VOUCHER"
    WALLET = "WALLET"
    """A digital wallet or pay-by-link."""
    LOYALTY_POINTS = "LOYALTY_POINTS"
    AGGREGATOR = "AGGREGATOR"
    """Collected by the delivery platform, which pays the restaurant later."""
    ACCOUNT = "ACCOUNT"
    """Charged to a customer account and invoiced later."""
    OTHER = "OTHER"


class Payment(UniversalModel):
    """One payment of an order: ``amount`` was paid (PREPAID) or is due (AT_COUNTER)."""

    mode: PaymentMode
    amount: MinorUnits
    method: PaymentMethod = PaymentMethod.OTHER
    provider: str | None = Field(
        default=None, max_length=100, description="Who processed it: a PSP, an aggregator."
    )
    reference: str | None = Field(
        default=None, max_length=200, description="The provider's id of the payment."
    )


class DiscountKind(StrEnum):
    """Why a discount was given."""

    PROMOTION = "PROMOTION"
    """A promo code or a campaign."""
    LOYALTY = "LOYALTY"
    """A loyalty reward."""
    STAFF = "STAFF"
    """A staff meal."""
    COMPENSATION = "COMPENSATION"
    """Goodwill after a complaint."""
    OTHER = "OTHER"


class ChargeKind(StrEnum):
    """What a charge is for."""

    DELIVERY_FEE = "DELIVERY_FEE"
    SERVICE_CHARGE = "SERVICE_CHARGE"
    PACKAGING_FEE = "PACKAGING_FEE"
    BAG_FEE = "BAG_FEE"
    SMALL_ORDER_FEE = "SMALL_ORDER_FEE"
    OTHER = "OTHER"


class Discount(UniversalModel):
    """An amount taken off a line (in the line's ``discounts``) or off the order.

    ``amount`` is what it takes off, always. A percentage discount also gives its ``rate_ppm``,
    and its amount must then be that rate of its base, rounded half up (see docs/model.md). A
    discount lowers the price, so it lowers the tax computed on that price too.
    """

    kind: DiscountKind
    name: Label
    amount: MinorUnits
    rate_ppm: RatePpm | None = Field(
        default=None, description="The percentage, in parts per million, when it is one."
    )
    code: str | None = Field(
        default=None, max_length=100, description="The promo code or reward id, if any."
    )
    pos_id: str | None = Field(
        default=None, max_length=200, description="The POS's id of this discount, if it has one."
    )


class Charge(UniversalModel):
    """An amount added to the order: a delivery fee, a service charge, a packaging fee.

    ``amount`` is what it adds; a percentage charge also gives its ``rate_ppm`` of the items
    after discounts, rounded half up. A ``taxable`` charge names the menu tax that applies to it
    in ``tax_id``; an exclusive tax on it is part of the order's ``tax``.
    """

    kind: ChargeKind
    name: Label
    amount: MinorUnits
    rate_ppm: RatePpm | None = Field(
        default=None, description="The percentage, in parts per million, when it is one."
    )
    taxable: bool = False
    tax_id: Id | None = Field(
        default=None, description="The menu's tax that applies to a taxable charge."
    )
    pos_id: str | None = Field(
        default=None, max_length=200, description="The POS's id of this charge, if it has one."
    )


class SelectedModifier(UniversalModel):
    """A chosen modifier option, with the options chosen inside it (to any depth)."""

    option_id: Id
    group_id: Id | None = None
    quantity: int = Field(default=1, ge=1, le=999)
    modifiers: list[SelectedModifier] = Field(default_factory=list)


class ComboComponent(UniversalModel):
    """The product chosen for one combo slot, customised with its own modifiers."""

    slot_id: Id
    product_id: Id
    variant_id: Id | None = None
    modifiers: list[SelectedModifier] = Field(default_factory=list)


class OrderLine(UniversalModel):
    """One product (or combo) the customer ordered, ``quantity`` times."""

    product_id: Id
    variant_id: Id | None = None
    quantity: int = Field(ge=1, le=999)
    unit_price: MinorUnits = Field(description="Price of one unit including its modifiers.")
    modifiers: list[SelectedModifier] = Field(default_factory=list)
    components: list[ComboComponent] = Field(default_factory=list)
    discounts: list[Discount] = Field(
        default_factory=list,
        max_length=10,
        description="Discounts on this line only, taken off unit_price x quantity.",
    )
    note: str | None = Field(default=None, max_length=500)


class Customer(UniversalModel):
    """Who to call out or hand the order to."""

    name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=50)


class Address(UniversalModel):
    """Where a delivery goes."""

    street: str = Field(min_length=1, max_length=200, description="Street and house number.")
    extra: str | None = Field(default=None, max_length=200, description="Flat, floor, building.")
    city: str = Field(min_length=1, max_length=100)
    postal_code: str | None = Field(default=None, max_length=20)
    region: str | None = Field(default=None, max_length=100)
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 code.")


class Coordinates(UniversalModel):
    """A point on the map, in degrees (WGS 84)."""

    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class Courier(UniversalModel):
    """Who brings the order to the customer."""

    name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=50)
    provider: str | None = Field(
        default=None, max_length=100, description="Whose courier: the aggregator's, or 'own'."
    )


class Delivery(UniversalModel):
    """How a DELIVERY order reaches the customer. An aggregator that delivers with its own
    couriers may give no address: the courier and the display code are what the kitchen needs."""

    address: Address | None = None
    coordinates: Coordinates | None = None
    instructions: str | None = Field(default=None, max_length=1000)
    courier: Courier | None = None
    aggregator_order_id: str | None = Field(
        default=None, max_length=200, description="The delivery platform's own id of the order."
    )
    display_code: str | None = Field(
        default=None,
        max_length=50,
        description="The short code the courier shows at the counter to collect the order.",
    )
    promised_at: UtcDateTime | None = Field(
        default=None, description="When the customer was promised the order."
    )


class Table(UniversalModel):
    """Where a DINE_IN order is served."""

    name: str = Field(min_length=1, max_length=50, description="The table as the staff call it.")
    covers: int | None = Field(default=None, ge=1, le=999, description="How many guests.")
    pos_id: str | None = Field(default=None, max_length=200)


class FiscalDocument(UniversalModel):
    """The fiscal receipt the cloud issued for the order (then ``fiscalised`` is true)."""

    receipt_number: str = Field(min_length=1, max_length=100)
    issued_at: UtcDateTime | None = None
    device_id: str | None = Field(
        default=None, max_length=200, description="The fiscal printer's or service's id."
    )
    service: str | None = Field(
        default=None, max_length=100, description="The fiscal service that signed it."
    )
    signature: str | None = Field(
        default=None,
        max_length=2000,
        description="Verification data of the receipt (its signature or QR code content).",
    )


class Order(UniversalModel):
    """An order from the cloud for one location.

    ``id`` is the cloud's order id: the idempotency key of the whole pipeline. All amounts are
    integer minor units of ``currency``; they add up as :mod:`~posintegrator.model.order_totals`
    says, or the order is refused.
    """

    id: Id
    location: Id
    channel: ChannelId = "web"
    type: OrderType
    currency: Currency
    lines: list[OrderLine] = Field(min_length=1, max_length=500)
    discounts: list[Discount] = Field(
        default_factory=list, max_length=20, description="Discounts on the whole order."
    )
    charges: list[Charge] = Field(default_factory=list, max_length=20)
    tip: MinorUnits = 0
    tax: MinorUnits = Field(
        default=0,
        description="Tax added on top of the prices (taxes the menu says are not "
        "included in them); 0 where prices include every tax.",
    )
    total: MinorUnits
    payments: list[Payment] = Field(min_length=1, max_length=10)
    fiscalised: bool = Field(
        default=False, description="True when the cloud has already issued the fiscal receipt."
    )
    fiscal: FiscalDocument | None = None
    customer_note: str | None = Field(default=None, max_length=1000)
    pickup_time: UtcDateTime | None = Field(
        default=None,
        description="When the customer wants the order; None means as soon as possible.",
    )
    customer: Customer | None = None
    delivery: Delivery | None = None
    table: Table | None = None
    placed_at: UtcDateTime | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _adds_up(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Order:
        """Refuse an order whose amounts do not add up, naming each field at fault."""
        if isinstance(data, dict) and "payment" in data and "payments" not in data:
            raise _refusal(
                [
                    (
                        ("payment",),
                        "replaced by payments, a list of payments (one or more); see "
                        "docs/changelog.md",
                    )
                ]
            )
        # On assignment (validate_assignment), ``data`` is the order itself and the handler
        # sets the new value in place: keep what it was, to put it back if the result is refused.
        before = (
            (dict(data.__dict__), set(data.model_fields_set)) if isinstance(data, Order) else None
        )
        order: Order = handler(data)
        problems = order_problems(order) + _misplaced(order)
        if problems:
            if before is not None:
                order.__dict__.clear()
                order.__dict__.update(before[0])
                order.__pydantic_fields_set__ = before[1]
            raise _refusal(problems)
        return order


def _misplaced(order: Order) -> list[Problem]:
    """Details that do not fit the order's type, and a fiscal document on an order that says it
    has none."""
    problems: list[Problem] = []
    if order.delivery is not None and order.type != OrderType.DELIVERY:
        problems.append(
            (("delivery",), f"only a DELIVERY order has delivery details, not {order.type}")
        )
    if order.table is not None and order.type != OrderType.DINE_IN:
        problems.append((("table",), f"only a DINE_IN order has a table, not {order.type}"))
    if order.fiscal is not None and not order.fiscalised:
        problems.append(
            (("fiscalised",), "must be true when a fiscal document is given (the cloud issued it)")
        )
    return problems


def _refusal(problems: list[Problem]) -> ValidationError:
    """A validation error with one entry per problem, each at its own field."""
    return ValidationError.from_exception_data(
        "Order",
        [
            InitErrorDetails(
                type=PydanticCustomError("order_amounts", "{reason}", {"reason": reason}),
                loc=loc,
                input=None,
            )
            for loc, reason in problems
        ],
    )


def order_content_hash(order: Order) -> str:
    """A hash of the order's meaning: independent of key order, whitespace and defaults.

    The model serialises its fields in a fixed order, and fields left at their default are left
    out, so its JSON is a canonical form of the order, and a field added to the model with a
    default does not change the hash of an order that does not use it.
    """
    return hashlib.sha256(order.model_dump_json(exclude_defaults=True).encode()).hexdigest()
