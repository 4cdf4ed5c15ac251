"""Tryton <-> universal model: pure functions over the records Tryton's JSON-RPC returns.

Menu: one universal product per ``product.template`` (``pos_id`` = the template id) with one
variant per salable ``product.product`` (``pos_id`` = the product id), priced from
``gross_price_used`` at a sale point whose prices include tax (else ``list_price_used``), in one
price list. Categories are the non-accounting ``product.category`` records (nesting kept); taxes
are the customer taxes of each product's accounting category.

Orders: each line becomes a ``sale.point.sale.line`` priced with the order's own unit price (what
the customer was shown and paid), the other of list and gross price derived the way Tryton
derives it, so the sale's total equals the order's.

Status: a sale's ``state``: open -> ACCEPTED, done and posted -> COMPLETED, cancelled ->
CANCELLED.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from posintegrator.model import (
    Category,
    Menu,
    Order,
    OrderStatus,
    OrderType,
    PaymentMode,
    PriceList,
    Product,
    StatusEvent,
    Tax,
    Variant,
)

JSONDict = dict[str, Any]

PRICE_LIST_ID = "tryton"
#: Tryton's price precision (``product.price_digits``): unit prices carry 4 decimals.
PRICE_QUANTUM = Decimal("0.0001")
#: The unit every Tryton database defines for pieces; other units are named in variant names.
PIECE_SYMBOL = "u"

#: Fields read per ``product.product`` for the menu and for pricing an order.
PRODUCT_FIELDS = (
    "template",
    "template.name",
    "template.categories",
    "template.account_category.customer_taxes_used",
    "code",
    "description",
    "gross_price_used",
    "list_price_used",
    "sale_uom.symbol",
    "salable",
)
TAX_FIELDS = ("name", "type", "rate", "amount", "childs", "update_unit_price")
POINT_FIELDS = (
    "name",
    "tax_included",
    "company",
    "company.timezone",
    "company.currency.code",
    "company.currency.digits",
)
CATEGORY_FIELDS = ("name", "parent")

SALE_STATUS = {
    "open": OrderStatus.ACCEPTED,
    "done": OrderStatus.COMPLETED,
    "posted": OrderStatus.COMPLETED,
    "cancelled": OrderStatus.CANCELLED,
}

_TYPE_LABELS = {
    OrderType.TAKE_AWAY: "Take-away",
    OrderType.DINE_IN: "Dine-in",
    OrderType.DELIVERY: "Delivery",
}


# --- ids ---------------------------------------------------------------------------------------


def product_id(template_id: int) -> str:
    """Our id of a Tryton product template."""
    return f"product-{template_id}"


def variant_id(product_id_: int) -> str:
    """Our id of a Tryton product (a variant of a template)."""
    return f"variant-{product_id_}"


def category_id(tryton_id: int) -> str:
    """Our id of a Tryton product category."""
    return f"category-{tryton_id}"


def tryton_id(our_id: str, prefix: str) -> int:
    """The Tryton id inside one of our ids (``variant-12`` -> 12).

    :raises ValueError: the id is not of that kind.
    """
    head, _, number = our_id.partition("-")
    if head != prefix or not number.isdigit():
        raise ValueError(f"{our_id!r} is not a Tryton {prefix} id")
    return int(number)


# --- taxes and prices --------------------------------------------------------------------------


@dataclass(frozen=True)
class TaxRule:
    """One Tryton customer tax, as far as pricing needs it."""

    id: int
    name: str
    kind: str
    """``percentage``, ``fixed`` or ``none``."""
    rate: Decimal
    amount: Decimal
    simple: bool
    """No child taxes and no effect on the unit price of later taxes: priced exactly here."""

    @classmethod
    def from_tryton(cls, record: Mapping[str, Any]) -> TaxRule:
        """Read an ``account.tax`` record (fields :data:`TAX_FIELDS`)."""
        return cls(
            id=int(record["id"]),
            name=str(record["name"]),
            kind=str(record["type"]),
            rate=Decimal(record.get("rate") or 0),
            amount=Decimal(record.get("amount") or 0),
            simple=not record.get("childs") and not record.get("update_unit_price"),
        )


def _priceable(taxes: Sequence[TaxRule]) -> bool:
    return all(t.simple and t.kind in ("percentage", "fixed", "none") for t in taxes)


def unit_prices(
    unit_price: Decimal, taxes: Sequence[TaxRule], *, tax_included: bool
) -> tuple[Decimal, Decimal]:
    """``(unit_list_price, unit_gross_price)`` of a sale line whose price is ``unit_price``.

    At a sale point whose prices include tax, ``unit_price`` is the gross price and the list
    price is derived as Tryton's ``Tax.reverse_compute`` does; otherwise it is the list price and
    the gross price adds the taxes, as the sale line's ``on_change_product`` does. Both are
    rounded to Tryton's price precision.

    :raises ValueError: a tax is not one this function can price (child taxes, taxes that
        change the unit price of others).
    """
    if not _priceable(taxes):
        names = ", ".join(t.name for t in taxes if not t.simple)
        raise ValueError(f"taxes {names} are not supported (child taxes or unit price updates)")
    rate = sum((t.rate for t in taxes if t.kind == "percentage"), Decimal(0))
    fixed = sum((t.amount for t in taxes if t.kind == "fixed"), Decimal(0))
    if tax_included:
        gross = unit_price
        listed = ((gross - fixed) / (1 + rate)).quantize(PRICE_QUANTUM, ROUND_HALF_EVEN)
        return listed, gross
    listed = unit_price
    gross = (listed + listed * rate + fixed).quantize(PRICE_QUANTUM, ROUND_HALF_EVEN)
    return listed, gross


def to_minor(amount: Decimal, digits: int) -> int:
    """An amount in minor units of a currency with ``digits`` decimals (half-even, as Tryton)."""
    return int((amount * 10**digits).quantize(Decimal(1), ROUND_HALF_EVEN))


def from_minor(amount: int, digits: int) -> Decimal:
    """Minor units back to a Tryton amount."""
    return Decimal(amount).scaleb(-digits)


# --- menu --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PointInfo:
    """What the menu and the orders need to know of a sale point."""

    id: int
    name: str
    tax_included: bool
    company: int
    timezone: str
    currency: str
    digits: int

    @classmethod
    def from_tryton(cls, record: Mapping[str, Any]) -> PointInfo:
        """Read a ``sale.point`` record (fields :data:`POINT_FIELDS`)."""
        company = record["company."]
        currency = company["currency."]
        return cls(
            id=int(record["id"]),
            name=str(record["name"]),
            tax_included=bool(record["tax_included"]),
            company=int(record["company"]),
            timezone=str(company.get("timezone") or "UTC"),
            currency=str(currency["code"]),
            digits=int(currency["digits"]),
        )


def taxes_of(product: Mapping[str, Any], taxes: Mapping[int, TaxRule]) -> list[TaxRule]:
    """The customer taxes of a ``product.product`` record (via its accounting category)."""
    category = (product.get("template.") or {}).get("account_category.") or {}
    return [taxes[i] for i in category.get("customer_taxes_used") or [] if i in taxes]


def tax_ids(products: Iterable[Mapping[str, Any]]) -> list[int]:
    """Every customer tax id the products use, sorted."""
    found: set[int] = set()
    for product in products:
        category = (product.get("template.") or {}).get("account_category.") or {}
        found.update(int(i) for i in category.get("customer_taxes_used") or [])
    return sorted(found)


def _universal_tax(rules: Sequence[TaxRule], tax_included: bool) -> Tax | None:
    """One universal tax for a product's set of Tryton taxes (rates add up), or None when the
    set cannot be expressed as one rate (a fixed amount)."""
    if not rules:
        return None
    if not _priceable(rules):
        names = ", ".join(r.name for r in rules if not r.simple)
        raise ValueError(f"taxes {names} are not supported (child taxes or unit price updates)")
    if any(r.kind == "fixed" for r in rules):
        raise ValueError("taxes of a fixed amount cannot be expressed as a rate")
    rate = sum((r.rate for r in rules if r.kind == "percentage"), Decimal(0))
    ids = "+".join(str(r.id) for r in rules)
    return Tax(
        id=f"tax-{ids}",
        pos_id=ids.replace("+", ","),
        name=" + ".join(r.name for r in rules),
        rate_ppm=int((rate * 1_000_000).quantize(Decimal(1), ROUND_HALF_EVEN)),
        inclusive=tax_included,
    )


def _variant_name(product: Mapping[str, Any], alone: bool) -> str:
    """A variant's name: its description's first line, its code, or "Regular" when alone;
    the sale unit is added when it is not pieces."""
    description = str(product.get("description") or "").strip().splitlines()
    name = description[0] if description else ""
    if not name:
        name = "Regular" if alone else str(product.get("code") or f"#{product['id']}")
    unit = (product.get("sale_uom.") or {}).get("symbol")
    if unit and unit != PIECE_SYMBOL:
        name = f"{name} (per {unit})"
    return name


@dataclass
class MenuTranslation:
    """A translated menu, and the products left out of it with the reason."""

    menu: Menu
    skipped: dict[str, str]
    """Tryton product id -> why it is not on the menu."""


def menu_from_tryton(
    location: str,
    point: PointInfo,
    categories: Sequence[Mapping[str, Any]],
    products: Sequence[Mapping[str, Any]],
    taxes: Mapping[int, TaxRule],
) -> MenuTranslation:
    """The universal menu of a sale point.

    :param categories: ``product.category`` records that are not accounting categories.
    :param products: salable, active ``product.product`` records (fields :data:`PRODUCT_FIELDS`).
    :param taxes: the customer taxes the products use, by id.
    """
    known = {int(c["id"]) for c in categories}
    ordered = sorted(categories, key=lambda c: (str(c["name"]).casefold(), int(c["id"])))
    menu_categories = [
        Category(
            id=category_id(int(c["id"])),
            pos_id=str(c["id"]),
            name=str(c["name"]),
            parent_id=category_id(int(c["parent"])) if c.get("parent") in known else None,
            sort=index,
        )
        for index, c in enumerate(ordered)
    ]
    by_template: dict[int, list[Mapping[str, Any]]] = {}
    for product in products:
        by_template.setdefault(int(product["template"]), []).append(product)

    menu_taxes: dict[str, Tax] = {}
    menu_products: list[Product] = []
    skipped: dict[str, str] = {}
    for template, variants in sorted(by_template.items()):
        first = variants[0]
        template_record = first.get("template.") or {}
        try:
            tax = _universal_tax(taxes_of(first, taxes), point.tax_included)
        except ValueError as exc:
            skipped.update({str(v["id"]): str(exc) for v in variants})
            continue
        priced = []
        for variant in variants:
            price = variant.get("gross_price_used" if point.tax_included else "list_price_used")
            if price is None:
                skipped[str(variant["id"])] = "no price"
                continue
            priced.append(
                Variant(
                    id=variant_id(int(variant["id"])),
                    pos_id=str(variant["id"]),
                    name=_variant_name(variant, alone=len(variants) == 1),
                    prices={PRICE_LIST_ID: to_minor(Decimal(price), point.digits)},
                )
            )
        if not priced:
            continue
        if tax is not None:
            menu_taxes[tax.id] = tax
        description = str(first.get("description") or "").strip() if len(variants) == 1 else ""
        in_categories = [int(c) for c in template_record.get("categories") or [] if c in known]
        menu_products.append(
            Product(
                id=product_id(template),
                pos_id=str(template),
                name=str(template_record.get("name") or f"Product {template}"),
                description=description or None,
                category_ids=[category_id(c) for c in in_categories],
                variants=priced,
                tax_id=tax.id if tax is not None else None,
            )
        )
    menu = Menu(
        location=location,
        currency=point.currency,
        timezone=point.timezone,
        price_lists=[PriceList(id=PRICE_LIST_ID, name=point.name)],
        taxes=sorted(menu_taxes.values(), key=lambda t: t.id),
        categories=menu_categories,
        products=menu_products,
    )
    return MenuTranslation(menu=menu, skipped=skipped)


# --- orders ------------------------------------------------------------------------------------


def named_products(order: Order) -> tuple[list[int], list[int]]:
    """The Tryton ids an order names: products (from variant ids) and templates (of lines that
    name no variant, to be resolved to their only variant). Both sorted, unique.

    :raises ValueError: an id is not one of this plugin's.
    """
    products: set[int] = set()
    templates: set[int] = set()
    for line in order.lines:
        if line.variant_id is None:
            templates.add(tryton_id(line.product_id, "product"))
        else:
            products.add(tryton_id(line.variant_id, "variant"))
    return sorted(products), sorted(templates)


@dataclass(frozen=True)
class SaleLine:
    """A ``sale.point.sale.line`` to create."""

    product: int
    quantity: int
    unit_list_price: Decimal
    unit_gross_price: Decimal

    def values(self) -> JSONDict:
        """The line's values for ``create``."""
        return {
            "product": self.product,
            "quantity": self.quantity,
            "unit_list_price": self.unit_list_price,
            "unit_gross_price": self.unit_gross_price,
        }


def sale_lines(
    order: Order,
    point: PointInfo,
    products: Mapping[int, Mapping[str, Any]],
    taxes: Mapping[int, TaxRule],
) -> list[SaleLine]:
    """The sale lines of an order, priced with the order's unit prices.

    :param products: the active ``product.product`` records the order names, by id: those of
        its variants, and every active variant of the products of lines that name none.
    :raises ValueError: a line cannot be sold as it is (a product that is not active or not
        salable, a product named without a variant that has several, modifiers or combo
        components, which Tryton's sale point has no place for).
    """
    lines = []
    for number, line in enumerate(order.lines, start=1):
        where = f"line {number} ({line.product_id})"
        if line.modifiers or line.components:
            raise ValueError(f"{where}: Tryton sale lines take no modifiers or combo components")
        if line.variant_id is None:
            template = tryton_id(line.product_id, "product")
            only = [i for i, p in products.items() if int(p["template"]) == template]
            if len(only) != 1:
                raise ValueError(f"{where} names no variant and has {len(only)} active ones")
            tryton_product = only[0]
        else:
            tryton_product = tryton_id(line.variant_id, "variant")
        record = products.get(tryton_product)
        if record is None or not record.get("salable"):
            raise ValueError(f"{where}: Tryton product {tryton_product} is not active and salable")
        if product_id(int(record["template"])) != line.product_id:
            raise ValueError(f"{where}: Tryton product {tryton_product} is not a variant of it")
        listed, gross = unit_prices(
            from_minor(line.unit_price, point.digits),
            taxes_of(record, taxes),
            tax_included=point.tax_included,
        )
        lines.append(SaleLine(tryton_product, line.quantity, listed, gross))
    return lines


def sale_total(lines: Sequence[SaleLine], digits: int) -> Decimal:
    """The total Tryton computes for a sale of these lines: each line's gross amount rounded to
    the currency, summed."""
    quantum = Decimal(1).scaleb(-digits)
    return sum(
        (
            (Decimal(line.quantity) * line.unit_gross_price).quantize(quantum, ROUND_HALF_EVEN)
            for line in lines
        ),
        Decimal(0),
    )


def note_message(marker: str, order: Order, digits: int) -> str:
    """The note put on an order's sale: our reference first, then what the cashier needs."""
    text = [marker]
    text.append(f"{_TYPE_LABELS[order.type]} order from the {order.channel} channel")
    for payment in order.payments:
        amount = f"{from_minor(payment.amount, digits)} {order.currency}"
        if payment.mode == PaymentMode.PREPAID:
            reference = f" (reference {payment.reference})" if payment.reference else ""
            text.append(f"Prepaid {amount}{reference}")
        else:
            text.append(f"To pay at the counter: {amount}")
    if order.pickup_time is not None:
        text.append(f"Wanted at {order.pickup_time.isoformat(timespec='minutes')}")
    if order.customer is not None:
        who = ", ".join(part for part in (order.customer.name, order.customer.phone) if part)
        if who:
            text.append(f"Customer: {who}")
    if order.customer_note:
        text.append(f"Note: {order.customer_note}")
    for number, line in enumerate(order.lines, start=1):
        if line.note:
            text.append(f"Line {number}: {line.note}")
    return "\n".join(text)


# --- status ------------------------------------------------------------------------------------


def status_of_sale(state: str) -> OrderStatus | None:
    """The order status of a sale state; None for a state this plugin does not know."""
    return SALE_STATUS.get(state)


def status_event(sale: Mapping[str, Any]) -> StatusEvent | None:
    """A status event from a ``sale.point.sale`` record (``state``, ``write_date``,
    ``create_date``), dated by its last change; None for an unknown state."""
    status = status_of_sale(str(sale["state"]))
    if status is None:
        return None
    changed = sale.get("write_date") or sale.get("create_date")
    occurred = changed if isinstance(changed, dt.datetime) else dt.datetime.now(dt.UTC)
    return StatusEvent(
        pos_order_id=str(sale["id"]),
        status=status,
        occurred_at=occurred,
        source="pos:tryton",
        pos_event_id=f"{sale['id']}:{sale['state']}:{occurred.isoformat()}",
    )
