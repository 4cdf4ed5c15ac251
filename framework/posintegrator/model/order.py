"""The universal order: what the cloud asks a POS to make."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, ValidationInfo, field_validator

from posintegrator.model.base import Currency, Id, MinorUnits, UniversalModel, UtcDateTime
from posintegrator.model.menu import Channel


class OrderType(StrEnum):
    """How the customer gets the order."""

    TAKE_AWAY = "TAKE_AWAY"
    DINE_IN = "DINE_IN"
    DELIVERY = "DELIVERY"


class PaymentMode(StrEnum):
    """Whether the cloud has taken the money already."""

    PREPAID = "PREPAID"
    AT_COUNTER = "AT_COUNTER"


class Payment(UniversalModel):
    """How the order is paid: ``amount`` is what was paid (PREPAID) or is due (AT_COUNTER)."""

    mode: PaymentMode
    amount: MinorUnits
    reference: str | None = Field(default=None, max_length=200, description="Payment provider id.")


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
    note: str | None = Field(default=None, max_length=500)


class Customer(UniversalModel):
    """Who to call out or hand the order to."""

    name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=50)


class Order(UniversalModel):
    """An order from the cloud for one location.

    ``id`` is the cloud's order id: the idempotency key of the whole pipeline. All amounts are
    integer minor units of ``currency``.
    """

    id: Id
    location: Id
    channel: Channel = Channel.WEB
    type: OrderType
    currency: Currency
    lines: list[OrderLine] = Field(min_length=1, max_length=500)
    total: MinorUnits
    payment: Payment
    fiscalised: bool = Field(
        default=False, description="True when the cloud has already issued the fiscal receipt."
    )
    customer_note: str | None = Field(default=None, max_length=1000)
    pickup_time: UtcDateTime | None = Field(
        default=None,
        description="When the customer wants the order; None means as soon as possible.",
    )
    customer: Customer | None = None
    placed_at: UtcDateTime | None = None

    @field_validator("payment")
    @classmethod
    def _prepaid_covers_total(cls, payment: Payment, info: ValidationInfo) -> Payment:
        total = info.data.get("total")
        if payment.mode == PaymentMode.PREPAID and total is not None and payment.amount != total:
            raise ValueError(
                f"payment.amount {payment.amount} must equal total {total} for a PREPAID order"
            )
        return payment
