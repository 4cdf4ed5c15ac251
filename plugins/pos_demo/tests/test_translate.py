"""Tests of the pure DemoPOS <-> universal translation, against a hand-recorded menu."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from pos_demo.translate import menu_from_pos, order_to_pos, status_event_from_pos, status_from_pos
from posintegrator.model import (
    Availability,
    Category,
    ComboChoice,
    ComboComponent,
    ComboSlot,
    Customer,
    Menu,
    ModifierGroup,
    ModifierOption,
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
    Variant,
)

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def native_menu() -> dict[str, Any]:
    """The recorded ``GET /menu?location=downtown`` document."""
    document: dict[str, Any] = orjson.loads((FIXTURES / "menu_downtown.json").read_bytes())
    return document


@pytest.fixture
def menu(native_menu: dict[str, Any]) -> Menu:
    """The recorded menu, translated."""
    return menu_from_pos(native_menu, "downtown")


def _prices(instore: int, delivery: int) -> dict[str, int]:
    return {"instore": instore, "delivery": delivery}


EXPECTED_MENU = Menu(
    location="downtown",
    currency="EUR",
    source_updated_at=datetime(2024, 5, 1, 8, 30, tzinfo=UTC),
    price_lists=[
        PriceList(
            id="instore", pos_id="instore", name="In store", channels=["kiosk", "web", "dine_in"]
        ),
        PriceList(id="delivery", pos_id="delivery", name="Delivery", channels=["delivery"]),
    ],
    taxes=[
        Tax(id="vat_food", pos_id="vat_food", name="VAT 7% (food)", rate_bp=700, inclusive=True),
        Tax(
            id="vat_drinks",
            pos_id="vat_drinks",
            name="VAT 19% (drinks)",
            rate_bp=1900,
            inclusive=False,
        ),
    ],
    categories=[
        Category(id="burgers", pos_id="burgers", name="Burgers", sort=20),
        Category(id="drinks", pos_id="drinks", name="Drinks", sort=50),
        Category(
            id="cold_drinks", pos_id="cold_drinks", name="Cold drinks", sort=51, parent_id="drinks"
        ),
        Category(id="menus", pos_id="menus", name="Menus", sort=10),
    ],
    products=[
        Product(
            id="classic_burger",
            pos_id="classic_burger",
            name="Classic Burger",
            description="Beef patty, lettuce, tomato and house sauce.",
            category_ids=["burgers"],
            tax_id="vat_food",
            image_url="https://img.demopos.example/items/classic_burger.jpg",
            variants=[
                Variant(id="regular", pos_id="regular", name="Regular", prices=_prices(690, 790))
            ],
            modifier_group_ids=["burger_extras", "burger_sauce"],
        ),
        Product(
            id="cola",
            pos_id="cola",
            name="Cola",
            category_ids=["cold_drinks"],
            tax_id="vat_drinks",
            variants=[
                Variant(id="small", pos_id="small", name="Small 0.3 l", prices=_prices(250, 290)),
                Variant(
                    id="medium", pos_id="medium", name="Medium 0.4 l", prices=_prices(290, 330)
                ),
                Variant(id="large", pos_id="large", name="Large 0.5 l", prices=_prices(330, 380)),
            ],
        ),
        Product(
            id="fries",
            pos_id="fries",
            name="Fries",
            description="Crispy fries.",
            category_ids=["burgers"],
            tax_id="vat_food",
            variants=[
                Variant(id="regular", pos_id="regular", name="Regular", prices=_prices(300, 350))
            ],
            availability=Availability(
                available=False,
                unavailable_until=datetime(2024, 5, 1, 16, 0, tzinfo=UTC),
                reason="fryer broken",
            ),
        ),
        Product(
            id="classic_menu",
            pos_id="classic_menu",
            name="Classic Menu",
            category_ids=["menus"],
            variants=[
                Variant(id="classic_menu:std", name="Standard", prices=_prices(990, 1190)),
            ],
            slots=[
                ComboSlot(
                    id="main",
                    pos_id="main",
                    name="Burger",
                    min=1,
                    max=1,
                    choices=[ComboChoice(product_id="classic_burger", variant_id="regular")],
                ),
                ComboSlot(
                    id="drink",
                    pos_id="drink",
                    name="Drink",
                    min=1,
                    max=2,
                    choices=[
                        ComboChoice(product_id="cola", variant_id="medium"),
                        ComboChoice(
                            product_id="cola", variant_id="large", upcharge=_prices(50, 60)
                        ),
                    ],
                ),
            ],
        ),
    ],
    modifier_groups=[
        ModifierGroup(
            id="burger_extras",
            pos_id="burger_extras",
            name="Extras",
            min=0,
            max=3,
            free_quantity=1,
            options=[
                ModifierOption(
                    id="extra_cheese",
                    pos_id="extra_cheese",
                    name="Extra cheese",
                    prices=_prices(80, 90),
                    max_quantity=2,
                    modifier_group_ids=["cheese_type"],
                ),
                ModifierOption(
                    id="bacon",
                    pos_id="bacon",
                    name="Bacon",
                    prices=_prices(120, 140),
                    availability=Availability(available=False),
                ),
            ],
        ),
        ModifierGroup(
            id="cheese_type",
            pos_id="cheese_type",
            name="Cheese",
            min=1,
            max=1,
            options=[
                ModifierOption(
                    id="cheddar",
                    pos_id="cheddar",
                    name="Cheddar",
                    prices=_prices(0, 0),
                    default=True,
                ),
                ModifierOption(id="gouda", pos_id="gouda", name="Gouda", prices=_prices(20, 30)),
            ],
        ),
        ModifierGroup(
            id="burger_sauce",
            pos_id="burger_sauce",
            name="Sauce",
            min=1,
            max=1,
            options=[
                ModifierOption(
                    id="house_sauce",
                    pos_id="house_sauce",
                    name="House sauce",
                    prices=_prices(0, 0),
                    default=True,
                )
            ],
        ),
    ],
)


# ---------------------------------------------------------------------------------------------
# Menu
# ---------------------------------------------------------------------------------------------


def test_menu_translates_exactly(menu: Menu) -> None:
    assert menu.model_dump() == EXPECTED_MENU.model_dump()


def test_menu_counts_and_ids(menu: Menu) -> None:
    assert [p.id for p in menu.price_lists] == ["instore", "delivery"]
    assert [p.id for p in menu.products] == ["classic_burger", "cola", "fries", "classic_menu"]
    assert [g.id for g in menu.modifier_groups] == ["burger_extras", "cheese_type", "burger_sauce"]
    assert len(menu.taxes) == 2
    assert len(menu.categories) == 4


def test_three_size_drink_keeps_prices_per_price_list(menu: Menu) -> None:
    cola = menu.product("cola")
    assert cola is not None
    assert {v.id: v.prices for v in cola.variants} == {
        "small": {"instore": 250, "delivery": 290},
        "medium": {"instore": 290, "delivery": 330},
        "large": {"instore": 330, "delivery": 380},
    }


def test_nested_modifier_is_referenced_by_id(menu: Menu) -> None:
    extras = menu.modifier_group("burger_extras")
    assert extras is not None
    cheese = extras.options[0]
    assert cheese.modifier_group_ids == ["cheese_type"]
    nested = menu.modifier_group("cheese_type")
    assert nested is not None
    assert (nested.min, nested.max) == (1, 1)
    assert [o.id for o in nested.options] == ["cheddar", "gouda"]


def test_86d_item_and_option_are_unavailable(menu: Menu) -> None:
    fries = menu.product("fries")
    assert fries is not None
    assert fries.availability == Availability(
        available=False,
        unavailable_until=datetime(2024, 5, 1, 16, 0, tzinfo=UTC),
        reason="fryer broken",
    )
    extras = menu.modifier_group("burger_extras")
    assert extras is not None
    assert [o.availability.available for o in extras.options] == [True, False]


def test_combo_becomes_product_with_slots(menu: Menu) -> None:
    combo = menu.product("classic_menu")
    assert combo is not None
    assert combo.is_combo
    assert [(v.id, v.prices) for v in combo.variants] == [
        ("classic_menu:std", {"instore": 990, "delivery": 1190})
    ]
    drink = combo.slots[1]
    assert (drink.id, drink.min, drink.max) == ("drink", 1, 2)
    assert drink.choices[1] == ComboChoice(
        product_id="cola", variant_id="large", upcharge={"instore": 50, "delivery": 60}
    )


def test_menu_uses_given_location(native_menu: dict[str, Any]) -> None:
    assert menu_from_pos(native_menu, "airport").location == "airport"


# ---------------------------------------------------------------------------------------------
# Orders
# ---------------------------------------------------------------------------------------------


def _order(*lines: OrderLine, **overrides: Any) -> Order:
    total = sum(line.unit_price * line.quantity for line in lines)
    fields: dict[str, Any] = {
        "id": "cloud-42",
        "location": "downtown",
        "type": OrderType.TAKE_AWAY,
        "currency": "EUR",
        "lines": list(lines),
        "total": total,
        "payment": Payment(mode=PaymentMode.PREPAID, amount=total),
    }
    fields.update(overrides)
    return Order(**fields)


PLAIN_LINE = OrderLine(product_id="cola", variant_id="large", quantity=2, unit_price=330)


def test_order_header_and_plain_line() -> None:
    order = _order(
        PLAIN_LINE,
        customer_note="no ice",
        pickup_time=datetime(2024, 5, 1, 12, 15, tzinfo=UTC),
        customer=Customer(name="Ada", phone="+49 30 1234"),
    )
    assert order_to_pos(order) == {
        "reference": "cloud-42",
        "location": "downtown",
        "type": "takeaway",
        "paid": True,
        "amount": 660,
        "currency": "EUR",
        "note": "no ice",
        "pickup_at": "2024-05-01T12:15:00+00:00",
        "customer": {"name": "Ada", "phone": "+49 30 1234"},
        "lines": [{"item": "cola", "size": "large", "qty": 2, "unit_price": 330, "mods": []}],
    }


@pytest.mark.parametrize(
    ("order_type", "native"),
    [
        (OrderType.TAKE_AWAY, "takeaway"),
        (OrderType.DINE_IN, "eat_in"),
        (OrderType.DELIVERY, "delivery"),
    ],
)
def test_order_types(order_type: OrderType, native: str) -> None:
    assert order_to_pos(_order(PLAIN_LINE, type=order_type))["type"] == native


def test_pay_at_counter_is_unpaid_with_amount_due() -> None:
    body = order_to_pos(
        _order(PLAIN_LINE, payment=Payment(mode=PaymentMode.AT_COUNTER, amount=500))
    )
    assert (body["paid"], body["amount"]) == (False, 500)
    assert (body["note"], body["pickup_at"], body["customer"]) == (None, None, None)


def test_line_with_nested_modifiers() -> None:
    line = OrderLine(
        product_id="classic_burger",
        variant_id="regular",
        quantity=1,
        unit_price=790,
        modifiers=[
            SelectedModifier(
                option_id="extra_cheese",
                group_id="burger_extras",
                quantity=2,
                modifiers=[SelectedModifier(option_id="gouda", group_id="cheese_type")],
            ),
            SelectedModifier(option_id="house_sauce"),
        ],
    )
    assert order_to_pos(_order(line))["lines"] == [
        {
            "item": "classic_burger",
            "size": "regular",
            "qty": 1,
            "unit_price": 790,
            "mods": [
                {
                    "option": "extra_cheese",
                    "qty": 2,
                    "mods": [{"option": "gouda", "qty": 1, "mods": []}],
                },
                {"option": "house_sauce", "qty": 1, "mods": []},
            ],
        }
    ]


def test_combo_line() -> None:
    line = OrderLine(
        product_id="classic_menu",
        variant_id="classic_menu:std",
        quantity=3,
        unit_price=1040,
        components=[
            ComboComponent(
                slot_id="main",
                product_id="classic_burger",
                variant_id="regular",
                modifiers=[SelectedModifier(option_id="bacon")],
            ),
            ComboComponent(slot_id="drink", product_id="cola", variant_id="large"),
        ],
    )
    assert order_to_pos(_order(line))["lines"] == [
        {
            "combo": "classic_menu",
            "qty": 3,
            "unit_price": 1040,
            "components": [
                {
                    "slot": "main",
                    "item": "classic_burger",
                    "size": "regular",
                    "mods": [{"option": "bacon", "qty": 1, "mods": []}],
                },
                {"slot": "drink", "item": "cola", "size": "large", "mods": []},
            ],
        }
    ]


# ---------------------------------------------------------------------------------------------
# Status
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("accepted", OrderStatus.ACCEPTED),
        ("preparing", OrderStatus.IN_PREPARATION),
        ("ready", OrderStatus.READY),
        ("picked_up", OrderStatus.COMPLETED),
        ("cancelled", OrderStatus.CANCELLED),
        ("rejected", OrderStatus.REJECTED),
    ],
)
def test_status_from_pos(state: str, status: OrderStatus) -> None:
    assert status_from_pos(state) is status


def test_unknown_state_is_an_error() -> None:
    with pytest.raises(ValueError, match="on_hold"):
        status_from_pos("on_hold")


def test_status_event_from_feed_entry() -> None:
    event = status_event_from_pos(
        {
            "seq": 17,
            "order_id": "D-000123",
            "reference": "cloud-42",
            "location": "downtown",
            "state": "ready",
            "at": "2024-05-01T12:03:04+02:00",
        }
    )
    assert event == StatusEvent(
        order_id="cloud-42",
        pos_order_id="D-000123",
        status=OrderStatus.READY,
        occurred_at=datetime(2024, 5, 1, 10, 3, 4, tzinfo=UTC),
        pos_event_id="17",
        source="pos:demo",
    )
