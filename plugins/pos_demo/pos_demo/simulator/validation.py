"""Validation of incoming ``POST /orders`` bodies against a location's native menu.

A real POS rejects what it cannot cook: unknown ids or malformed fields are a 422
``invalid_order`` naming the offending field, while valid-but-unavailable products are a 409
``sold_out`` (86'd, outside serving hours) so integrators can tell the two apart.
The result is a normalised copy of the order (defaults filled in, menu names attached).

Money is checked like a till would: the POS adds the lines (less their discounts), takes off the
order's discounts, adds its charges, the tip and the tax, and refuses an order whose ``total``
is not that sum, or whose payments do not add up to it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .errors import ApiError, JSONDict, invalid_order
from .menu import MenuCatalog, MenuIndex

ORDER_TYPES = frozenset({"takeaway", "eat_in", "delivery"})


class _Validator:
    """Walks one order body; remembers the first availability problem for the end."""

    def __init__(self, index: MenuIndex, now: datetime) -> None:
        self.index = index
        self.now = now
        self.unavailable: ApiError | None = None

    def mark_unavailable(self, product_id: str, message: str, code: str = "sold_out") -> None:
        """Record an availability failure (structural errors still take precedence)."""
        if self.unavailable is None:
            self.unavailable = ApiError(409, code, message, item=product_id)

    def check_item_available(self, item: JSONDict) -> None:
        """Flag items that are 86'd or outside their serving hours."""
        if not item.get("available", True):
            reason = item.get("unavailable_reason") or "unavailable"
            self.mark_unavailable(item["id"], f"item {item['id']!r} is sold out ({reason})")
        elif item.get("hours") and not _within_hours(item["hours"], self.now, self.index):
            self.mark_unavailable(
                item["id"],
                f"item {item['id']!r} is not served at this time of day",
                code="outside_hours",
            )

    def line(self, raw: Any, path: str) -> JSONDict:
        """Validate one order line (either an item or a combo)."""
        if not isinstance(raw, dict):
            raise invalid_order(f"{path} must be an object")
        qty = _int(raw.get("qty"), f"{path}.qty", minimum=1)
        unit_price = _int(raw.get("unit_price"), f"{path}.unit_price", minimum=0)
        has_item, has_combo = raw.get("item") is not None, raw.get("combo") is not None
        if has_item == has_combo:
            raise invalid_order(f"{path} needs exactly one of 'item' or 'combo'")
        if has_combo:
            return self.combo_line(raw, path, qty, unit_price)
        item = self.item_ref(raw.get("item"), f"{path}.item")
        size = self.size(item, raw.get("size"), f"{path}.size")
        mods = self.mods(raw.get("mods"), item["modifier_groups"], f"{path}.mods")
        if raw.get("components"):
            raise invalid_order(f"{path}.components is only allowed on combo lines")
        return {
            "item": item["id"],
            "name": item["name"],
            "size": size,
            "qty": qty,
            "unit_price": unit_price,
            "mods": mods,
            "components": [],
            "discounts": _adjustments(raw.get("discounts"), f"{path}.discounts"),
        }

    def combo_line(self, raw: JSONDict, path: str, qty: int, unit_price: int) -> JSONDict:
        """Validate a combo line and its slot components."""
        combo_id = raw.get("combo")
        if not isinstance(combo_id, str) or combo_id not in self.index.combos:
            raise invalid_order(f"{path}.combo: unknown combo {combo_id!r}")
        combo = self.index.combos[combo_id]
        if not combo.get("available", True):
            self.mark_unavailable(combo_id, f"combo {combo_id!r} is sold out")
        if raw.get("size") is not None:
            raise invalid_order(f"{path}.size must be null for combo lines")
        if raw.get("mods"):
            raise invalid_order(f"{path}.mods is not allowed on combo lines; use components")
        comps_raw = raw.get("components")
        if not isinstance(comps_raw, list):
            raise invalid_order(f"{path}.components must be a list")
        slots = {slot["id"]: slot for slot in combo["slots"]}
        counts = dict.fromkeys(slots, 0)
        components = []
        for i, comp in enumerate(comps_raw):
            cpath = f"{path}.components[{i}]"
            if not isinstance(comp, dict):
                raise invalid_order(f"{cpath} must be an object")
            slot_id = comp.get("slot")
            if not isinstance(slot_id, str) or slot_id not in slots:
                raise invalid_order(f"{cpath}.slot: unknown slot {slot_id!r} of {combo_id!r}")
            item = self.item_ref(comp.get("item"), f"{cpath}.item")
            size = self.size(item, comp.get("size"), f"{cpath}.size")
            choice_ok = any(
                c["item"] == item["id"] and (c["size"] is None or c["size"] == size)
                for c in slots[slot_id]["choices"]
            )
            if not choice_ok:
                raise invalid_order(
                    f"{cpath}.item: {item['id']!r} (size {size!r}) is not a choice of slot "
                    f"{slot_id!r}"
                )
            counts[slot_id] += 1
            mods = self.mods(comp.get("mods"), item["modifier_groups"], f"{cpath}.mods")
            components.append(
                {
                    "slot": slot_id,
                    "item": item["id"],
                    "name": item["name"],
                    "size": size,
                    "mods": mods,
                }
            )
        for slot_id, slot in slots.items():
            if not slot["min"] <= counts[slot_id] <= slot["max"]:
                raise invalid_order(
                    f"{path}.components: slot {slot_id!r} needs {slot['min']}..{slot['max']} "
                    f"choices, got {counts[slot_id]}"
                )
        return {
            "combo": combo_id,
            "name": combo["name"],
            "size": None,
            "qty": qty,
            "unit_price": unit_price,
            "mods": [],
            "components": components,
            "discounts": _adjustments(raw.get("discounts"), f"{path}.discounts"),
        }

    def item_ref(self, item_id: Any, path: str) -> JSONDict:
        """Resolve an item id (and check availability)."""
        if not isinstance(item_id, str) or item_id not in self.index.items:
            raise invalid_order(f"{path}: unknown item {item_id!r}")
        item = self.index.items[item_id]
        self.check_item_available(item)
        return item

    def size(self, item: JSONDict, size_id: Any, path: str) -> str:
        """Resolve the size; may be omitted only for single-size items."""
        sizes = [s["id"] for s in item["sizes"]]
        if size_id is None:
            if len(sizes) == 1:
                return str(sizes[0])
            raise invalid_order(f"{path} is required for {item['id']!r}; one of {sizes}")
        if size_id not in sizes:
            raise invalid_order(f"{path}: unknown size {size_id!r} of {item['id']!r}")
        return str(size_id)

    def mods(self, raw: Any, allowed_groups: list[str], path: str) -> list[JSONDict]:
        """Validate a (possibly nested) modifier list against the allowed groups."""
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise invalid_order(f"{path} must be a list")
        per_group: dict[str, int] = {}
        result = []
        for i, mod in enumerate(raw):
            mpath = f"{path}[{i}]"
            if not isinstance(mod, dict):
                raise invalid_order(f"{mpath} must be an object")
            option_id = mod.get("option")
            found = self.index.options.get(option_id) if isinstance(option_id, str) else None
            if found is None:
                raise invalid_order(f"{mpath}.option: unknown option {option_id!r}")
            group_id, option = found
            if group_id not in allowed_groups:
                raise invalid_order(
                    f"{mpath}.option: {option_id!r} is not allowed here (groups {allowed_groups})"
                )
            qty = _int(mod.get("qty", 1), f"{mpath}.qty", minimum=1)
            if qty > option["max_qty"]:
                raise invalid_order(f"{mpath}.qty: at most {option['max_qty']} of {option_id!r}")
            if not option.get("available", True):
                self.mark_unavailable(str(option_id), f"option {option_id!r} is sold out")
            per_group[group_id] = per_group.get(group_id, 0) + qty
            nested = self.mods(mod.get("mods"), option["modifier_groups"], f"{mpath}.mods")
            result.append({"option": option_id, "name": option["name"], "qty": qty, "mods": nested})
        for group_id, count in per_group.items():
            group = self.index.groups[group_id]
            if count > group["max"]:
                raise invalid_order(
                    f"{path}: group {group_id!r} allows at most {group['max']}, got {count}"
                )
        return result


def validate_order(body: Any, catalog: MenuCatalog, now: datetime) -> JSONDict:
    """Check an order body and return its normalised form, or raise :class:`ApiError`."""
    if not isinstance(body, dict):
        raise invalid_order("body must be a JSON object")
    reference = body.get("reference")
    if not isinstance(reference, str) or not reference.strip():
        raise invalid_order("reference must be a non-empty string")
    location_id = body.get("location")
    location = catalog.location(location_id) if isinstance(location_id, str) else None
    if location is None:
        raise invalid_order(f"location: unknown location {location_id!r}")
    order_type = body.get("type")
    if order_type not in ORDER_TYPES:
        raise invalid_order(f"type must be one of {sorted(ORDER_TYPES)}")
    currency = body.get("currency")
    if currency != location.currency:
        raise invalid_order(f"currency must be {location.currency!r} for {location.id!r}")
    note = _opt_str(body.get("note"), "note")
    pickup_at = _opt_str(body.get("pickup_at"), "pickup_at")
    if pickup_at is not None:
        try:
            datetime.fromisoformat(pickup_at)
        except ValueError:
            raise invalid_order("pickup_at must be an ISO-8601 timestamp") from None
    customer = _customer(body.get("customer"))
    lines_raw = body.get("lines")
    if not isinstance(lines_raw, list) or not lines_raw:
        raise invalid_order("lines must be a non-empty list")
    validator = _Validator(catalog.index_for(location.id, now), now)
    lines = [validator.line(line, f"lines[{i}]") for i, line in enumerate(lines_raw)]
    if validator.unavailable is not None:
        raise validator.unavailable
    money = _money(body, lines)
    return {
        "reference": reference,
        "location": location.id,
        "channel": _opt_str(body.get("channel"), "channel"),
        "type": order_type,
        "currency": currency,
        "note": note,
        "pickup_at": pickup_at,
        "customer": customer,
        "lines": lines,
        **money,
        "delivery": _object(body.get("delivery"), "delivery"),
        "table": _table(body.get("table")),
        "fiscalised": bool(body.get("fiscalised", False)),
        "fiscal": _object(body.get("fiscal"), "fiscal"),
    }


def _money(body: JSONDict, lines: list[JSONDict]) -> JSONDict:
    """The order's discounts, charges, tip, tax, total and payments, checked to add up."""
    discounts = _adjustments(body.get("discounts"), "discounts")
    charges = _adjustments(body.get("charges"), "charges")
    tip = _int(body.get("tip", 0), "tip", minimum=0)
    tax = _int(body.get("tax", 0), "tax", minimum=0)
    total = _int(body.get("total"), "total", minimum=0)
    items = sum(
        line["unit_price"] * line["qty"] - sum(d["amount"] for d in line["discounts"])
        for line in lines
    )
    expected = (
        items - sum(d["amount"] for d in discounts) + sum(c["amount"] for c in charges) + tip + tax
    )
    if total != expected:
        raise invalid_order(
            f"total is {total} but the order adds up to {expected} (items {items}, discounts, "
            f"charges, tip {tip}, tax {tax})"
        )
    payments = _payments(body.get("payments"))
    paid = sum(p["amount"] for p in payments if p["paid"])
    due = sum(p["amount"] for p in payments if not p["paid"])
    if paid + due != total:
        raise invalid_order(f"payments add up to {paid + due}, not the total {total}")
    return {
        "discounts": discounts,
        "charges": charges,
        "tip": tip,
        "tax": tax,
        "total": total,
        "payments": payments,
        "paid_amount": paid,
        "due_amount": due,
    }


def _adjustments(raw: Any, path: str) -> list[JSONDict]:
    """Discounts or charges: each a ``name``, an ``amount`` in cents, a ``kind`` and maybe a
    ``code`` (promo code) and ``taxable``."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise invalid_order(f"{path} must be a list")
    out = []
    for i, item in enumerate(raw):
        where = f"{path}[{i}]"
        if not isinstance(item, dict):
            raise invalid_order(f"{where} must be an object")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise invalid_order(f"{where}.name must be a non-empty string")
        out.append(
            {
                "name": name,
                "kind": _opt_str(item.get("kind"), f"{where}.kind"),
                "code": _opt_str(item.get("code"), f"{where}.code"),
                "amount": _int(item.get("amount"), f"{where}.amount", minimum=0),
                "taxable": bool(item.get("taxable", False)),
            }
        )
    return out


def _payments(raw: Any) -> list[JSONDict]:
    """Payments: each a ``method``, an ``amount``, whether it is ``paid`` already (or due at
    handover), and the provider's ``reference``."""
    if not isinstance(raw, list) or not raw:
        raise invalid_order("payments must be a non-empty list")
    out = []
    for i, item in enumerate(raw):
        where = f"payments[{i}]"
        if not isinstance(item, dict):
            raise invalid_order(f"{where} must be an object")
        paid = item.get("paid")
        if not isinstance(paid, bool):
            raise invalid_order(f"{where}.paid must be a boolean")
        out.append(
            {
                "method": _opt_str(item.get("method"), f"{where}.method") or "other",
                "amount": _int(item.get("amount"), f"{where}.amount", minimum=0),
                "paid": paid,
                "provider": _opt_str(item.get("provider"), f"{where}.provider"),
                "reference": _opt_str(item.get("reference"), f"{where}.reference"),
            }
        )
    return out


def _object(value: Any, path: str) -> JSONDict | None:
    """An optional object the POS keeps as it is (delivery details, fiscal data)."""
    if value is not None and not isinstance(value, dict):
        raise invalid_order(f"{path} must be an object or null")
    return value


def _table(value: Any) -> JSONDict | None:
    """The optional table of an eat-in order: its ``name`` and how many ``covers``."""
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise invalid_order("table must be an object with a name")
    covers = value.get("covers")
    return {
        "name": value["name"],
        "covers": None if covers is None else _int(covers, "table.covers", minimum=1),
    }


def _int(value: Any, path: str, minimum: int) -> int:
    """Require an integer (booleans excluded) of at least ``minimum``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid_order(f"{path} must be an integer")
    if value < minimum:
        raise invalid_order(f"{path} must be >= {minimum}")
    return value


def _opt_str(value: Any, path: str) -> str | None:
    """Require a string or null."""
    if value is not None and not isinstance(value, str):
        raise invalid_order(f"{path} must be a string or null")
    return value


def _customer(value: Any) -> JSONDict | None:
    """Validate the optional customer block."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid_order("customer must be an object or null")
    return {
        "name": _opt_str(value.get("name"), "customer.name"),
        "phone": _opt_str(value.get("phone"), "customer.phone"),
    }


def _within_hours(hours: list[JSONDict], now: datetime, index: MenuIndex) -> bool:
    """Whether ``now`` (in the store's timezone) falls into one of the serving windows."""
    local = now.astimezone(index.timezone)
    hhmm = local.strftime("%H:%M")
    return any(
        local.weekday() in window["days"] and window["from"] <= hhmm < window["to"]
        for window in hours
    )
