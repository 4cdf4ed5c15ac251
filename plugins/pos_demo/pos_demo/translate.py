"""Pure translation between DemoPOS documents and the universal model.

No I/O here: every function takes a decoded JSON document (or a universal model object) and
returns the other side, so the whole mapping is testable against recorded fixtures. Money stays
in integer cents on both sides.

Every document is first read into its model in :mod:`pos_demo.documents`; one that cannot be
read fails with a :class:`~posintegrator.errors.PermanentError` naming the place in the document
and the reason, never with a ``KeyError`` from the middle of the translation.

How the DemoPOS menu fields land in the universal menu:

* ``names``/``descriptions`` (language -> text) become ``translations`` (language -> ``Text``);
* ``allergens`` (``contains``/``may_contain``, the same snake_case codes) become ``Allergens``;
  an allergen code outside the EU list fails the translation: a safety declaration is never
  silently dropped;
* ``tags`` become ``DietaryTag`` values; tags the model does not know (DemoPOS marketing tags
  such as ``new``) are dropped rather than failing the whole menu;
* ``kcal`` becomes ``Nutrition(energy_kcal=...)`` per serving;
* ``hours`` (``days``/``from``/``to``, in the location's time zone) become
  ``Availability.schedule``, an item's ``channels`` become ``Availability.channels``;
* an item's ``option_prices`` become ``Product.option_prices``;
* the menu's ``timezone`` becomes ``Menu.timezone``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from pos_demo.documents import (
    COMBO_VARIANT_SUFFIX,
    STATES,
    AvailabilityEvent,
    Combo,
    EventsPage,
    Item,
    Labelled,
    MenuCategory,
    MenuDocument,
    Named,
    Option,
    OptionGroup,
    OptionPriceOverride,
    OrderEvent,
    PriceLevel,
    Sellable,
    Slot,
    TaxRate,
    read,
    unreadable,
)
from posintegrator.errors import PermanentError
from posintegrator.model import (
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
    Variant,
)
from posintegrator.model.availability import AvailabilityChange

JSONDict = dict[str, Any]

#: ``source`` of every status event this plugin produces.
EVENT_SOURCE = "pos:demo"

_ORDER_TYPES: dict[OrderType, str] = {
    OrderType.TAKE_AWAY: "takeaway",
    OrderType.DINE_IN: "eat_in",
    OrderType.DELIVERY: "delivery",
}


# ---------------------------------------------------------------------------------------------
# Menu: DemoPOS -> universal
# ---------------------------------------------------------------------------------------------


def menu_from_pos(native: JSONDict, location: str) -> Menu:
    """Translate a DemoPOS ``GET /menu`` document into the universal menu of ``location``.

    :raises PermanentError: for a document that is not a readable DemoPOS menu (a missing or
        mistyped field, an allergen code outside the EU list, a serving window that ends before
        it starts...), naming the place in the document and the reason. The POS answered, so
        retrying will not help until the menu is fixed in the POS; the last published menu
        stays live meanwhile.
    """
    what = f"menu of {location!r}"
    document = read(MenuDocument, native, what)
    try:
        return Menu(
            location=location,
            currency=document.currency,
            timezone=document.timezone or "UTC",
            price_lists=[_price_list(level) for level in document.price_levels],
            taxes=[_tax(tax) for tax in document.taxes],
            categories=[_category(category) for category in document.categories],
            products=[_product(item) for item in document.items]
            + [_combo(combo) for combo in document.combos],
            modifier_groups=[_modifier_group(group) for group in document.modifier_groups],
            source_updated_at=document.updated_at,
        )
    except ValidationError as exc:  # what only the whole menu can tell (its time zone)
        raise PermanentError(unreadable(what, exc)) from None


def _price_list(level: PriceLevel) -> PriceList:
    return PriceList(id=level.id, pos_id=level.id, name=level.name, channels=level.channels)


def _tax(tax: TaxRate) -> Tax:
    return Tax(
        id=tax.id,
        pos_id=tax.id,
        name=tax.name,
        rate_ppm=tax.rate_bp * 100,
        inclusive=tax.inclusive,
    )


def _category(category: MenuCategory) -> Category:
    return Category(
        id=category.id,
        pos_id=category.id,
        name=category.name,
        translations=_translations(category),
        parent_id=category.parent,
        sort=category.sort,
        image_url=category.image,
        availability=_availability(category),
    )


def _translations(entity: Named) -> dict[str, Text]:
    """Merge the per-language ``names`` and ``descriptions`` of an entity into translations."""
    names = entity.names or {}
    descriptions = entity.descriptions or {}
    return {
        language: Text(name=names.get(language), description=descriptions.get(language))
        for language in sorted(names.keys() | descriptions.keys())
    }


def _allergens(entity: Labelled) -> Allergens:
    """Declared allergens; DemoPOS uses the same snake_case codes as :class:`Allergen`."""
    declared = entity.allergens
    if declared is None:
        return Allergens()
    return Allergens(contains=declared.contains, may_contain=declared.may_contain)


_KNOWN_TAGS = frozenset(tag.value for tag in DietaryTag)


def _tags(entity: Labelled) -> list[DietaryTag]:
    """Dietary tags; tags the universal model does not know (e.g. ``new``) are dropped."""
    return [DietaryTag(tag) for tag in entity.tags or [] if tag in _KNOWN_TAGS]


def _nutrition(entity: Labelled) -> Nutrition | None:
    """Energy per serving from ``kcal``; None when the POS gives none."""
    return None if entity.kcal is None else Nutrition(energy_kcal=entity.kcal)


def _availability(entity: Sellable) -> Availability:
    """Availability of an item, option, combo or category (``available`` defaults to true)."""
    return Availability(
        available=entity.available,
        unavailable_until=entity.unavailable_until,
        reason=entity.unavailable_reason,
        schedule=[window.slot() for window in entity.hours or []],
        channels=entity.channels or [],
    )


def _option_price(override: OptionPriceOverride) -> OptionPrice:
    return OptionPrice(group_id=override.group, option_id=override.option, prices=override.prices)


def _product(item: Item) -> Product:
    return Product(
        id=item.id,
        pos_id=item.id,
        name=item.name,
        description=item.description,
        translations=_translations(item),
        category_ids=[item.category] if item.category else [],
        variants=[
            Variant(
                id=size.id,
                pos_id=size.id,
                name=size.name,
                translations=_translations(size),
                prices=size.prices,
            )
            for size in item.sizes
        ],
        modifier_group_ids=item.modifier_groups,
        option_prices=[_option_price(override) for override in item.option_prices],
        tax_id=item.tax,
        image_url=item.image,
        availability=_availability(item),
        allergens=_allergens(item),
        tags=_tags(item),
        nutrition=_nutrition(item),
    )


def _combo(combo: Combo) -> Product:
    return Product(
        id=combo.id,
        pos_id=combo.id,
        name=combo.name,
        description=combo.description,
        translations=_translations(combo),
        category_ids=[combo.category] if combo.category else [],
        variants=[
            Variant(id=f"{combo.id}{COMBO_VARIANT_SUFFIX}", name="Standard", prices=combo.prices)
        ],
        slots=[_slot(slot) for slot in combo.slots],
        image_url=combo.image,
        availability=_availability(combo),
    )


def _slot(slot: Slot) -> ComboSlot:
    return ComboSlot(
        id=slot.id,
        pos_id=slot.id,
        name=slot.name,
        translations=_translations(slot),
        min=slot.min,
        max=slot.max,
        choices=[
            ComboChoice(product_id=choice.item, variant_id=choice.size, upcharge=choice.upcharge)
            for choice in slot.choices
        ],
    )


def _modifier_group(group: OptionGroup) -> ModifierGroup:
    return ModifierGroup(
        id=group.id,
        pos_id=group.id,
        name=group.name,
        translations=_translations(group),
        min=group.min,
        max=group.max,
        free_quantity=group.free,
        options=[_option(option) for option in group.options],
    )


def _option(option: Option) -> ModifierOption:
    return ModifierOption(
        id=option.id,
        pos_id=option.id,
        name=option.name,
        translations=_translations(option),
        prices=option.prices,
        max_quantity=option.max_qty,
        default=option.default,
        modifier_group_ids=option.modifier_groups,
        availability=_availability(option),
        allergens=_allergens(option),
        tags=_tags(option),
        nutrition=_nutrition(option),
        image_url=option.image,
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
        return STATES[state]
    except KeyError:
        raise ValueError(f"unknown DemoPOS order state {state!r}") from None


def status_event_from_pos(entry: Any) -> StatusEvent:
    """Translate one DemoPOS events-feed entry (or order webhook body) into a status event.

    :raises PermanentError: for an entry that is not readable (a missing field, an unknown
        state), naming the field and the reason.
    """
    event = read(OrderEvent, entry, "order event")
    return StatusEvent(
        order_id=event.reference,
        pos_order_id=event.order_id,
        status=STATES[event.state],
        occurred_at=event.at,
        pos_event_id=str(event.seq),
        source=EVENT_SOURCE,
    )


@dataclass(frozen=True)
class FeedPage:
    """One ``GET /events`` page, read.

    :param events: its readable entries, as status events, in feed order.
    :param unreadable: why each of its other entries could not be read.
    :param last_seq: the cursor to ask from next time.
    :param has_more: whether the feed has entries after this page.
    """

    events: list[StatusEvent]
    unreadable: list[str]
    last_seq: int
    has_more: bool


def feed_page_from_pos(native: Any) -> FeedPage:
    """Read one ``GET /events`` page.

    An entry that cannot be read is reported in ``unreadable`` rather than failing the page: a
    single bad entry (a state from a newer DemoPOS) must not stop every later status from
    arriving, as it would if the cursor could never pass it.

    :raises PermanentError: for a page that is not readable itself (no ``events`` list, no
        ``last_seq``): without a cursor the feed cannot be followed.
    """
    page = read(EventsPage, native, "events page")
    events: list[StatusEvent] = []
    unreadable: list[str] = []
    for index, entry in enumerate(page.events):
        try:
            events.append(status_event_from_pos(entry))
        except PermanentError as exc:
            unreadable.append(f"events[{index}]: {exc.message}")
    return FeedPage(events, unreadable, page.last_seq, page.has_more)


# ---------------------------------------------------------------------------------------------
# Availability: DemoPOS -> universal
# ---------------------------------------------------------------------------------------------


def availability_change_from_pos(native: Any) -> AvailabilityChange:
    """Translate a DemoPOS ``availability`` webhook (86 or back) into an availability change.

    ``item`` names a product (an item or a combo, same ids as in the menu); ``option`` names a
    modifier option of ``group``. The availability is built exactly as a full menu sync would
    build it (``hours`` and ``channels`` ride along in the webhook), so the fast path and the
    next full sync agree.

    :raises PermanentError: for a body missing a required field, naming neither or both of
        ``item`` and ``option``, or with unreadable values.
    """
    event = read(AvailabilityEvent, native, "availability webhook")
    availability = Availability(
        available=event.available,
        unavailable_until=event.until,
        reason=event.reason,
        schedule=[window.slot() for window in event.hours or []],
        channels=event.channels or [],
    )
    if event.item is not None:
        return AvailabilityChange(
            location=event.location, product_id=event.item, availability=availability
        )
    return AvailabilityChange(
        location=event.location,
        group_id=event.group,
        option_id=event.option,
        availability=availability,
    )
