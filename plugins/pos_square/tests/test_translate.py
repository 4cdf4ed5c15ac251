"""The Square translation against hand-recorded catalog pages (tests/fixtures)."""

from __future__ import annotations

import gc
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pos_square.catalog import (
    PRICE_LIST_ID,
    catalog_page,
    currency_and_timezone,
    menu_from_catalog,
    percentage_to_ppm,
    present_at,
    selection_limits,
)
from pos_square.orders import (
    cancel_request,
    missing_payment,
    order_to_square,
    payment_idempotency_key,
    payments_for,
)
from pos_square.translate import (
    status_event_from_order,
    status_from_fulfillment,
    status_of_order,
)
from posintegrator.errors import PermanentError
from posintegrator.model import (
    Address,
    Allergen,
    Charge,
    ChargeKind,
    ComboComponent,
    Courier,
    Customer,
    Delivery,
    DietaryTag,
    Discount,
    DiscountKind,
    Menu,
    Order,
    OrderLine,
    OrderStatus,
    OrderType,
    Payment,
    PaymentMethod,
    PaymentMode,
    SelectedModifier,
)
from posintegrator.model.menu_check import check_menu, errors_in

FIXTURES = Path(__file__).parent / "fixtures"
KEY = "0b9d7c52-6a3c-5b5e-9a43-4f0e7d1c2b3a"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def catalog() -> list[dict[str, Any]]:
    return load("catalog_page1.json")["objects"] + load("catalog_page2.json")["objects"]


def downtown() -> Menu:
    return menu_from_catalog(catalog(), "downtown", "L1DOWNTOWN", "USD", "America/New_York")


def airport() -> Menu:
    return menu_from_catalog(catalog(), "airport", "L2AIRPORT", "USD", "America/New_York")


def product(menu: Menu, product_id: str) -> Any:
    found = menu.product(product_id)
    assert found is not None, product_id
    return found


def variant(menu: Menu, product_id: str, variant_id: str) -> Any:
    return next(v for v in product(menu, product_id).variants if v.id == variant_id)


def group(menu: Menu, group_id: str) -> Any:
    found = menu.modifier_group(group_id)
    assert found is not None, group_id
    return found


def make_order(**overrides: Any) -> Order:
    fields: dict[str, Any] = {
        "id": "ord-1001",
        "location": "downtown",
        "type": OrderType.TAKE_AWAY,
        "currency": "USD",
        "lines": [
            OrderLine(
                product_id="ITEM_LATTE",
                variant_id="VAR_LATTE_M",
                quantity=2,
                unit_price=525,
                modifiers=[
                    SelectedModifier(
                        option_id="MOD_CARAMEL",
                        group_id="ML_SYRUP",
                        quantity=1,
                        modifiers=[SelectedModifier(option_id="MOD_SHOT", quantity=2)],
                    )
                ],
                note="extra hot",
            ),
            OrderLine(product_id="ITEM_BAGEL", variant_id="VAR_BAGEL", quantity=1, unit_price=300),
        ],
        "total": 1350,
        "payments": [Payment(mode=PaymentMode.PREPAID, amount=1350, reference="pi_123")],
        "customer": Customer(name="Ada Lovelace", phone="+1 (415) 555-0100"),
        "customer_note": "Ring the bell",
    }
    fields.update(overrides)
    return Order(**fields)


# --- menu -------------------------------------------------------------------------------------


def test_menu_is_valid_and_located() -> None:
    menu = downtown()
    assert errors_in(check_menu(menu)) == []
    assert (menu.location, menu.currency, menu.timezone) == ("downtown", "USD", "America/New_York")
    assert [p.id for p in menu.price_lists] == [PRICE_LIST_ID]
    assert menu.price_lists[0].channels == [], "one price list for every channel"
    assert menu.price_list_for("ubereats") == menu.price_lists[0]
    assert menu.tax_rounding == "half_even", "Square rounds half to even"
    assert menu.source_updated_at == datetime(2025, 8, 2, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("stamps", "latest"),
    [
        # Square's own form: the latest by string is the latest in time.
        (
            ["2025-08-02T09:30:00.000Z", "2025-08-02T10:15:00.500Z"],
            datetime(2025, 8, 2, 10, 15, 0, 500000, tzinfo=UTC),
        ),
        # Mixed forms: 11:30+02:00 is 09:30Z, earlier than 09:45Z though it sorts later.
        (
            ["2025-08-02T11:30:00+02:00", "2025-08-02T09:45:00Z"],
            datetime(2025, 8, 2, 9, 45, tzinfo=UTC),
        ),
        (
            ["2025-08-02T09:45:00Z", "2025-08-02T09:45:00.250Z"],
            datetime(2025, 8, 2, 9, 45, 0, 250000, tzinfo=UTC),
        ),
    ],
)
def test_menu_update_time_is_the_latest_object_update(stamps: list[str], latest: datetime) -> None:
    objects = [
        {"type": "CATEGORY", "id": f"CAT_{n}", "updated_at": stamp, "category_data": {"name": "C"}}
        for n, stamp in enumerate(stamps)
    ]
    menu = menu_from_catalog(objects, "downtown", "L1", "USD", "UTC")
    assert menu.source_updated_at == latest


def test_products_present_here_in_category_order() -> None:
    # Mocha (legacy category_id, ordinal 0) before Latte (1) before Cold Brew (2), then Food.
    assert [p.id for p in downtown().products] == [
        "ITEM_MOCHA",
        "ITEM_LATTE",
        "ITEM_COLDBREW",
        "ITEM_BAGEL",
    ]
    # The muffin is absent downtown only; the deleted scone is nowhere.
    assert [p.id for p in airport().products][-1] == "ITEM_MUFFIN"
    assert airport().product("ITEM_OLD") is None


def test_sizes_become_variants_with_location_prices() -> None:
    menu = downtown()
    latte = product(menu, "ITEM_LATTE")
    assert [(v.id, v.pos_id, v.name) for v in latte.variants] == [
        ("VAR_LATTE_S", "VAR_LATTE_S", "Small"),
        ("VAR_LATTE_M", "VAR_LATTE_M", "Medium"),
        ("VAR_LATTE_L", "VAR_LATTE_L", "Large"),
    ]
    assert [v.prices for v in latte.variants] == [{"square": 350}, {"square": 450}, {"square": 500}]
    # Elsewhere the medium has its own price, and the XL (present only at the airport) appears.
    assert variant(airport(), "ITEM_LATTE", "VAR_LATTE_M").prices == {"square": 425}
    assert [v.id for v in product(airport(), "ITEM_LATTE").variants][-1] == "VAR_LATTE_XL"


def test_sold_out_override_86s_the_variant_here_only() -> None:
    large = variant(downtown(), "ITEM_LATTE", "VAR_LATTE_L")
    assert large.availability.available is False
    assert large.availability.unavailable_until == datetime(2025, 9, 1, 18, tzinfo=UTC)
    assert variant(airport(), "ITEM_LATTE", "VAR_LATTE_L").availability.available is True
    assert variant(downtown(), "ITEM_LATTE", "VAR_LATTE_S").availability.available is True


def test_variable_pricing_variation_is_skipped() -> None:
    assert [v.id for v in product(downtown(), "ITEM_MOCHA").variants] == ["VAR_MOCHA_REG"]


def test_item_option_values_name_the_variants() -> None:
    names = [v.name for v in product(downtown(), "ITEM_COLDBREW").variants]
    assert names == ["Whole milk", "Oat milk"]


def test_categories_and_legacy_category_id() -> None:
    menu = downtown()
    assert [(c.id, c.parent_id, c.sort) for c in menu.categories] == [
        ("CAT_COFFEE", None, 0),
        ("CAT_FOOD", None, 0),
        ("CAT_SEASONAL", "CAT_COFFEE", 2),
    ]
    assert product(menu, "ITEM_LATTE").category_ids == ["CAT_COFFEE"]
    assert product(menu, "ITEM_MOCHA").category_ids == ["CAT_COFFEE"]
    assert product(menu, "ITEM_BAGEL").category_ids == ["CAT_FOOD"]


def test_taxes_exact_rates_inclusion_and_combination() -> None:
    menu = downtown()
    taxes = {t.id: t for t in menu.taxes}
    assert taxes["TAX_SALES"].rate_ppm == 88750
    assert taxes["TAX_SALES"].inclusive is False
    assert taxes["TAX_BAG"].rate_ppm == 5000
    assert taxes["TAX_BAG"].inclusive is True
    assert product(menu, "ITEM_LATTE").tax_id == "TAX_SALES"
    combined = taxes[product(menu, "ITEM_BAGEL").tax_id]
    assert (combined.rate_ppm, combined.inclusive) == (93750, False)
    assert combined.pos_id == "TAX_BAG,TAX_SALES"
    # is_taxable false wins over tax_ids.
    assert product(airport(), "ITEM_MUFFIN").tax_id is None


@pytest.mark.parametrize(
    ("percentage", "ppm"),
    [("8.875", 88750), ("7", 70000), ("7.5", 75000), ("0.0001", 1), ("19.00", 190000)],
)
def test_percentage_to_ppm_is_exact(percentage: str, ppm: int) -> None:
    assert percentage_to_ppm(percentage) == ppm


@pytest.mark.parametrize("percentage", ["Infinity", "NaN", "1e999999", "150", "-1", "abc"])
def test_percentage_that_is_not_a_rate_is_refused(percentage: str) -> None:
    # "Infinity" and "1e999999" raised decimal.InvalidOperation (not a ValueError); "150" made
    # a Tax the model refused.
    with pytest.raises(ValueError, match="is not a number from 0 to 100"):
        percentage_to_ppm(percentage)


def test_modifier_list_used_as_is_keeps_its_id_and_rule() -> None:
    menu = downtown()
    latte = product(menu, "ITEM_LATTE")
    assert latte.modifier_group_ids == ["ML_SYRUP", "ML_EXTRA_SHOTS"]
    syrups = group(menu, "ML_SYRUP")
    assert (syrups.pos_id, syrups.name, syrups.min, syrups.max) == ("ML_SYRUP", "Syrups", 0, 2)
    # Maple is absent downtown; caramel has a location price; hazelnut is sold out here.
    assert [o.id for o in syrups.options] == ["MOD_VANILLA", "MOD_CARAMEL", "MOD_HAZELNUT"]
    prices = {o.id: o.prices[PRICE_LIST_ID] for o in syrups.options}
    assert prices == {"MOD_VANILLA": 50, "MOD_CARAMEL": 75, "MOD_HAZELNUT": 60}
    hazelnut = syrups.options[2]
    assert hazelnut.availability.available is False
    assert [o.default for o in syrups.options] == [False, False, False]
    assert "MOD_MAPLE" in [o.id for o in group(airport(), "ML_SYRUP").options]


def test_item_specific_limits_get_their_own_group() -> None:
    menu = downtown()
    mocha_group = group(menu, product(menu, "ITEM_MOCHA").modifier_group_ids[0])
    # min 1, max 0 (= no limit), vanilla on by default for this item only.
    assert mocha_group.id.startswith("ML_SYRUP@1-0~d")
    assert (mocha_group.min, mocha_group.max, mocha_group.pos_id) == (1, None, "ML_SYRUP")
    assert [o.id for o in mocha_group.options if o.default] == ["MOD_VANILLA"]
    # min -1 takes the list's 0, max 3 is the item's.
    cold_brew = product(menu, "ITEM_COLDBREW")
    assert cold_brew.modifier_group_ids == ["ML_SYRUP@0-3"]  # the disabled Sides list is left out
    cold = group(menu, "ML_SYRUP@0-3")
    assert (cold.min, cold.max) == (0, 3)
    assert not any(o.default for o in cold.options)
    assert len(menu.modifier_groups) == 5


def test_single_selection_list_defaults_and_quantities() -> None:
    menu = downtown()
    sides = group(menu, "ML_SIDES")
    assert (sides.min, sides.max) == (0, 1)  # selection_type SINGLE, no min/max set
    assert [(o.id, o.default, o.prices[PRICE_LIST_ID]) for o in sides.options] == [
        ("MOD_SALAD", False, 0),
        ("MOD_FRIES", True, 150),
    ]
    shots = group(menu, "ML_EXTRA_SHOTS")
    assert (shots.min, shots.max) == (0, None)
    assert shots.options[0].max_quantity == 99  # allow_quantities without a total limit
    assert group(menu, "ML_SYRUP").options[0].max_quantity == 1


@pytest.mark.parametrize(
    ("list_data", "info", "expected"),
    [
        ({"min_selected_modifiers": 1, "max_selected_modifiers": 3}, {}, (1, 3)),
        (
            {"min_selected_modifiers": 1, "max_selected_modifiers": 3},
            {"min_selected_modifiers": -1, "max_selected_modifiers": -1},
            (1, 3),
        ),
        (
            {"min_selected_modifiers": 1, "max_selected_modifiers": 3},
            {"min_selected_modifiers": 0, "max_selected_modifiers": 0},
            (0, None),
        ),
        ({"min_selected_modifiers": -1, "max_selected_modifiers": 0}, {}, (0, None)),
        ({"min_selected_modifiers": -5, "max_selected_modifiers": -7}, {}, (0, None)),
        ({"selection_type": "SINGLE"}, {}, (0, 1)),
        ({"selection_type": "MULTIPLE"}, {}, (0, None)),
        ({"max_selected_modifiers": 2}, {"min_selected_modifiers": 4}, (2, 2)),
    ],
)
def test_selection_limits(
    list_data: dict[str, Any], info: dict[str, Any], expected: tuple[int, int | None]
) -> None:
    assert selection_limits(list_data, info) == expected


def test_images_food_details_and_pos_ids() -> None:
    menu = downtown()
    latte = product(menu, "ITEM_LATTE")
    assert latte.image_url is not None and latte.image_url.endswith("/latte/original.jpeg")
    assert latte.description == "Espresso with steamed milk"
    assert latte.allergens.contains == [Allergen.MILK]
    assert latte.tags == [DietaryTag.VEGETARIAN]
    assert latte.nutrition is not None and latte.nutrition.energy_kcal == 190
    assert menu.categories[0].image_url is not None
    for p in menu.products:
        assert p.pos_id == p.id
        assert all(v.pos_id == v.id for v in p.variants)


def test_presence_rules() -> None:
    base = {"id": "X", "type": "ITEM"}
    assert present_at(base, "L1")
    assert not present_at({**base, "is_deleted": True}, "L1")
    assert not present_at({**base, "absent_at_location_ids": ["L1"]}, "L1")
    assert present_at({**base, "absent_at_location_ids": ["L1"]}, "L2")
    only_l2 = {**base, "present_at_all_locations": False, "present_at_location_ids": ["L2"]}
    assert not present_at(only_l2, "L1")
    assert present_at(only_l2, "L2")


# --- orders -----------------------------------------------------------------------------------


def test_order_to_square_request() -> None:
    request = order_to_square(make_order(), "L1DOWNTOWN", KEY)
    assert request["idempotency_key"] == KEY
    body = request["order"]
    assert body["location_id"] == "L1DOWNTOWN"
    assert body["reference_id"] == "ord-1001"
    assert body["source"] == {"name": "posintegrator"}
    first, second = body["line_items"]
    assert first["catalog_object_id"] == "VAR_LATTE_M"  # the variation, never the item
    assert first["quantity"] == "2"
    assert first["note"] == "extra hot"
    assert [(m["catalog_object_id"], m["quantity"]) for m in first["modifiers"]] == [
        ("MOD_CARAMEL", "1"),
        ("MOD_SHOT", "2"),
    ]
    assert second == {"uid": "line-2", "catalog_object_id": "VAR_BAGEL", "quantity": "1"}
    (fulfillment,) = body["fulfillments"]
    assert fulfillment["type"] == "PICKUP"
    details = fulfillment["pickup_details"]
    assert details["recipient"] == {"display_name": "Ada Lovelace", "phone_number": "+14155550100"}
    assert details["schedule_type"] == "ASAP"
    assert "pickup_at" not in details
    assert details["note"] == "Ring the bell"
    assert body["metadata"] == {"posintegrator_order_id": "ord-1001", "posintegrator_key": KEY}
    assert "discounts" not in body and "service_charges" not in body


def test_scheduled_pickup_time_is_rfc3339() -> None:
    pickup = datetime(2025, 8, 20, 17, 45, tzinfo=UTC)
    body = order_to_square(make_order(pickup_time=pickup), "L1DOWNTOWN", KEY)["order"]
    details = body["fulfillments"][0]["pickup_details"]
    assert details["pickup_at"] == "2025-08-20T17:45:00.000Z"
    assert details["schedule_type"] == "SCHEDULED"


def test_line_without_variant_uses_the_known_single_variation() -> None:
    order = make_order(
        lines=[OrderLine(product_id="ITEM_BAGEL", quantity=1, unit_price=300)],
        total=300,
        payments=[Payment(mode=PaymentMode.AT_COUNTER, amount=300)],
    )
    body = order_to_square(order, "L1", KEY, variations={"ITEM_BAGEL": "VAR_BAGEL"})["order"]
    assert body["line_items"][0]["catalog_object_id"] == "VAR_BAGEL"
    with pytest.raises(ValueError, match="names no variation"):
        order_to_square(order, "L1", KEY)


def test_combos_other_types_and_long_references_are_refused() -> None:
    combo = OrderLine(
        product_id="COMBO",
        quantity=1,
        unit_price=900,
        components=[ComboComponent(slot_id="main", product_id="ITEM_BAGEL")],
    )
    with pytest.raises(ValueError, match="no combos"):
        order_to_square(
            make_order(
                lines=[combo],
                total=900,
                payments=[Payment(mode=PaymentMode.AT_COUNTER, amount=900)],
            ),
            "L1",
            KEY,
        )
    with pytest.raises(ValueError, match="not supported"):
        order_to_square(make_order(type=OrderType.DINE_IN), "L1", KEY)
    with pytest.raises(ValueError, match="40-character"):
        order_to_square(make_order(id="x" * 41), "L1", KEY)


def test_each_prepaid_payment_is_an_external_payment() -> None:
    (payment,) = payments_for(make_order(), "SQ_ORDER_1", KEY, square_location_id="L1DOWNTOWN")
    assert payment["source_id"] == "EXTERNAL"
    assert payment["external_details"] == {
        "type": "OTHER",
        "source": "posintegrator",
        "source_id": "pi_123",
    }
    assert payment["amount_money"] == {"amount": 1350, "currency": "USD"}
    assert "tip_money" not in payment
    assert payment["order_id"] == "SQ_ORDER_1"
    assert payment["location_id"] == "L1DOWNTOWN"
    assert payment["idempotency_key"] == f"{KEY}-pay"
    counter = make_order(payments=[Payment(mode=PaymentMode.AT_COUNTER, amount=1350)])
    assert payments_for(counter, "SQ_ORDER_1", KEY) == []


def test_split_payments_carry_the_tip_first_ones_first() -> None:
    order = make_order(
        tip=200,
        total=1550,
        payments=[
            Payment(mode=PaymentMode.PREPAID, amount=150, method=PaymentMethod.GIFT_CARD),
            Payment(
                mode=PaymentMode.PREPAID,
                amount=1000,
                method=PaymentMethod.CARD,
                provider="stripe",
                reference="pi_9",
            ),
            Payment(mode=PaymentMode.AT_COUNTER, amount=400, method=PaymentMethod.CASH),
        ],
    )
    gift, card = payments_for(order, "SQ_ORDER_1", KEY)
    assert (gift["amount_money"]["amount"], gift["tip_money"]["amount"]) == (0, 150)
    assert (card["amount_money"]["amount"], card["tip_money"]["amount"]) == (950, 50)
    assert gift["external_details"]["type"] == "OTHER_GIFT_CARD"
    assert card["external_details"] == {"type": "CARD", "source": "stripe", "source_id": "pi_9"}
    assert [gift["idempotency_key"], card["idempotency_key"]] == [f"{KEY}-pay", f"{KEY}-pay2"]


def test_payment_key_fits_squares_limit() -> None:
    for index in (0, 1, 9):
        key = payment_idempotency_key("k" * 44, index)
        assert len(key) <= 45 and key == payment_idempotency_key("k" * 44, index)
    assert payment_idempotency_key("a" * 44) != payment_idempotency_key("b" * 44)
    assert payment_idempotency_key("a" * 44, 0) != payment_idempotency_key("a" * 44, 1)


def test_missing_payment_of_a_first_release_order() -> None:
    square_order = {
        "id": "SQ_ORDER_1",
        "location_id": "L1DOWNTOWN",
        "reference_id": "ord-1001",
        "metadata": {
            "posintegrator_order_id": "ord-1001",
            "posintegrator_key": KEY,
            "posintegrator_prepaid_amount": "1350",
        },
        "total_money": {"amount": 1350, "currency": "USD"},
    }
    recovered = missing_payment(square_order)
    assert recovered is not None
    assert recovered["idempotency_key"] == f"{KEY}-pay"
    assert recovered["amount_money"] == {"amount": 1350, "currency": "USD"}
    assert missing_payment({**square_order, "tenders": [{"id": "T1"}]}) is None
    assert missing_payment({**square_order, "metadata": {"posintegrator_key": KEY}}) is None


def test_discounts_are_fixed_amounts_on_lines_split_as_the_host_splits_them() -> None:
    latte = (
        make_order()
        .lines[0]
        .model_copy(
            update={"discounts": [Discount(kind=DiscountKind.STAFF, name="Staff", amount=105)]}
        )
    )
    order = make_order(
        lines=[latte, make_order().lines[1]],
        discounts=[
            Discount(kind=DiscountKind.PROMOTION, name="Promo", amount=100, code="X"),
            Discount(kind=DiscountKind.LOYALTY, name="Reward", amount=50),
        ],
        total=1350 - 105 - 150,
        payments=[Payment(mode=PaymentMode.PREPAID, amount=1095)],
    )
    body = order_to_square(order, "L1", KEY)["order"]
    amounts = {d["uid"]: d["amount_money"]["amount"] for d in body["discounts"]}
    # line nets 945 and 300 share the 150 of order discounts as 114 and 36 (largest remainder),
    # each share split 2:1 between the promo and the reward
    assert amounts == {
        "line-1-discount-1": 105,
        "discount-1-line-1": 76,
        "discount-2-line-1": 38,
        "discount-1-line-2": 24,
        "discount-2-line-2": 12,
    }
    assert {d["type"] for d in body["discounts"]} == {"FIXED_AMOUNT"}
    assert {d["scope"] for d in body["discounts"]} == {"LINE_ITEM"}
    first, second = body["line_items"]
    assert [a["discount_uid"] for a in first["applied_discounts"]] == [
        "line-1-discount-1",
        "discount-1-line-1",
        "discount-2-line-1",
    ]
    assert [a["discount_uid"] for a in second["applied_discounts"]] == [
        "discount-1-line-2",
        "discount-2-line-2",
    ]


def test_charges_are_service_charges_and_taxable_ones_name_their_taxes() -> None:
    order = make_order(
        charges=[
            Charge(
                kind=ChargeKind.DELIVERY_FEE,
                name="Delivery",
                amount=299,
                taxable=True,
                tax_id="TAX_A+TAX_B",
            ),
            Charge(kind=ChargeKind.BAG_FEE, name="Bag", amount=10),
        ],
        total=1350 + 309,
        payments=[Payment(mode=PaymentMode.PREPAID, amount=1659)],
    )
    body = order_to_square(order, "L1", KEY)["order"]
    delivery, bag = body["service_charges"]
    assert delivery == {
        "uid": "charge-1",
        "name": "Delivery",
        "amount_money": {"amount": 299, "currency": "USD"},
        "calculation_phase": "SUBTOTAL_PHASE",
        "taxable": True,
        "applied_taxes": [{"tax_uid": "tax-TAX_A"}, {"tax_uid": "tax-TAX_B"}],
    }
    assert bag["taxable"] is False and "applied_taxes" not in bag
    assert body["taxes"] == [
        {"uid": "tax-TAX_A", "catalog_object_id": "TAX_A", "scope": "LINE_ITEM"},
        {"uid": "tax-TAX_B", "catalog_object_id": "TAX_B", "scope": "LINE_ITEM"},
    ]


def test_delivery_orders_get_a_delivery_fulfillment() -> None:
    promised = datetime(2025, 8, 20, 18, 30, tzinfo=UTC)
    order = make_order(
        type=OrderType.DELIVERY,
        delivery=Delivery(
            address=Address(
                street="1 Main St",
                extra="Apt 2",
                city="New York",
                postal_code="10001",
                region="NY",
                country="US",
            ),
            instructions="Leave at the door",
            courier=Courier(name="Sam", phone="+1 212 555 0101", provider="Uber Eats"),
            aggregator_order_id="UE-" + "9" * 60,
            display_code="K7",
            promised_at=promised,
        ),
    )
    (fulfillment,) = order_to_square(order, "L1", KEY)["order"]["fulfillments"]
    assert fulfillment["type"] == "DELIVERY"
    details = fulfillment["delivery_details"]
    assert details["recipient"]["address"] == {
        "address_line_1": "1 Main St",
        "address_line_2": "Apt 2",
        "locality": "New York",
        "postal_code": "10001",
        "administrative_district_level_1": "NY",
        "country": "US",
    }
    assert (details["schedule_type"], details["deliver_at"]) == (
        "SCHEDULED",
        "2025-08-20T18:30:00.000Z",
    )
    assert details["note"] == "Courier code K7 | Ring the bell"
    assert details["dropoff_notes"] == "Leave at the door"
    assert len(details["external_delivery_id"]) == 50
    assert details["courier_provider_name"] == "Uber Eats"
    assert details["courier_support_phone_number"] == "+12125550101"
    assert details["managed_delivery"] is True
    asap = make_order(type=OrderType.DELIVERY)
    details = order_to_square(asap, "L1", KEY, delivery_prep="PT35M")["order"]["fulfillments"][0][
        "delivery_details"
    ]
    assert (details["schedule_type"], details["prep_time_duration"]) == ("ASAP", "PT35M")


def test_cancel_request_cancels_the_order_and_its_open_fulfillment() -> None:
    square_order = {
        "id": "SQ1",
        "location_id": "L1",
        "version": 4,
        "fulfillments": [{"uid": "delivery", "type": "DELIVERY", "state": "RESERVED"}],
    }
    request = cancel_request(square_order, "customer changed their mind " * 10)
    assert request["idempotency_key"] == "SQ1-cancel-v4"
    assert request["order"]["state"] == "CANCELED"
    assert request["order"]["version"] == 4
    (fulfillment,) = request["order"]["fulfillments"]
    assert fulfillment["state"] == "CANCELED"
    assert len(fulfillment["delivery_details"]["cancel_reason"]) == 100


# --- status -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("PROPOSED", OrderStatus.ACCEPTED),
        ("RESERVED", OrderStatus.IN_PREPARATION),
        ("PREPARED", OrderStatus.READY),
        ("COMPLETED", OrderStatus.COMPLETED),
        ("CANCELED", OrderStatus.CANCELLED),
        ("FAILED", OrderStatus.FAILED),
    ],
)
def test_status_from_fulfillment(state: str, status: OrderStatus) -> None:
    assert status_from_fulfillment(state) == status


def test_unknown_fulfillment_state_raises() -> None:
    with pytest.raises(ValueError, match="unknown"):
        status_from_fulfillment("TELEPORTED")


def square_order(state: str, fulfillment: str | None) -> dict[str, Any]:
    order: dict[str, Any] = {
        "id": "SQ_ORDER_1",
        "reference_id": "ord-1001",
        "location_id": "L1DOWNTOWN",
        "state": state,
        "version": 3,
        "updated_at": "2025-08-20T11:55:09.000Z",
    }
    if fulfillment is not None:
        order["fulfillments"] = [{"uid": "pickup", "type": "PICKUP", "state": fulfillment}]
    return order


def test_order_state_wins_over_fulfillment() -> None:
    assert status_of_order(square_order("OPEN", "PREPARED")) == OrderStatus.READY
    assert status_of_order(square_order("CANCELED", "PREPARED")) == OrderStatus.CANCELLED
    assert status_of_order(square_order("COMPLETED", "PREPARED")) == OrderStatus.COMPLETED
    assert status_of_order(square_order("OPEN", None)) == OrderStatus.ACCEPTED
    assert status_of_order(square_order("DRAFT", "PROPOSED")) is None


def test_status_event_from_order() -> None:
    event = status_event_from_order(square_order("OPEN", "RESERVED"))
    assert event is not None
    assert (event.order_id, event.pos_order_id) == ("ord-1001", "SQ_ORDER_1")
    assert event.status == OrderStatus.IN_PREPARATION
    assert event.occurred_at == datetime(2025, 8, 20, 11, 55, 9, tzinfo=UTC)
    assert event.pos_event_id == "SQ_ORDER_1:v3"
    assert event.source == "pos:square"


def test_translation_leaves_the_garbage_collector_as_it_found_it() -> None:
    """The collector is paused while translating and on again after; objects the process
    froze itself (a pre-forking server's gc.freeze()) stay frozen."""
    assert gc.isenabled()
    downtown()
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        assert frozen > 0
        downtown()
        assert gc.isenabled()
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


# --- what Square may send that cannot be read (each found by tests/test_fuzz.py) -------------
# A catalog, location or order the translation cannot read is a PermanentError naming the
# catalog object (or the order), the field and the reason, never a crash of the plugin.


def _objects_where(change: Any) -> list[dict[str, Any]]:
    objects = catalog()
    change({o["id"]: o for o in objects} | _nested(objects), objects)
    return objects


def _nested(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Variations and modifiers by id, to change them in place."""
    found = {}
    for obj in objects:
        data = obj.get("item_data") or obj.get("modifier_list_data") or {}
        for child in data.get("variations") or data.get("modifiers") or []:
            found[child["id"]] = child
    return found


CATALOG_FAULTS = {
    # was TypeError: string indices must be integers
    "an object that is not one": (
        lambda by_id, objects: objects.insert(2, "ITEM_LATTE"),
        "catalog: objects[2]: expected a catalog object with an id, got 'ITEM_LATTE'",
    ),
    # was KeyError: 'id'
    "an object without an id": (
        lambda by_id, objects: objects.append({"type": "ITEM"}),
        "catalog: objects[17]: expected a catalog object with an id, got dict",
    ),
    # was AttributeError: 'list' object has no attribute 'get'
    "item_data that is not an object": (
        lambda by_id, objects: by_id["ITEM_MOCHA"].update(item_data=["Mocha"]),
        "ITEM 'ITEM_MOCHA': item_data: expected an object, got list",
    ),
    # was ValueError: invalid literal for int() (and 3.99 became 3)
    "a price that is not whole cents": (
        lambda by_id, objects: by_id["VAR_LATTE_S"]["item_variation_data"]["price_money"].update(
            amount=3.99
        ),
        "ITEM_VARIATION 'VAR_LATTE_S': prices.square: Input should be a valid integer (got 3.99)",
    ),
    # was a ValidationError of the universal Variant, naming no catalog object
    "a negative price": (
        lambda by_id, objects: by_id["VAR_LATTE_S"]["item_variation_data"]["price_money"].update(
            amount=-350
        ),
        "ITEM_VARIATION 'VAR_LATTE_S': prices.square: Input should be greater than or equal to 0 "
        "(got -350)",
    ),
    # was TypeError: '<' not supported between instances of 'str' and 'int'
    "an ordinal that is not a number": (
        lambda by_id, objects: by_id["VAR_LATTE_M"]["item_variation_data"].update(ordinal="2"),
        "ITEM_VARIATION 'VAR_LATTE_M': ordinal: expected a whole number, got '2'",
    ),
    # was TypeError: unhashable type: 'list'
    "a tax id that is not an id": (
        lambda by_id, objects: by_id["ITEM_MOCHA"]["item_data"].update(tax_ids=[["TAX_SALES"]]),
        "ITEM 'ITEM_MOCHA': tax_ids[0]: expected an id, got list",
    ),
    # was decimal.InvalidOperation
    "a tax rate that is not a percentage": (
        lambda by_id, objects: by_id["TAX_SALES"]["tax_data"].update(percentage="Infinity"),
        "TAX 'TAX_SALES': percentage: tax percentage 'Infinity' is not a number from 0 to 100",
    ),
    # was ValueError: Invalid isoformat string
    "a sold-out time that is not a time": (
        lambda by_id, objects: by_id["VAR_LATTE_M"]["item_variation_data"]["location_overrides"][
            0
        ].update(sold_out=True, sold_out_valid_until="tomorrow"),
        "ITEM_VARIATION 'VAR_LATTE_M': sold_out_valid_until: expected an RFC 3339 timestamp, "
        "got 'tomorrow'",
    ),
    # was ValueError from int(); 1e30 passed and broke the host's menu hash
    "calories that are not a count": (
        lambda by_id, objects: by_id["ITEM_LATTE"]["item_data"]["food_and_beverage_details"].update(
            calorie_count=1e30
        ),
        "ITEM 'ITEM_LATTE': energy_kcal: Unable to parse input string as an integer, exceeded "
        "maximum size (got 1e+30)",
    ),
    # was KeyError: 'modifier_list_id'
    "a modifier list entry without its list": (
        lambda by_id, objects: by_id["ITEM_LATTE"]["item_data"]["modifier_list_info"][0].pop(
            "modifier_list_id"
        ),
        "ITEM 'ITEM_LATTE': modifier_list_info: an entry has no modifier_list_id",
    ),
    # was TypeError: object of type 'int' has no len()
    "an updated_at that is not a time": (
        lambda by_id, objects: by_id["TAX_BAG"].update(updated_at=1754000000),
        "TAX 'TAX_BAG': updated_at: expected a string, got 1754000000",
    ),
    # made group ids over the model's 200 characters: a ValidationError naming no object
    "an id longer than Square's": (
        lambda by_id, objects: objects.append({"type": "CATEGORY", "id": "C" * 300}),
        "...': id: expected an id of 1 to 128 characters",
    ),
}


@pytest.mark.parametrize("fault", CATALOG_FAULTS.values(), ids=CATALOG_FAULTS.keys())
def test_an_unreadable_catalog_is_a_permanent_error_naming_object_and_field(fault: Any) -> None:
    change, problem = fault
    objects = _objects_where(change)
    with pytest.raises(PermanentError) as caught:
        menu_from_catalog(objects, "downtown", "L1DOWNTOWN", "USD", "America/New_York")
    assert caught.value.message.startswith("unreadable Square catalog for location 'downtown': "), (
        caught.value.message
    )
    assert problem in caught.value.message


def test_an_item_with_many_taxes_gets_a_combined_tax_id_the_model_takes() -> None:
    # Nine taxes of 24-character ids joined with "+" made an id over 200 characters.
    objects = catalog()
    taxes = [
        {"type": "TAX", "id": f"TAX{n:021d}", "tax_data": {"name": f"T{n}", "percentage": "1"}}
        for n in range(9)
    ]
    mocha = next(o for o in objects if o["id"] == "ITEM_MOCHA")
    mocha["item_data"]["tax_ids"] = [t["id"] for t in taxes]
    menu = menu_from_catalog(objects + taxes, "downtown", "L1DOWNTOWN", "USD", "UTC")
    tax_id = product(menu, "ITEM_MOCHA").tax_id
    assert tax_id is not None and tax_id.startswith("+") and len(tax_id) == 33
    combined = next(t for t in menu.taxes if t.id == tax_id)
    assert (combined.rate_ppm, combined.pos_id) == (90000, ",".join(t["id"] for t in taxes))


def test_a_location_the_menu_cannot_take_is_a_permanent_error() -> None:
    with pytest.raises(PermanentError, match="currency: expected a currency code"):
        currency_and_timezone({"id": "L1DOWNTOWN", "timezone": "UTC"})
    currency, timezone = currency_and_timezone({"currency": "USD", "timezone": "Europe"})
    with pytest.raises(PermanentError, match="timezone: unknown time zone 'Europe'"):
        menu_from_catalog(catalog(), "downtown", "L1DOWNTOWN", currency, timezone)


@pytest.mark.parametrize(
    ("page", "problem"),
    [
        ({"objects": {"ITEM_LATTE": {}}}, "objects: expected a list"),
        ({"objects": [], "cursor": 7}, "cursor: expected a string"),
    ],
)
def test_an_unreadable_catalog_page_is_a_permanent_error(page: Any, problem: str) -> None:
    with pytest.raises(PermanentError, match=problem):
        catalog_page(page)


ORDER_FAULTS = {
    # was AttributeError: 'str' object has no attribute 'get'
    "fulfillments that are not a list": (
        {"fulfillments": "PREPARED"},
        "fulfillments: Input should be a valid list",
    ),
    # was a ValidationError of the universal StatusEvent, escaping the plugin
    "an id that is not one": ({"id": ["SQ_ORDER_1"]}, "id: Input should be a valid string"),
    # was ValueError: unknown Square fulfillment state
    "a fulfillment state this plugin does not know": (
        {"fulfillments": [{"type": "PICKUP", "state": "TELEPORTED"}]},
        "fulfillments[0].state: unknown Square fulfillment state 'TELEPORTED'",
    ),
    # was ValueError: Invalid isoformat string
    "an updated_at that is not a time": (
        {"updated_at": "soon"},
        "updated_at: Invalid isoformat string: 'soon'",
    ),
}


@pytest.mark.parametrize("fault", ORDER_FAULTS.values(), ids=ORDER_FAULTS.keys())
def test_an_unreadable_order_is_a_permanent_error_naming_the_field(fault: Any) -> None:
    changes, problem = fault
    with pytest.raises(PermanentError) as caught:
        status_event_from_order({**square_order("OPEN", "RESERVED"), **changes})
    assert caught.value.message.startswith("unreadable Square order"), caught.value.message
    assert problem in caught.value.message


# --- what the menu leaves out, and says so ---------------------------------------------------


def losses() -> Menu:
    """The menu of ``catalog_left_out.json``: a ListCatalog page (valid per Square's spec) of
    what the universal menu cannot carry, beside what it can."""
    objects = load("catalog_left_out.json")["objects"]
    return menu_from_catalog(objects, "downtown", "L1DOWNTOWN", "USD", "America/New_York")


def left_out(menu: Menu) -> dict[str, tuple[str, str | None, str]]:
    return {item.pos_id: (item.kind, item.name, item.reason) for item in menu.left_out}


def test_the_left_out_fixture_is_a_listcatalog_page_per_the_spec(square_spec: Any) -> None:
    assert not square_spec.schema_problems(
        "ListCatalogResponse", load("catalog_left_out.json"), strict=True
    )


def test_a_till_priced_item_is_left_out_and_named() -> None:
    menu = losses()
    assert menu.product("ITEM_FISH") is None
    kind, name, reason = left_out(menu)["ITEM_FISH"]
    assert (kind, name) == ("item", "Fish of the day")
    assert reason.startswith("priced at the till (VARIABLE_PRICING)")
    # An item keeping another variation loses only the till-priced one.
    assert [v.id for v in product(menu, "ITEM_TART").variants] == ["VAR_TART_SLICE"]
    assert left_out(menu)["VAR_TART_WHOLE"][:2] == ("variation", "Fruit tart, Whole")
    # The recorded fixtures' mocha has a market-priced size too.
    assert left_out(downtown())["VAR_MOCHA_MKT"][0] == "variation"


def test_a_text_modifier_list_is_left_out_naming_its_items_and_its_terms() -> None:
    menu = losses()
    assert all(not g.id.startswith("ML_NAME") for g in menu.modifier_groups)
    kind, name, reason = left_out(menu)["ML_NAME"]
    assert (kind, name) == ("text modifier list", "Name on the cake")
    assert "required in Square, up to 30 characters" in reason
    assert "'Birthday cake', 'Cupcake'" in reason
    assert "line item's note" in reason


def test_a_line_note_reaches_square_as_the_line_items_note() -> None:
    body = order_to_square(make_order(), "L1DOWNTOWN", KEY)
    assert body["order"]["line_items"][0]["note"] == "extra hot"


def test_modifiers_hidden_online_are_left_out_where_they_are_hidden() -> None:
    menu = losses()
    cake_groups = product(menu, "ITEM_CAKE").modifier_group_ids
    cupcake_groups = product(menu, "ITEM_CUPCAKE").modifier_group_ids
    assert [o.id for o in group(menu, cake_groups[0]).options] == ["MOD_CANDLE_PLAIN"]
    # The cupcake shows it: its override says NO, so it gets a group of its own.
    assert cupcake_groups != cake_groups
    assert [o.id for o in group(menu, cupcake_groups[0]).options] == [
        "MOD_CANDLE_PLAIN",
        "MOD_CANDLE_GOLD",
    ]
    kind, name, reason = left_out(menu)["MOD_CANDLE_GOLD"]
    assert (kind, name) == ("modifier", "Gold sparklers") and "hidden_online" in reason


def test_a_category_hidden_online_is_left_out_and_its_items_stay() -> None:
    menu = losses()
    assert [c.id for c in menu.categories] == ["CAT_CAKES"]
    assert product(menu, "ITEM_TART").category_ids == ["CAT_CAKES"]
    assert left_out(menu)["CAT_STAFF"][:2] == ("category", "Staff meals")


def test_pricing_rules_in_force_are_reported_with_their_discount() -> None:
    menu = losses()
    kind, name, reason = left_out(menu)["PR_HAPPY"]
    assert (kind, name) == ("pricing rule", "Happy hour cakes")
    assert reason.startswith("the discount 'Happy hour' (10.0 % off) Square applies by itself")
    assert "PR_LAUNCH" not in left_out(menu), "a rule whose dates are over changes no price"
    # The prices are Square's list prices: no discount is folded into them.
    assert variant(menu, "ITEM_CAKE", "VAR_CAKE").prices == {PRICE_LIST_ID: 3200}


def test_what_is_left_out_is_not_published_and_the_menu_still_checks() -> None:
    menu = losses()
    assert "left_out" not in menu.model_dump(mode="json")
    assert not errors_in(check_menu(menu))
    assert sorted(item.pos_id for item in menu.left_out) == [
        "CAT_STAFF",
        "ITEM_FISH",
        "ML_NAME",
        "MOD_CANDLE_GOLD",
        "PR_HAPPY",
        "VAR_TART_WHOLE",
    ], "each once, and nothing else"
