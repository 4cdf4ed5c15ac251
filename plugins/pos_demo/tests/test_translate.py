"""Tests of the pure DemoPOS <-> universal translation, against a hand-recorded menu."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from pos_demo.translate import (
    availability_change_from_pos,
    feed_page_from_pos,
    menu_from_pos,
    order_to_pos,
    status_event_from_pos,
    status_from_pos,
)
from posintegrator.errors import PermanentError
from posintegrator.model import (
    Allergen,
    Allergens,
    Availability,
    Category,
    Charge,
    ChargeKind,
    ComboChoice,
    ComboComponent,
    ComboSlot,
    Customer,
    Delivery,
    DietaryTag,
    Discount,
    DiscountKind,
    FiscalDocument,
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
    PaymentMethod,
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
from posintegrator.model.availability import AvailabilityChange, apply_availability

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
    timezone="Europe/Berlin",
    source_updated_at=datetime(2024, 5, 1, 8, 30, tzinfo=UTC),
    price_lists=[
        PriceList(
            id="instore", pos_id="instore", name="In store", channels=["kiosk", "web", "dine_in"]
        ),
        PriceList(id="delivery", pos_id="delivery", name="Delivery", channels=["delivery"]),
    ],
    taxes=[
        Tax(
            id="vat_food", pos_id="vat_food", name="VAT 7% (food)", rate_ppm=70_000, inclusive=True
        ),
        Tax(
            id="vat_drinks",
            pos_id="vat_drinks",
            name="VAT 19% (drinks)",
            rate_ppm=190_000,
            inclusive=False,
        ),
    ],
    categories=[
        Category(
            id="burgers",
            pos_id="burgers",
            name="Burgers",
            translations={"de": Text(name="Burger")},
            sort=20,
            image_url="https://img.demopos.example/categories/burgers.jpg",
        ),
        Category(
            id="drinks",
            pos_id="drinks",
            name="Drinks",
            translations={"de": Text(name="Getränke")},
            sort=50,
        ),
        Category(
            id="cold_drinks", pos_id="cold_drinks", name="Cold drinks", sort=51, parent_id="drinks"
        ),
        Category(
            id="menus",
            pos_id="menus",
            name="Menus",
            translations={"de": Text(name="Menüs")},
            sort=10,
            availability=Availability(
                schedule=[TimeSlot(days=[0, 1, 2, 3, 4], start="11:00", end="15:00")]
            ),
        ),
    ],
    products=[
        Product(
            id="classic_burger",
            pos_id="classic_burger",
            name="Classic Burger",
            description="Beef patty, lettuce, tomato and house sauce.",
            translations={
                "de": Text(
                    name="Klassik Burger",
                    description="Rindfleisch-Patty, Salat, Tomate und Haussauce.",
                ),
                "fr": Text(name="Burger classique"),
            },
            category_ids=["burgers"],
            tax_id="vat_food",
            image_url="https://img.demopos.example/items/classic_burger.jpg",
            variants=[
                Variant(
                    id="regular",
                    pos_id="regular",
                    name="Regular",
                    translations={"de": Text(name="Normal")},
                    prices=_prices(690, 790),
                )
            ],
            modifier_group_ids=["burger_extras", "burger_sauce"],
            option_prices=[
                OptionPrice(
                    group_id="burger_extras", option_id="extra_cheese", prices=_prices(50, 60)
                )
            ],
            allergens=Allergens(
                contains=[Allergen.GLUTEN, Allergen.SESAME], may_contain=[Allergen.SOYBEANS]
            ),
            tags=[DietaryTag.SPICY],
            nutrition=Nutrition(energy_kcal=540),
        ),
        Product(
            id="cola",
            pos_id="cola",
            name="Cola",
            category_ids=["cold_drinks"],
            tax_id="vat_drinks",
            variants=[
                Variant(
                    id="small",
                    pos_id="small",
                    name="Small 0.3 l",
                    translations={"de": Text(name="Klein 0,3 l")},
                    prices=_prices(250, 290),
                ),
                Variant(
                    id="medium", pos_id="medium", name="Medium 0.4 l", prices=_prices(290, 330)
                ),
                Variant(id="large", pos_id="large", name="Large 0.5 l", prices=_prices(330, 380)),
            ],
            tags=[DietaryTag.VEGAN],
            nutrition=Nutrition(energy_kcal=140),
        ),
        Product(
            id="craft_beer",
            pos_id="craft_beer",
            name="Craft Lager",
            description="Local lager, 0.33 l.",
            translations={
                "de": Text(name="Craft-Lager", description="Lokales Lagerbier, 0,33 l."),
            },
            category_ids=["cold_drinks"],
            tax_id="vat_drinks",
            variants=[
                Variant(id="regular", pos_id="regular", name="Regular", prices=_prices(390, 450))
            ],
            availability=Availability(
                schedule=[TimeSlot(days=[4, 5], start="17:00", end="24:00")],
                channels=["kiosk", "web", "dine_in"],
            ),
            allergens=Allergens(contains=[Allergen.GLUTEN], may_contain=[Allergen.SULPHITES]),
            nutrition=Nutrition(energy_kcal=145),
        ),
        Product(
            id="fries",
            pos_id="fries",
            name="Fries",
            description="Crispy fries.",
            translations={
                "de": Text(name="Pommes", description="Knusprige Pommes."),
                "fr": Text(description="Frites croustillantes."),
            },
            category_ids=["burgers"],
            tax_id="vat_food",
            variants=[
                Variant(id="regular", pos_id="regular", name="Regular", prices=_prices(300, 350))
            ],
            availability=Availability(
                available=False,
                unavailable_until=datetime(2024, 5, 1, 16, 0, tzinfo=UTC),
                reason="fryer broken",
                schedule=[TimeSlot(days=[0, 1, 2, 3, 4], start="11:00", end="22:00")],
            ),
            tags=[DietaryTag.VEGETARIAN],
        ),
        Product(
            id="classic_menu",
            pos_id="classic_menu",
            name="Classic Menu",
            description="Classic Burger and a drink.",
            translations={
                "de": Text(name="Klassik Menü", description="Klassik Burger und ein Getränk.")
            },
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
                    translations={"de": Text(name="Getränk")},
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
            translations={"de": Text(name="Extras")},
            min=0,
            max=3,
            free_quantity=1,
            options=[
                ModifierOption(
                    id="extra_cheese",
                    pos_id="extra_cheese",
                    name="Extra cheese",
                    translations={"de": Text(name="Extra Käse")},
                    prices=_prices(80, 90),
                    max_quantity=2,
                    modifier_group_ids=["cheese_type"],
                    allergens=Allergens(contains=[Allergen.MILK]),
                    tags=[DietaryTag.VEGETARIAN],
                    nutrition=Nutrition(energy_kcal=70),
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
                    allergens=Allergens(contains=[Allergen.MILK], may_contain=[Allergen.MUSTARD]),
                ),
                ModifierOption(
                    id="gouda",
                    pos_id="gouda",
                    name="Gouda",
                    prices=_prices(20, 30),
                    tags=[DietaryTag.LACTOSE_FREE, DietaryTag.VEGETARIAN],
                ),
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
    assert [p.id for p in menu.products] == [
        "classic_burger",
        "cola",
        "craft_beer",
        "fries",
        "classic_menu",
    ]
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
        schedule=[TimeSlot(days=[0, 1, 2, 3, 4], start="11:00", end="22:00")],
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


def test_menu_takes_the_locations_timezone(menu: Menu, native_menu: dict[str, Any]) -> None:
    assert menu.timezone == "Europe/Berlin"
    assert menu.zone == ZoneInfo("Europe/Berlin")
    del native_menu["timezone"]
    assert menu_from_pos(native_menu, "downtown").timezone == "UTC"


def test_price_lists_keep_their_channels(menu: Menu) -> None:
    assert {p.id: p.channels for p in menu.price_lists} == {
        "instore": ["kiosk", "web", "dine_in"],
        "delivery": ["delivery"],
    }
    assert menu.price_list_for("web") == menu.price_lists[0]
    assert menu.price_list_for("delivery") == menu.price_lists[1]


def test_names_and_descriptions_merge_into_translations(menu: Menu) -> None:
    burger = menu.product("classic_burger")
    fries = menu.product("fries")
    cola = menu.product("cola")
    assert burger is not None and fries is not None and cola is not None
    assert burger.translations == {
        "de": Text(
            name="Klassik Burger", description="Rindfleisch-Patty, Salat, Tomate und Haussauce."
        ),
        "fr": Text(name="Burger classique", description=None),
    }
    assert fries.translations == {
        "de": Text(name="Pommes", description="Knusprige Pommes."),
        "fr": Text(name=None, description="Frites croustillantes."),
    }
    assert cola.translations == {}
    assert [v.translations for v in cola.variants] == [{"de": Text(name="Klein 0,3 l")}, {}, {}]
    categories = {c.id: c.translations for c in menu.categories}
    assert categories == {
        "burgers": {"de": Text(name="Burger")},
        "drinks": {"de": Text(name="Getränke")},
        "cold_drinks": {},
        "menus": {"de": Text(name="Menüs")},
    }
    extras = menu.modifier_group("burger_extras")
    assert extras is not None
    assert extras.translations == {"de": Text(name="Extras")}
    assert [o.translations for o in extras.options] == [{"de": Text(name="Extra Käse")}, {}]
    combo = menu.product("classic_menu")
    assert combo is not None
    assert combo.description == "Classic Burger and a drink."
    assert combo.translations == {
        "de": Text(name="Klassik Menü", description="Klassik Burger und ein Getränk.")
    }
    assert [s.translations for s in combo.slots] == [{}, {"de": Text(name="Getränk")}]


def test_allergens_map_to_the_eu_list(menu: Menu) -> None:
    burger = menu.product("classic_burger")
    beer = menu.product("craft_beer")
    cola = menu.product("cola")
    assert burger is not None and beer is not None and cola is not None
    assert burger.allergens == Allergens(
        contains=[Allergen.GLUTEN, Allergen.SESAME], may_contain=[Allergen.SOYBEANS]
    )
    assert beer.allergens.contains == [Allergen.GLUTEN]
    assert beer.allergens.may_contain == [Allergen.SULPHITES]
    assert cola.allergens == Allergens()


def test_an_unknown_allergen_fails_rather_than_vanishing(native_menu: dict[str, Any]) -> None:
    native_menu["items"][0]["allergens"]["contains"].append("pollen")
    with pytest.raises(PermanentError, match=r"items\[0\]\.allergens\.contains\[2\]: .*'pollen'"):
        menu_from_pos(native_menu, "downtown")


def test_tags_map_to_dietary_tags_and_unknown_ones_are_dropped(menu: Menu) -> None:
    tags = {p.id: p.tags for p in menu.products}
    assert tags == {
        "classic_burger": [DietaryTag.SPICY],
        "cola": [DietaryTag.VEGAN],
        "craft_beer": [],
        "fries": [DietaryTag.VEGETARIAN],
        "classic_menu": [],
    }
    cheese = menu.modifier_group("cheese_type")
    assert cheese is not None
    assert [o.tags for o in cheese.options] == [
        [],
        [DietaryTag.LACTOSE_FREE, DietaryTag.VEGETARIAN],
    ]


def test_kcal_becomes_nutrition_per_serving(menu: Menu) -> None:
    energy = {
        p.id: None if p.nutrition is None else (p.nutrition.per, p.nutrition.energy_kcal)
        for p in menu.products
    }
    assert energy == {
        "classic_burger": ("serving", 540),
        "cola": ("serving", 140),
        "craft_beer": ("serving", 145),
        "fries": None,
        "classic_menu": None,
    }


def test_option_allergens_tags_and_nutrition(menu: Menu) -> None:
    extras = menu.modifier_group("burger_extras")
    cheese = menu.modifier_group("cheese_type")
    assert extras is not None and cheese is not None
    extra_cheese, bacon = extras.options
    assert extra_cheese.allergens == Allergens(contains=[Allergen.MILK])
    assert extra_cheese.tags == [DietaryTag.VEGETARIAN]
    assert extra_cheese.nutrition == Nutrition(energy_kcal=70)
    assert (bacon.allergens, bacon.tags, bacon.nutrition) == (Allergens(), [], None)
    assert cheese.options[0].allergens == Allergens(
        contains=[Allergen.MILK], may_contain=[Allergen.MUSTARD]
    )


def test_hours_and_channels_become_availability(menu: Menu) -> None:
    beer = menu.product("craft_beer")
    assert beer is not None
    assert beer.availability.schedule == [TimeSlot(days=[4, 5], start="17:00", end="24:00")]
    assert beer.availability.channels == ["kiosk", "web", "dine_in"]
    # Friday 2024-05-03 18:00 UTC is 20:00 in Berlin; Thursday evening is outside the hours.
    friday = datetime(2024, 5, 3, 18, 0, tzinfo=UTC)
    assert beer.availability.is_orderable(friday, "web", menu.zone)
    assert not beer.availability.is_orderable(friday, "delivery", menu.zone)
    assert not beer.availability.is_orderable(friday - timedelta(days=1), "web", menu.zone)
    burger = menu.product("classic_burger")
    assert burger is not None
    assert (burger.availability.schedule, burger.availability.channels) == ([], [])


def test_category_hours_and_image(menu: Menu) -> None:
    categories = {c.id: c for c in menu.categories}
    assert categories["menus"].availability.schedule == [
        TimeSlot(days=[0, 1, 2, 3, 4], start="11:00", end="15:00")
    ]
    assert categories["burgers"].availability == Availability()
    assert categories["burgers"].image_url == "https://img.demopos.example/categories/burgers.jpg"
    assert categories["drinks"].image_url is None


def test_option_prices_become_product_option_prices(menu: Menu) -> None:
    burger = menu.product("classic_burger")
    cola = menu.product("cola")
    assert burger is not None and cola is not None
    assert burger.option_prices == [
        OptionPrice(
            group_id="burger_extras",
            option_id="extra_cheese",
            prices={"instore": 50, "delivery": 60},
        )
    ]
    assert cola.option_prices == []


def test_menu_uses_given_location(native_menu: dict[str, Any]) -> None:
    assert menu_from_pos(native_menu, "airport").location == "airport"


# Menus DemoPOS sends that cannot be read (each once found by tests/test_fuzz.py): a
# PermanentError naming the place in the document and the reason, never a crash of the plugin.


def _unreadable_menu(native_menu: dict[str, Any]) -> str:
    with pytest.raises(PermanentError) as caught:
        menu_from_pos(native_menu, "downtown")
    assert caught.value.message.startswith("unreadable DemoPOS menu of 'downtown': ")
    return caught.value.message


def test_a_missing_field_is_named(native_menu: dict[str, Any]) -> None:
    del native_menu["currency"]  # was a KeyError
    del native_menu["items"][1]["sizes"][0]["prices"]
    message = _unreadable_menu(native_menu)
    assert "currency: Field required" in message
    assert "items[1].sizes[0].prices: Field required" in message


def test_a_field_of_the_wrong_type_is_named(native_menu: dict[str, Any]) -> None:
    native_menu["items"][0]["names"] = ["Klassik Burger"]  # was an AttributeError (.keys)
    native_menu["modifier_groups"][0]["options"][0]["allergens"] = "milk"  # (.get)
    message = _unreadable_menu(native_menu)
    assert "items[0].names: Input should be a valid dictionary" in message
    assert "modifier_groups[0].options[0].allergens: Input should be a valid dictionary" in message


@pytest.mark.parametrize("price", [3.99, "330", True], ids=["fraction", "text", "boolean"])
def test_a_price_that_is_not_integer_cents_is_refused(
    native_menu: dict[str, Any], price: Any
) -> None:
    # int() used to accept all three: 3.99 became 3 cents, silently.
    native_menu["items"][1]["sizes"][0]["prices"]["instore"] = price
    message = _unreadable_menu(native_menu)
    assert "items[1].sizes[0].prices.instore: Input should be a valid integer" in message


def test_a_serving_window_ending_before_it_starts_is_named(native_menu: dict[str, Any]) -> None:
    # The universal TimeSlot refused it with a ValidationError that left the plugin unnamed.
    native_menu["categories"][3]["hours"][0].update({"from": "15:00", "to": "11:00"})
    message = _unreadable_menu(native_menu)
    assert "categories[3].hours[0]: end 11:00 must be after start 15:00" in message


def test_a_time_zone_that_is_not_a_zone_is_named(native_menu: dict[str, Any]) -> None:
    native_menu["timezone"] = "Europe"  # made ZoneInfo raise IsADirectoryError
    assert "timezone: unknown time zone 'Europe'" in _unreadable_menu(native_menu)


def test_a_number_beyond_64_bits_is_refused(native_menu: dict[str, Any]) -> None:
    # The menu translated, then the host failed to hash it (orjson: "Integer exceeds 64-bit
    # range"); from the wire such a number arrives as a float like 1e30, which int() took.
    native_menu["categories"][0]["sort"] = 1e30
    native_menu["items"][0]["kcal"] = 2**64
    message = _unreadable_menu(native_menu)
    assert "categories[0].sort: " in message
    assert "(got 1e+30)" in message
    assert "items[0].kcal: Input should be less than or equal to" in message


def test_a_combo_id_too_long_for_its_variant_id_is_named(native_menu: dict[str, Any]) -> None:
    # The combo's variant id (<id>:std) went over the model's 200 characters.
    native_menu["combos"][0]["id"] = "c" * 198
    message = _unreadable_menu(native_menu)
    assert "combos[0].id: String should have at most 196 characters" in message


def test_a_huge_value_is_not_repeated_in_the_message(native_menu: dict[str, Any]) -> None:
    native_menu["items"][0]["kcal"] = "9" * 100_000  # int() raised: "Exceeds the limit (4300
    assert len(_unreadable_menu(native_menu)) < 500  # digits) for integer string conversion"


def test_an_empty_category_reference_means_none(native_menu: dict[str, Any]) -> None:
    native_menu["items"][0]["category"] = ""
    assert menu_from_pos(native_menu, "downtown").products[0].category_ids == []


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
        "payments": [Payment(mode=PaymentMode.PREPAID, amount=total)],
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
        "channel": "web",
        "type": "takeaway",
        "currency": "EUR",
        "note": "no ice",
        "pickup_at": "2024-05-01T12:15:00+00:00",
        "customer": {"name": "Ada", "phone": "+49 30 1234"},
        "lines": [
            {
                "item": "cola",
                "size": "large",
                "qty": 2,
                "unit_price": 330,
                "mods": [],
                "discounts": [],
            }
        ],
        "discounts": [],
        "charges": [],
        "tip": 0,
        "tax": 0,
        "total": 660,
        "payments": [
            {"method": "other", "amount": 660, "paid": True, "provider": None, "reference": None}
        ],
        "delivery": None,
        "table": None,
        "fiscalised": False,
        "fiscal": None,
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
        _order(
            PLAIN_LINE,
            payments=[
                Payment(mode=PaymentMode.PREPAID, amount=160, method=PaymentMethod.GIFT_CARD),
                Payment(mode=PaymentMode.AT_COUNTER, amount=500, method=PaymentMethod.CASH),
            ],
        )
    )
    assert [(p["method"], p["amount"], p["paid"]) for p in body["payments"]] == [
        ("gift_card", 160, True),
        ("cash", 500, False),
    ]
    assert (body["note"], body["pickup_at"], body["customer"]) == (None, None, None)


def test_discounts_charges_tip_delivery_and_fiscal_receipt_travel() -> None:
    line = PLAIN_LINE.model_copy(
        update={"discounts": [Discount(kind=DiscountKind.STAFF, name="Staff", amount=60)]}
    )
    order = _order(
        line,
        channel="ubereats",
        type=OrderType.DELIVERY,
        discounts=[Discount(kind=DiscountKind.PROMOTION, name="Promo", amount=100, code="P1")],
        charges=[Charge(kind=ChargeKind.DELIVERY_FEE, name="Delivery", amount=250)],
        tip=50,
        total=660 - 60 - 100 + 250 + 50,
        payments=[Payment(mode=PaymentMode.PREPAID, amount=800, method=PaymentMethod.AGGREGATOR)],
        delivery=Delivery(display_code="K7", aggregator_order_id="UE-1"),
        fiscalised=True,
        fiscal=FiscalDocument(receipt_number="R-1", device_id="TSE-9"),
    )
    body = order_to_pos(order)
    assert body["channel"] == "ubereats"
    assert body["lines"][0]["discounts"] == [
        {"name": "Staff", "kind": "staff", "amount": 60, "code": None}
    ]
    assert body["discounts"] == [
        {"name": "Promo", "kind": "promotion", "amount": 100, "code": "P1"}
    ]
    assert body["charges"] == [
        {"name": "Delivery", "kind": "delivery_fee", "amount": 250, "taxable": False}
    ]
    assert (body["tip"], body["tax"], body["total"]) == (50, 0, 800)
    assert body["delivery"]["code"] == "K7" and body["delivery"]["platform_order_id"] == "UE-1"
    assert body["fiscal"]["receipt_number"] == "R-1" and body["fiscalised"] is True


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
            "discounts": [],
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
            "discounts": [],
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


def _feed_entry(**fields: Any) -> dict[str, Any]:
    return {
        "seq": 5,
        "order_id": "D-000002",
        "reference": "cloud-43",
        "location": "downtown",
        "state": "ready",
        "at": "2024-05-01T12:03:04Z",
        **fields,
    }


def test_feed_page_reports_unreadable_entries_and_keeps_the_others() -> None:
    # An unknown state (a newer DemoPOS) used to fail the whole poll, every time: the cursor
    # could never pass the entry, so no status of any order arrived again.
    page = feed_page_from_pos(
        {
            "events": [
                _feed_entry(seq=5, state="on_hold"),
                _feed_entry(seq=6),
                _feed_entry(seq=7, reference=None),
            ],
            "last_seq": 7,
            "has_more": False,
        }
    )
    assert [event.pos_event_id for event in page.events] == ["6"]
    assert page.unreadable == [
        "events[0]: unreadable DemoPOS order event: state: unknown DemoPOS order state "
        "'on_hold' (got 'on_hold')",
        "events[2]: unreadable DemoPOS order event: reference: Input should be a valid string",
    ]
    assert (page.last_seq, page.has_more) == (7, False)


@pytest.mark.parametrize(
    ("page", "problem"),
    [
        pytest.param({"events": []}, "last_seq: Field required", id="no-cursor"),
        pytest.param(
            {"events": {}, "last_seq": 1}, "events: Input should be a valid list", id="events"
        ),
        pytest.param([], "the document: Input should be a valid dictionary", id="not-object"),
    ],
)
def test_unreadable_feed_page_is_a_permanent_error(page: Any, problem: str) -> None:
    with pytest.raises(PermanentError) as caught:
        feed_page_from_pos(page)
    assert caught.value.message.startswith("unreadable DemoPOS events page: ")
    assert problem in caught.value.message


def test_feed_entry_at_the_edge_of_the_calendar_is_unreadable() -> None:
    # datetime.astimezone raised OverflowError here, which nothing caught.
    with pytest.raises(PermanentError, match="at: outside the range of dates this host handles"):
        status_event_from_pos(_feed_entry(at="0001-01-01T00:00:00+01:00"))


# ---------------------------------------------------------------------------------------------
# Availability webhooks
# ---------------------------------------------------------------------------------------------


def _availability_event(**fields: Any) -> dict[str, Any]:
    return {
        "type": "availability",
        "seq": 3,
        "location": "downtown",
        "available": False,
        "until": None,
        "reason": None,
        "hours": None,
        "channels": None,
        "at": "2024-05-01T12:00:00.000Z",
        **fields,
    }


def test_86d_item_becomes_product_change() -> None:
    change = availability_change_from_pos(
        _availability_event(item="fries", until="2024-05-01T18:00:00.000Z", reason="fryer broken")
    )
    assert change == AvailabilityChange(
        location="downtown",
        product_id="fries",
        availability=Availability(
            available=False,
            unavailable_until=datetime(2024, 5, 1, 18, tzinfo=UTC),
            reason="fryer broken",
        ),
    )


def test_86d_option_becomes_option_change_of_its_group() -> None:
    change = availability_change_from_pos(
        _availability_event(option="sauce_bbq", group="burger_sauce", reason="out of stock")
    )
    assert change == AvailabilityChange(
        location="downtown",
        group_id="burger_sauce",
        option_id="sauce_bbq",
        availability=Availability(available=False, reason="out of stock"),
    )


def test_item_back_is_available_and_keeps_hours_and_channels() -> None:
    change = availability_change_from_pos(
        _availability_event(
            item="pancakes",
            available=True,
            hours=[{"days": [0, 1], "from": "06:00", "to": "11:00"}],
            channels=["kiosk", "web"],
        )
    )
    assert change == AvailabilityChange(
        location="downtown",
        product_id="pancakes",
        availability=Availability(
            available=True,
            schedule=[TimeSlot(days=[0, 1], start="06:00", end="11:00")],
            channels=["kiosk", "web"],
        ),
    )


def test_fast_path_matches_a_full_sync(native_menu: dict[str, Any], menu: Menu) -> None:
    """Applying the webhook's change gives the menu a full sync of the 86'd menu gives."""
    item = next(i for i in native_menu["items"] if i.get("hours") or i.get("channels"))
    item.update(available=False, unavailable_until=None, unavailable_reason="sold out")
    event = _availability_event(
        item=item["id"],
        reason="sold out",
        hours=item.get("hours"),
        channels=item.get("channels"),
    )
    fast, unknown = apply_availability(menu, [availability_change_from_pos(event)])
    assert unknown == []
    assert fast == menu_from_pos(native_menu, "downtown")


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        pytest.param({}, "names exactly one of 'item' or 'option'", id="neither"),
        pytest.param(
            {"item": "fries", "option": "sauce_bbq", "group": "g"},
            "names exactly one of 'item' or 'option'",
            id="both",
        ),
        pytest.param(
            {"available": "no", "item": "fries"},
            "available: Input should be a valid boolean (got 'no')",
            id="available",
        ),
        pytest.param(
            {"until": "tomorrow", "item": "fries"},
            "until: Input should be a valid datetime",
            id="until",
        ),
    ],
)
def test_unreadable_availability_event_is_an_error(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(PermanentError) as caught:
        availability_change_from_pos(_availability_event(**fields))
    assert caught.value.message.startswith("unreadable DemoPOS availability webhook: ")
    assert problem in caught.value.message


def test_option_without_group_is_an_error() -> None:
    with pytest.raises(PermanentError, match="an option's availability names its 'group'"):
        availability_change_from_pos(_availability_event(option="sauce_bbq"))
