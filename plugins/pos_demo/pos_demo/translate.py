"""Pure translation between DemoPOS documents and the universal model.

No I/O here: every function takes a decoded JSON document (or a universal model object) and
returns the other side, so the whole mapping is testable against recorded fixtures. Money stays
in integer cents on both sides.

How the DemoPOS menu fields land in the universal menu:

* ``names``/``descriptions`` (language -> text) become ``translations`` (language -> ``Text``);
* ``allergens`` (``contains``/``may_contain``, the same snake_case codes) become ``Allergens``;
  an allergen code outside the EU list fails the translation (a ``ValueError``): a safety
  declaration is never silently dropped;
* ``tags`` become ``DietaryTag`` values; tags the model does not know (DemoPOS marketing tags
  such as ``new``) are dropped rather than failing the whole menu;
* ``kcal`` becomes ``Nutrition(energy_kcal=...)`` per serving;
* ``hours`` (``days``/``from``/``to``, in the location's time zone) become
  ``Availability.schedule``, an item's ``channels`` become ``Availability.channels``;
* an item's ``option_prices`` become ``Product.option_prices``;
* the menu's ``timezone`` becomes ``Menu.timezone``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from posintegrator.model import (
    Allergen,
    Allergens,
    Availability,
    Category,
    Charge,
    ComboChoice,
    ComboSlot,
    Delivery,
    DietaryTag,
    Discount,
    Menu,
    ModifierGroup,
    ModifierOption,
    Nutrition,
    OptionPrice,
    Order,
    OrderLine,
    OrderStatus,
    OrderType,
    Payment,
    PaymentMode,
    PriceList,
    Product,
    SelectedModifier,
    StatusEvent,
    Tax,
    Text,
    TimeSlot,
    Variant,
)
from posintegrator.model.availability import AvailabilityChange

JSONDict = dict[str, Any]

#: ``source`` of every status event this plugin produces.
EVENT_SOURCE = "pos:demo"

#: Suffix of the single variant a combo gets (DemoPOS combos have one price, no sizes).
COMBO_VARIANT_SUFFIX = ":std"

_ORDER_TYPES: dict[OrderType, str] = {
    OrderType.TAKE_AWAY: "takeaway",
    OrderType.DINE_IN: "eat_in",
    OrderType.DELIVERY: "delivery",
}

_STATES: dict[str, OrderStatus] = {
    "accepted": OrderStatus.ACCEPTED,
    "preparing": OrderStatus.IN_PREPARATION,
    "ready": OrderStatus.READY,
    "picked_up": OrderStatus.COMPLETED,
    "cancelled": OrderStatus.CANCELLED,
    "rejected": OrderStatus.REJECTED,
}


# ---------------------------------------------------------------------------------------------
# Menu: DemoPOS -> universal
# ---------------------------------------------------------------------------------------------


def menu_from_pos(native: JSONDict, location: str) -> Menu:
    """Translate a DemoPOS ``GET /menu`` document into the universal menu of ``location``."""
    return Menu(
        location=location,
        currency=native["currency"],
        timezone=native.get("timezone") or "UTC",
        price_lists=[_price_list(level) for level in native["price_levels"]],
        taxes=[_tax(tax) for tax in native.get("taxes", [])],
        categories=[_category(category) for category in native.get("categories", [])],
        products=[_product(item) for item in native.get("items", [])]
        + [_combo(combo) for combo in native.get("combos", [])],
        modifier_groups=[_modifier_group(group) for group in native.get("modifier_groups", [])],
        source_updated_at=_instant(native.get("updated_at")),
    )


def _instant(value: str | None) -> datetime | None:
    """Parse an ISO-8601 timestamp of the POS; None stays None."""
    return None if value is None else datetime.fromisoformat(value)


def _prices(native: JSONDict) -> dict[str, int]:
    """Copy a per-price-level price map (already integer cents, keyed by price-level id)."""
    return {str(level): int(cents) for level, cents in native.items()}


def _price_list(level: JSONDict) -> PriceList:
    return PriceList(
        id=level["id"], pos_id=level["id"], name=level["name"], channels=level.get("channels", [])
    )


def _tax(tax: JSONDict) -> Tax:
    return Tax(
        id=tax["id"],
        pos_id=tax["id"],
        name=tax["name"],
        rate_ppm=tax["rate_bp"] * 100,
        inclusive=tax.get("inclusive", True),
    )


def _category(category: JSONDict) -> Category:
    return Category(
        id=category["id"],
        pos_id=category["id"],
        name=category["name"],
        translations=_translations(category),
        parent_id=category.get("parent"),
        sort=category.get("sort", 0),
        image_url=category.get("image"),
        availability=_availability(category),
    )


def _translations(entity: JSONDict) -> dict[str, Text]:
    """Merge the per-language ``names`` and ``descriptions`` of an entity into translations."""
    names: JSONDict = entity.get("names") or {}
    descriptions: JSONDict = entity.get("descriptions") or {}
    return {
        language: Text(name=names.get(language), description=descriptions.get(language))
        for language in sorted(names.keys() | descriptions.keys())
    }


def _allergens(entity: JSONDict) -> Allergens:
    """Declared allergens; DemoPOS uses the same snake_case codes as :class:`Allergen`.

    :raises ValueError: for a code outside the EU list, rather than dropping a declaration.
    """
    allergens: JSONDict = entity.get("allergens") or {}
    return Allergens(
        contains=[Allergen(code) for code in allergens.get("contains", [])],
        may_contain=[Allergen(code) for code in allergens.get("may_contain", [])],
    )


_KNOWN_TAGS = frozenset(tag.value for tag in DietaryTag)


def _tags(entity: JSONDict) -> list[DietaryTag]:
    """Dietary tags; tags the universal model does not know (e.g. ``new``) are dropped."""
    return [DietaryTag(tag) for tag in entity.get("tags") or [] if tag in _KNOWN_TAGS]


def _nutrition(entity: JSONDict) -> Nutrition | None:
    """Energy per serving from ``kcal``; None when the POS gives none."""
    kcal = entity.get("kcal")
    return None if kcal is None else Nutrition(energy_kcal=int(kcal))


def _schedule(hours: list[JSONDict] | None) -> list[TimeSlot]:
    """Serving hours (``days`` 0 = Monday, ``from``/``to`` HH:MM local) as time slots."""
    return [
        TimeSlot(days=list(window["days"]), start=window["from"], end=window["to"])
        for window in hours or []
    ]


def _availability(entity: JSONDict) -> Availability:
    """Availability of an item, option, combo or category (``available`` defaults to true)."""
    return Availability(
        available=entity.get("available", True),
        unavailable_until=_instant(entity.get("unavailable_until")),
        reason=entity.get("unavailable_reason"),
        schedule=_schedule(entity.get("hours")),
        channels=list(entity.get("channels") or []),
    )


def _option_price(override: JSONDict) -> OptionPrice:
    return OptionPrice(
        group_id=override["group"],
        option_id=override["option"],
        prices=_prices(override["prices"]),
    )


def _product(item: JSONDict) -> Product:
    category = item.get("category")
    return Product(
        id=item["id"],
        pos_id=item["id"],
        name=item["name"],
        description=item.get("description"),
        translations=_translations(item),
        category_ids=[category] if category else [],
        variants=[
            Variant(
                id=size["id"],
                pos_id=size["id"],
                name=size["name"],
                translations=_translations(size),
                prices=_prices(size["prices"]),
            )
            for size in item["sizes"]
        ],
        modifier_group_ids=list(item.get("modifier_groups", [])),
        option_prices=[_option_price(override) for override in item.get("option_prices", [])],
        tax_id=item.get("tax"),
        image_url=item.get("image"),
        availability=_availability(item),
        allergens=_allergens(item),
        tags=_tags(item),
        nutrition=_nutrition(item),
    )


def _combo(combo: JSONDict) -> Product:
    category = combo.get("category")
    return Product(
        id=combo["id"],
        pos_id=combo["id"],
        name=combo["name"],
        description=combo.get("description"),
        translations=_translations(combo),
        category_ids=[category] if category else [],
        variants=[
            Variant(
                id=f"{combo['id']}{COMBO_VARIANT_SUFFIX}",
                name="Standard",
                prices=_prices(combo["prices"]),
            )
        ],
        slots=[_slot(slot) for slot in combo["slots"]],
        image_url=combo.get("image"),
        availability=_availability(combo),
    )


def _slot(slot: JSONDict) -> ComboSlot:
    return ComboSlot(
        id=slot["id"],
        pos_id=slot["id"],
        name=slot["name"],
        translations=_translations(slot),
        min=slot["min"],
        max=slot["max"],
        choices=[
            ComboChoice(
                product_id=choice["item"],
                variant_id=choice.get("size"),
                upcharge=_prices(choice.get("upcharge", {})),
            )
            for choice in slot["choices"]
        ],
    )


def _modifier_group(group: JSONDict) -> ModifierGroup:
    return ModifierGroup(
        id=group["id"],
        pos_id=group["id"],
        name=group["name"],
        translations=_translations(group),
        min=group.get("min", 0),
        max=group.get("max"),
        free_quantity=group.get("free", 0),
        options=[_option(option) for option in group["options"]],
    )


def _option(option: JSONDict) -> ModifierOption:
    return ModifierOption(
        id=option["id"],
        pos_id=option["id"],
        name=option["name"],
        translations=_translations(option),
        prices=_prices(option.get("prices", {})),
        max_quantity=option.get("max_qty", 1),
        default=option.get("default", False),
        modifier_group_ids=list(option.get("modifier_groups", [])),
        availability=_availability(option),
        allergens=_allergens(option),
        tags=_tags(option),
        nutrition=_nutrition(option),
        image_url=option.get("image"),
    )


# ---------------------------------------------------------------------------------------------
# Order: universal -> DemoPOS
# ---------------------------------------------------------------------------------------------


def order_to_pos(order: Order) -> JSONDict:
    """Translate a universal order into the body of DemoPOS ``POST /orders``.

    ``reference`` is our order id, so the order can be found again with ``?reference=``.
    DemoPOS keeps every part of the order: discounts (of lines and of the order), charges, the
    tip, the tax, the total and each payment (``paid`` for PREPAID, due for AT_COUNTER), the
    delivery details, the table and the fiscal receipt; it checks that they add up.
    """
    customer = (
        None
        if order.customer is None
        else {"name": order.customer.name, "phone": order.customer.phone}
    )
    return {
        "reference": order.id,
        "location": order.location,
        "channel": order.channel,
        "type": _ORDER_TYPES[order.type],
        "currency": order.currency,
        "note": order.customer_note,
        "pickup_at": None if order.pickup_time is None else order.pickup_time.isoformat(),
        "customer": customer,
        "lines": [_line(line) for line in order.lines],
        "discounts": [_adjustment(d) for d in order.discounts],
        "charges": [_adjustment(c) for c in order.charges],
        "tip": order.tip,
        "tax": order.tax,
        "total": order.total,
        "payments": [_payment(p) for p in order.payments],
        "delivery": None if order.delivery is None else _delivery(order.delivery),
        "table": None
        if order.table is None
        else {"name": order.table.name, "covers": order.table.covers},
        "fiscalised": order.fiscalised,
        "fiscal": None if order.fiscal is None else order.fiscal.model_dump(mode="json"),
    }


def _adjustment(adjustment: Discount | Charge) -> JSONDict:
    """A discount or a charge: DemoPOS takes the amount; the rest is for its receipts."""
    native: JSONDict = {
        "name": adjustment.name,
        "kind": adjustment.kind.value.lower(),
        "amount": adjustment.amount,
    }
    if isinstance(adjustment, Discount):
        native["code"] = adjustment.code
    else:
        native["taxable"] = adjustment.taxable
    return native


def _payment(payment: Payment) -> JSONDict:
    return {
        "method": payment.method.value.lower(),
        "amount": payment.amount,
        "paid": payment.mode == PaymentMode.PREPAID,
        "provider": payment.provider,
        "reference": payment.reference,
    }


def _delivery(delivery: Delivery) -> JSONDict:
    """Delivery details as DemoPOS prints them on the courier's ticket."""
    address = delivery.address
    return {
        "address": None
        if address is None
        else {
            "street": address.street,
            "extra": address.extra,
            "city": address.city,
            "postal_code": address.postal_code,
            "country": address.country,
        },
        "lat": None if delivery.coordinates is None else delivery.coordinates.latitude,
        "lng": None if delivery.coordinates is None else delivery.coordinates.longitude,
        "instructions": delivery.instructions,
        "courier": None if delivery.courier is None else delivery.courier.model_dump(mode="json"),
        "platform_order_id": delivery.aggregator_order_id,
        "code": delivery.display_code,
        "promised_at": None if delivery.promised_at is None else delivery.promised_at.isoformat(),
    }


def _line(line: OrderLine) -> JSONDict:
    """One order line: a combo line when it has components, an item line otherwise."""
    discounts = [_adjustment(d) for d in line.discounts]
    if line.components:
        return {
            "combo": line.product_id,
            "qty": line.quantity,
            "unit_price": line.unit_price,
            "discounts": discounts,
            "components": [
                {
                    "slot": component.slot_id,
                    "item": component.product_id,
                    "size": component.variant_id,
                    "mods": _mods(component.modifiers),
                }
                for component in line.components
            ],
        }
    return {
        "item": line.product_id,
        "size": line.variant_id,
        "qty": line.quantity,
        "unit_price": line.unit_price,
        "mods": _mods(line.modifiers),
        "discounts": discounts,
    }


def _mods(modifiers: list[SelectedModifier]) -> list[JSONDict]:
    return [
        {"option": mod.option_id, "qty": mod.quantity, "mods": _mods(mod.modifiers)}
        for mod in modifiers
    ]


# ---------------------------------------------------------------------------------------------
# Status: DemoPOS -> universal
# ---------------------------------------------------------------------------------------------


def status_from_pos(state: str) -> OrderStatus:
    """Map a DemoPOS order state to the universal status.

    :raises ValueError: for a state this plugin does not know (a newer POS version), rather
        than guessing a status that might move the order the wrong way.
    """
    try:
        return _STATES[state]
    except KeyError:
        raise ValueError(f"unknown DemoPOS order state {state!r}") from None


def status_event_from_pos(event: JSONDict) -> StatusEvent:
    """Translate one DemoPOS events-feed entry (or webhook body) into a status event."""
    return StatusEvent(
        order_id=event["reference"],
        pos_order_id=event["order_id"],
        status=status_from_pos(event["state"]),
        occurred_at=datetime.fromisoformat(event["at"]),
        pos_event_id=str(event["seq"]),
        source=EVENT_SOURCE,
    )


# ---------------------------------------------------------------------------------------------
# Availability: DemoPOS -> universal
# ---------------------------------------------------------------------------------------------


def availability_change_from_pos(event: JSONDict) -> AvailabilityChange:
    """Translate a DemoPOS ``availability`` webhook (86 or back) into an availability change.

    ``item`` names a product (an item or a combo, same ids as in the menu); ``option`` names a
    modifier option of ``group``. The availability is built exactly as a full menu sync would
    build it (``hours`` and ``channels`` ride along in the webhook), so the fast path and the
    next full sync agree.

    :raises KeyError: for a body missing a required field.
    :raises ValueError: for a body naming neither or both, or with unreadable values.
    """
    if not isinstance(event["available"], bool):
        raise ValueError("available must be a boolean")
    availability = _availability(
        {
            "available": event["available"],
            "unavailable_until": event.get("until"),
            "unavailable_reason": event.get("reason"),
            "hours": event.get("hours"),
            "channels": event.get("channels"),
        }
    )
    item, option = event.get("item"), event.get("option")
    if item is not None and option is None:
        return AvailabilityChange(
            location=event["location"], product_id=item, availability=availability
        )
    if option is not None and item is None:
        return AvailabilityChange(
            location=event["location"],
            group_id=event["group"],
            option_id=option,
            availability=availability,
        )
    raise ValueError("an availability webhook names exactly one of 'item' or 'option'")
