"""The merchant the double plays: locations, catalog, orders, payments (no HTTP here)."""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from .catalog import UPDATED_AT, GeneratedCatalog, present_at
from .errors import SquareError
from .pricing import check_discounts, check_service_charges, price_order

DEFAULT_LIST_TYPES = frozenset(
    {
        "ITEM",
        "CATEGORY",
        "TAX",
        "DISCOUNT",
        "MODIFIER_LIST",
        "PRICING_RULE",
        "PRODUCT_SET",
        "TIME_PERIOD",
        "MEASUREMENT_UNIT",
        "SUBSCRIPTION_PLAN",
        "ITEM_OPTION",
        "CUSTOM_ATTRIBUTE_DEFINITION",
        "QUICK_AMOUNT_SETTINGS",
    }
)
NESTED = {
    "ITEM": ("item_data", "variations"),
    "MODIFIER_LIST": ("modifier_list_data", "modifiers"),
    "ITEM_OPTION": ("item_option_data", "values"),
}
PAGE_SIZE = 100
FULFILLMENT_ORDER = ("PROPOSED", "RESERVED", "PREPARED", "COMPLETED")
TERMINAL_FULFILLMENT = frozenset({"COMPLETED", "CANCELED", "FAILED"})

Emit = Callable[[str, dict[str, Any]], object]


def now_rfc3339(clock: datetime | None = None) -> str:
    """RFC 3339 with milliseconds and ``Z``, like Square."""
    moment = clock or datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(value: str, field: str) -> datetime:
    """An RFC 3339 timestamp, or 400 ``INVALID_TIME``."""
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SquareError(
            400, "INVALID_TIME", f"`{value}` is not an RFC 3339 time", field=field
        ) from None


def _digest(value: Any) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def encode_cursor(payload: dict[str, Any]) -> str:
    """An opaque cursor."""
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


def decode_cursor(cursor: str, field: str = "cursor") -> dict[str, Any]:
    """The payload of a cursor this double issued, or 400 ``INVALID_CURSOR``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = orjson.loads(raw)
    except (ValueError, orjson.JSONDecodeError):
        payload = None
    if not isinstance(payload, dict):
        raise SquareError(400, "INVALID_CURSOR", "The pagination cursor is invalid.", field=field)
    return payload


def _money(amount: int, currency: str) -> dict[str, Any]:
    return {"amount": amount, "currency": currency}


class MerchantState:
    """One Square merchant with its locations, catalog, orders and payments.

    :param emit: called with ``(event type, data)`` for every webhook-worthy change.
    """

    def __init__(
        self,
        catalog: GeneratedCatalog,
        *,
        merchant_id: str,
        location_names: Sequence[str] | None = None,
        emit: Emit | None = None,
        enforce_modifier_limits: bool = True,
        sold_out_code: str = "INVALID_VALUE",
    ) -> None:
        self.merchant_id = merchant_id
        self.currency = "USD"
        self.emit: Emit = emit or (lambda _type, _data: None)
        self.enforce_modifier_limits = enforce_modifier_limits
        self.sold_out_code = sold_out_code
        self.catalog = catalog
        names = list(location_names or ("Main Street", "Harbor View"))
        self.locations = [
            self._location(loc, names[i] if i < len(names) else f"Location {i + 1}")
            for i, loc in enumerate(catalog.location_ids)
        ]
        self.location_ids = {loc["id"] for loc in self.locations}
        self.objects: list[dict[str, Any]] = catalog.objects
        self.by_id: dict[str, dict[str, Any]] = {}
        self.parent: dict[str, dict[str, Any]] = {}
        self._index()
        self.catalog_updated_at = UPDATED_AT
        self._list_cache: dict[tuple[frozenset[str], bool, str], list[dict[str, Any]]] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        self.order_log: list[str] = []
        self.payments: dict[str, dict[str, Any]] = {}
        self._idempotency: dict[tuple[str, str], tuple[str, str]] = {}
        self._version_clock = itertools.count(
            max((o.get("version", 0) for o in self.by_id.values()), default=0) + 1
        )

    # -- locations ------------------------------------------------------------------------

    def _location(self, location_id: str, name: str) -> dict[str, Any]:
        return {
            "id": location_id,
            "name": name,
            "address": {
                "address_line_1": f"{abs(hash(location_id)) % 900 + 100} {name}",
                "locality": "New York",
                "administrative_district_level_1": "NY",
                "postal_code": "10001",
                "country": "US",
            },
            "timezone": "America/New_York",
            "capabilities": ["CREDIT_CARD_PROCESSING"],
            "status": "ACTIVE",
            "created_at": "2024-01-15T09:30:00Z",
            "merchant_id": self.merchant_id,
            "country": "US",
            "language_code": "en-US",
            "currency": self.currency,
            "business_name": "Double Trouble Diner",
            "type": "PHYSICAL",
            "mcc": "5812",
        }

    def require_location(self, location_id: str, field: str) -> None:
        if location_id not in self.location_ids:
            raise SquareError(404, "NOT_FOUND", f"Location `{location_id}` not found.", field=field)

    # -- catalog --------------------------------------------------------------------------

    def _index(self) -> None:
        self.by_id.clear()
        self.parent.clear()
        for obj in self.objects:
            self.by_id[obj["id"]] = obj
            nested = NESTED.get(obj["type"])
            if nested:
                for child in obj.get(nested[0], {}).get(nested[1]) or ():
                    self.by_id[child["id"]] = child
                    self.parent[child["id"]] = obj

    def _catalog_objects(
        self, types: frozenset[str], include_deleted: bool
    ) -> list[dict[str, Any]]:
        key = (types, include_deleted, self.catalog_updated_at)
        cached = self._list_cache.get(key)
        if cached is None:
            cached = []
            for obj in self.objects:
                if obj["type"] in types and (include_deleted or not obj.get("is_deleted")):
                    cached.append(obj)
                nested = NESTED.get(obj["type"])
                if nested:
                    for child in obj.get(nested[0], {}).get(nested[1]) or ():
                        if child["type"] in types and (
                            include_deleted or not child.get("is_deleted")
                        ):
                            cached.append(child)
            self._list_cache.clear()
            self._list_cache[key] = cached
        return cached

    def list_catalog(self, types_param: str | None, cursor: str | None) -> dict[str, Any]:
        """ListCatalog: 100 objects a page; a cursor only works with the same ``types``."""
        if types_param:
            types = frozenset(t.strip().upper() for t in types_param.split(",") if t.strip())
        else:
            types = DEFAULT_LIST_TYPES
        key = ",".join(sorted(types))
        offset = 0
        if cursor:
            payload = decode_cursor(cursor)
            if payload.get("op") != "list" or payload.get("types") != key:
                raise SquareError(
                    400,
                    "INVALID_CURSOR",
                    "The cursor was issued for a request with other `types`.",
                    field="cursor",
                )
            offset = int(payload.get("offset", 0))
        objects = self._catalog_objects(types, include_deleted=False)
        page = objects[offset : offset + PAGE_SIZE]
        body: dict[str, Any] = {"objects": page} if page else {}
        if offset + PAGE_SIZE < len(objects):
            body["cursor"] = encode_cursor(
                {"op": "list", "types": key, "offset": offset + PAGE_SIZE}
            )
        return body

    def search_catalog(self, request: dict[str, Any]) -> dict[str, Any]:
        """SearchCatalogObjects without ``query`` (the whole catalog) and ``begin_time``."""
        if request.get("query"):
            raise SquareError(
                400,
                "BAD_REQUEST",
                "The Square double does not implement SearchCatalogObjects `query`.",
                field="query",
            )
        types = frozenset(request.get("object_types") or DEFAULT_LIST_TYPES)
        include_deleted = bool(request.get("include_deleted_objects"))
        limit = request.get("limit") or PAGE_SIZE
        if limit <= 0 or limit > 1000:
            limit = PAGE_SIZE
        shape = {k: v for k, v in request.items() if k not in ("cursor", "limit")}
        offset = 0
        if request.get("cursor"):
            payload = decode_cursor(request["cursor"])
            if payload.get("op") != "search" or payload.get("shape") != _digest(shape):
                raise SquareError(
                    400,
                    "INVALID_CURSOR",
                    "The cursor was issued for another search.",
                    field="cursor",
                )
            offset = int(payload.get("offset", 0))
        objects = self._catalog_objects(types, include_deleted)
        if request.get("begin_time"):
            begin = parse_time(request["begin_time"], "begin_time")
            objects = [
                o for o in objects if parse_time(o.get("updated_at", UPDATED_AT), "") > begin
            ]
        page = objects[offset : offset + limit]
        body: dict[str, Any] = {"latest_time": self.catalog_updated_at}
        if page:
            body["objects"] = page
        if offset + limit < len(objects):
            body["cursor"] = encode_cursor(
                {"op": "search", "shape": _digest(shape), "offset": offset + limit}
            )
        if request.get("include_related_objects") and page:
            body["related_objects"] = self._related(page)
        return body

    def _related(self, page: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        wanted: dict[str, None] = {}
        for obj in page:
            data = obj.get("item_data") or {}
            for cat in data.get("categories") or ():
                wanted[cat["id"]] = None
            for ident in [*(data.get("tax_ids") or ()), *(data.get("image_ids") or ())]:
                wanted[ident] = None
            for info in data.get("modifier_list_info") or ():
                wanted[info["modifier_list_id"]] = None
        return [self.by_id[i] for i in wanted if i in self.by_id]

    def touch(self, obj: dict[str, Any]) -> None:
        """Mark a catalog object changed (new ``version``/``updated_at``) and tell the world."""
        stamp = now_rfc3339()
        obj["version"] = next(self._version_clock) + 10**12
        obj["updated_at"] = stamp
        parent = self.parent.get(obj["id"])
        if parent is not None:
            parent["version"] = obj["version"]
            parent["updated_at"] = stamp
        self.bump_catalog(stamp)

    def bump_catalog(self, stamp: str | None = None) -> None:
        """A new catalog version: emits ``catalog.version.updated``."""
        self.catalog_updated_at = stamp or now_rfc3339()
        self._list_cache.clear()
        self.emit(
            "catalog.version.updated",
            {
                "type": "catalog_version",
                "object": {"catalog_version": {"updated_at": self.catalog_updated_at}},
            },
        )

    def add_objects(self, objects: Iterable[dict[str, Any]]) -> None:
        """Add catalog objects (their nested ones with them); emits catalog.version.updated."""
        self.objects.extend(objects)
        self._index()
        self.bump_catalog()

    def set_sold_out(self, variation_id: str, location_id: str, sold_out: bool = True) -> None:
        variation = self._variation(variation_id)
        overrides = variation["item_variation_data"].setdefault("location_overrides", [])
        entry = next((o for o in overrides if o.get("location_id") == location_id), None)
        if entry is None:
            entry = {"location_id": location_id}
            overrides.append(entry)
        if sold_out:
            entry["sold_out"] = True
        else:
            entry.pop("sold_out", None)
        self.touch(variation)

    def set_price(self, variation_id: str, amount: int, location_id: str | None = None) -> None:
        variation = self._variation(variation_id)
        data = variation["item_variation_data"]
        if location_id is None:
            data["price_money"] = _money(amount, self.currency)
            data["pricing_type"] = "FIXED_PRICING"
        else:
            overrides = data.setdefault("location_overrides", [])
            entry = next((o for o in overrides if o.get("location_id") == location_id), None)
            if entry is None:
                entry = {"location_id": location_id}
                overrides.append(entry)
            entry["price_money"] = _money(amount, self.currency)
        self.touch(variation)

    def delete_object(self, object_id: str) -> None:
        obj = self.by_id[object_id]
        obj["is_deleted"] = True
        nested = NESTED.get(obj["type"])
        if nested:
            for child in obj.get(nested[0], {}).get(nested[1]) or ():
                child["is_deleted"] = True
        self.touch(obj)

    def _variation(self, variation_id: str) -> dict[str, Any]:
        obj = self.by_id.get(variation_id)
        if obj is None or obj["type"] != "ITEM_VARIATION":
            raise KeyError(f"no ITEM_VARIATION {variation_id}")
        return obj

    # -- orders ---------------------------------------------------------------------------

    def _idempotent(
        self, scope: str, key: str | None, request: Any, make: Callable[[], str]
    ) -> str:
        """Run ``make`` once per idempotency key; the same key with another body is refused."""
        if not key:
            return make()
        digest = _digest(request)
        seen = self._idempotency.get((scope, key))
        if seen is not None:
            if seen[0] != digest:
                raise SquareError(
                    400,
                    "IDEMPOTENCY_KEY_REUSED",
                    f"The idempotency key `{key}` was used before with another request.",
                    field="idempotency_key",
                )
            return seen[1]
        result = make()
        self._idempotency[(scope, key)] = (digest, result)
        return result

    def create_order(self, request: dict[str, Any]) -> dict[str, Any]:
        """CreateOrder."""
        order_id = self._idempotent(
            "order", request.get("idempotency_key"), request, lambda: self._new_order(request)
        )
        return self.orders[order_id]

    def _new_order(self, request: dict[str, Any]) -> str:
        src = request.get("order")
        if not isinstance(src, dict):
            raise SquareError(
                400, "MISSING_REQUIRED_PARAMETER", "`order` is required.", field="order"
            )
        location_id = src["location_id"]
        self.require_location(location_id, "order.location_id")
        for unsupported in ("returns", "rewards"):
            if src.get(unsupported):
                raise SquareError(
                    400,
                    "BAD_REQUEST",
                    f"The Square double does not implement order `{unsupported}`.",
                    field=f"order.{unsupported}",
                )
        stamp = now_rfc3339()
        order_id = uuid.uuid4().hex[:24].upper() + "X" * 3
        order: dict[str, Any] = {
            "id": order_id,
            "location_id": location_id,
            "line_items": [],
            "state": "OPEN",
            "version": 1,
            "created_at": stamp,
            "updated_at": stamp,
        }
        for key in (
            "reference_id",
            "source",
            "customer_id",
            "ticket_name",
            "metadata",
            "pricing_options",
        ):
            if key in src:
                order[key] = copy.deepcopy(src[key])
        if src.get("state") not in (None, "OPEN", "DRAFT"):
            raise SquareError(
                400, "INVALID_VALUE", "A new order is OPEN or DRAFT.", field="order.state"
            )
        order["state"] = src.get("state") or "OPEN"
        if not src.get("line_items"):
            raise SquareError(
                400,
                "MISSING_REQUIRED_PARAMETER",
                "An order needs at least one line item.",
                field="order.line_items",
            )
        for index, line in enumerate(src["line_items"]):
            order["line_items"].append(self._line_item(line, location_id, index))
        self._taxes(order, src)
        check_discounts(order, src)
        check_service_charges(order, src)
        fulfillments = src.get("fulfillments") or []
        if len(fulfillments) > 1:
            raise SquareError(
                400,
                "INVALID_VALUE",
                "Orders can only be created with at most one fulfillment.",
                field="order.fulfillments",
            )
        if fulfillments:
            order["fulfillments"] = [self._fulfillment(fulfillments[0], stamp)]
        price_order(order, self.currency)
        self.orders[order_id] = order
        self.order_log.append(order_id)
        self.emit("order.created", self._order_event("order_created", order))
        return order_id

    def _line_item(self, line: dict[str, Any], location_id: str, index: int) -> dict[str, Any]:
        where = f"order.line_items[{index}]"
        try:
            quantity = Decimal(line["quantity"])
        except (InvalidOperation, TypeError):
            raise SquareError(
                400,
                "INVALID_VALUE",
                f"`{line['quantity']}` is not a quantity.",
                field=f"{where}.quantity",
            ) from None
        if quantity <= 0 or (
            quantity != quantity.to_integral_value() and not line.get("quantity_unit")
        ):
            raise SquareError(
                400,
                "INVALID_VALUE",
                "The quantity must be a positive whole number without a unit.",
                field=f"{where}.quantity",
            )
        out: dict[str, Any] = {
            "uid": line.get("uid") or uuid.uuid4().hex[:22],
            "quantity": line["quantity"],
            "item_type": "ITEM",
        }
        for key in ("note", "metadata", "quantity_unit", "applied_taxes", "applied_discounts"):
            if key in line:
                out[key] = copy.deepcopy(line[key])
        object_id = line.get("catalog_object_id")
        item: dict[str, Any] | None = None
        if object_id is None:
            if not line.get("name") or not line.get("base_price_money"):
                raise SquareError(
                    400,
                    "MISSING_REQUIRED_PARAMETER",
                    "An ad hoc line item needs `name` and `base_price_money`.",
                    field=f"{where}.catalog_object_id",
                )
            out["name"] = line["name"]
            out["base_price_money"] = copy.deepcopy(line["base_price_money"])
            out["item_type"] = line.get("item_type", "ITEM")
        else:
            variation = self.by_id.get(object_id)
            field = f"{where}.catalog_object_id"
            if variation is None or variation.get("is_deleted"):
                raise SquareError(
                    404,
                    "NOT_FOUND",
                    f"Item variation with catalog object ID `{object_id}` not found.",
                    field=field,
                )
            if variation["type"] != "ITEM_VARIATION":
                raise SquareError(
                    400,
                    "INVALID_VALUE",
                    f"`{field}` must reference an ITEM_VARIATION, but "
                    f"`{object_id}` is a {variation['type']}.",
                    field=field,
                )
            item = self.parent[object_id]
            if not (present_at(item, location_id) and present_at(variation, location_id)):
                raise SquareError(
                    400,
                    "INVALID_VALUE",
                    f"Item variation `{object_id}` is not present at location `{location_id}`.",
                    field=field,
                )
            data = variation["item_variation_data"]
            override: dict[str, Any] = next(
                (
                    o
                    for o in data.get("location_overrides") or ()
                    if o.get("location_id") == location_id
                ),
                {},
            )
            if override.get("sold_out"):
                raise SquareError(
                    400,
                    self.sold_out_code,
                    f"Item variation `{object_id}` is sold out at location `{location_id}`.",
                    field=field,
                )
            price = override.get("price_money") or data.get("price_money")
            if data.get("pricing_type") == "VARIABLE_PRICING" or price is None:
                price = line.get("base_price_money")
                if price is None:
                    raise SquareError(
                        400,
                        "MISSING_REQUIRED_PARAMETER",
                        f"Item variation `{object_id}` has variable pricing: "
                        "`base_price_money` is required.",
                        field=f"{where}.base_price_money",
                    )
            out["catalog_object_id"] = object_id
            out["catalog_version"] = variation["version"]
            out["name"] = item["item_data"]["name"]
            out["variation_name"] = data.get("name", "")
            out["base_price_money"] = copy.deepcopy(price)
        out["modifiers"] = self._modifiers(line.get("modifiers") or [], item, location_id, where)
        if not out["modifiers"]:
            del out["modifiers"]
        return out

    def _modifiers(
        self, mods: list[dict[str, Any]], item: dict[str, Any] | None, location_id: str, where: str
    ) -> list[dict[str, Any]]:
        infos = {
            i["modifier_list_id"]: i
            for i in ((item or {}).get("item_data", {}).get("modifier_list_info") or ())
        }
        out = []
        per_list: dict[str, int] = {}
        for j, mod in enumerate(mods):
            field = f"{where}.modifiers[{j}].catalog_object_id"
            ident = mod.get("catalog_object_id")
            if ident is None:
                if not mod.get("name") or "base_price_money" not in mod:
                    raise SquareError(
                        400,
                        "MISSING_REQUIRED_PARAMETER",
                        "An ad hoc modifier needs `name` and `base_price_money`.",
                        field=field,
                    )
                out.append(
                    {
                        "uid": mod.get("uid") or uuid.uuid4().hex[:22],
                        "name": mod["name"],
                        "quantity": mod.get("quantity", "1"),
                        "base_price_money": copy.deepcopy(mod["base_price_money"]),
                    }
                )
                continue
            modifier = self.by_id.get(ident)
            if modifier is None or modifier.get("is_deleted"):
                raise SquareError(404, "NOT_FOUND", f"Modifier `{ident}` not found.", field=field)
            if modifier["type"] != "MODIFIER":
                raise SquareError(
                    400,
                    "INVALID_VALUE",
                    f"`{ident}` is a {modifier['type']}, not a MODIFIER.",
                    field=field,
                )
            list_id = modifier["modifier_data"]["modifier_list_id"]
            info = infos.get(list_id)
            if info is None or info.get("enabled") is False:
                raise SquareError(
                    400,
                    "INVALID_VALUE",
                    f"Modifier `{ident}` belongs to modifier list `{list_id}`, "
                    "which is not enabled on the line item's item.",
                    field=field,
                )
            quantity = mod.get("quantity", "1")
            try:
                count = int(quantity)
            except ValueError:
                raise SquareError(
                    400,
                    "INVALID_VALUE",
                    f"`{quantity}` is not a quantity.",
                    field=f"{where}.modifiers[{j}].quantity",
                ) from None
            per_list[list_id] = per_list.get(list_id, 0) + count
            data = modifier["modifier_data"]
            price = next(
                (
                    o["price_money"]
                    for o in data.get("location_overrides") or ()
                    if o.get("location_id") == location_id and "price_money" in o
                ),
                data.get("price_money") or _money(0, self.currency),
            )
            out.append(
                {
                    "uid": mod.get("uid") or uuid.uuid4().hex[:22],
                    "catalog_object_id": ident,
                    "catalog_version": modifier["version"],
                    "name": data.get("name", ""),
                    "quantity": quantity,
                    "base_price_money": copy.deepcopy(price),
                }
            )
        if self.enforce_modifier_limits and item is not None:
            for list_id, info in infos.items():
                if info.get("enabled") is False:
                    continue
                low, high = self.modifier_limits(info)
                chosen = per_list.get(list_id, 0)
                name = self.by_id[list_id]["modifier_list_data"].get("name", list_id)
                if chosen < low or (high and chosen > high):
                    raise SquareError(
                        400,
                        "INVALID_VALUE",
                        f"Modifier list `{name}` ({list_id}) needs between {low} "
                        f"and {high or 'any number of'} modifiers; "
                        f"{chosen} selected.",
                        field=f"{where}.modifiers",
                    )
        return out

    def modifier_limits(self, info: dict[str, Any]) -> tuple[int, int]:
        """Effective (min, max) for an item's modifier list; max 0 means no maximum.

        Per the spec: on ``CatalogItemModifierListInfo`` -1 means "unset": when both are -1 the
        list's values apply; on the list, -1 (or absent) means no minimum / no maximum; a max of
        0 means no maximum; values below -1 are treated as "none".
        """
        low = info.get("min_selected_modifiers", -1)
        high = info.get("max_selected_modifiers", -1)
        if low == -1 and high == -1:
            data = self.by_id[info["modifier_list_id"]]["modifier_list_data"]
            low = data.get("min_selected_modifiers", -1)
            high = data.get("max_selected_modifiers", -1)
        return max(low, 0), max(high, 0)

    def _taxes(self, order: dict[str, Any], src: dict[str, Any]) -> None:
        taxes = []
        for k, tax in enumerate(src.get("taxes") or ()):
            out = {"uid": tax.get("uid") or f"tax-{k}", "scope": tax.get("scope", "ORDER")}
            ident = tax.get("catalog_object_id")
            if ident:
                obj = self.by_id.get(ident)
                if obj is None or obj["type"] != "TAX" or obj.get("is_deleted"):
                    raise SquareError(
                        404,
                        "NOT_FOUND",
                        f"Tax `{ident}` not found.",
                        field=f"order.taxes[{k}].catalog_object_id",
                    )
                data = obj["tax_data"]
                out.update(
                    catalog_object_id=ident,
                    catalog_version=obj["version"],
                    name=data["name"],
                    percentage=data["percentage"],
                    type=data["inclusion_type"],
                )
            else:
                out.update(
                    name=tax.get("name", "Tax"),
                    percentage=tax.get("percentage", "0"),
                    type=tax.get("type", "ADDITIVE"),
                )
            taxes.append(out)
        if (src.get("pricing_options") or {}).get("auto_apply_taxes"):
            # A catalog tax the request already lists is applied as that tax, not added twice.
            seen = {t["catalog_object_id"]: t["uid"] for t in taxes if t.get("catalog_object_id")}
            for line in order["line_items"]:
                ident = line.get("catalog_object_id")
                if not ident:
                    continue
                for tax_id in self.parent[ident]["item_data"].get("tax_ids") or ():
                    tax_obj = self.by_id[tax_id]
                    uid = seen.get(tax_id, f"auto-{tax_id}")
                    if tax_id not in seen:
                        seen[tax_id] = uid
                        data = tax_obj["tax_data"]
                        taxes.append(
                            {
                                "uid": uid,
                                "catalog_object_id": tax_id,
                                "catalog_version": tax_obj["version"],
                                "name": data["name"],
                                "percentage": data["percentage"],
                                "type": data["inclusion_type"],
                                "scope": "LINE_ITEM",
                                "auto_applied": True,
                            }
                        )
                    line.setdefault("applied_taxes", []).append({"tax_uid": uid})
        if taxes:
            order["taxes"] = taxes

    def _fulfillment(self, src: dict[str, Any], stamp: str) -> dict[str, Any]:
        kind = src.get("type", "PICKUP")
        if kind not in ("PICKUP", "DELIVERY"):
            raise SquareError(
                400,
                "BAD_REQUEST",
                "The Square double implements PICKUP and DELIVERY fulfillments.",
                field="order.fulfillments[0].type",
            )
        field = "pickup_details" if kind == "PICKUP" else "delivery_details"
        where = f"order.fulfillments[0].{field}"
        details = copy.deepcopy(src.get(field) or {})
        recipient = details.get("recipient") or {}
        if not recipient.get("display_name") and not recipient.get("customer_id"):
            raise SquareError(
                400,
                "MISSING_REQUIRED_PARAMETER",
                f"A {kind.lower()} needs a recipient `display_name` or `customer_id`.",
                field=f"{where}.recipient",
            )
        schedule = details.get("schedule_type", "SCHEDULED")
        time_field = "pickup_at" if kind == "PICKUP" else "deliver_at"
        if schedule == "SCHEDULED" and not details.get(time_field):
            raise SquareError(
                400,
                "MISSING_REQUIRED_PARAMETER",
                f"A SCHEDULED {kind.lower()} needs `{time_field}`.",
                field=f"{where}.{time_field}",
            )
        if kind == "DELIVERY" and schedule == "ASAP" and not details.get("prep_time_duration"):
            raise SquareError(
                400,
                "MISSING_REQUIRED_PARAMETER",
                "An ASAP delivery needs `prep_time_duration`.",
                field=f"{where}.prep_time_duration",
            )
        details["placed_at"] = stamp
        return {
            "uid": src.get("uid") or uuid.uuid4().hex[:22],
            "type": kind,
            "state": src.get("state", "PROPOSED"),
            field: details,
        }

    @staticmethod
    def _order_event(kind: str, order: dict[str, Any], **extra: Any) -> dict[str, Any]:
        body = {
            "order_id": order["id"],
            "version": order["version"],
            "location_id": order["location_id"],
            "state": order["state"],
            "created_at": order["created_at"],
        }
        if kind != "order_created":
            body["updated_at"] = order["updated_at"]
        body.update(extra)
        return {"type": kind, "id": order["id"], "object": {kind: body}}

    def get_order(self, order_id: str) -> dict[str, Any]:
        order = self.orders.get(order_id)
        if order is None:
            raise SquareError(404, "NOT_FOUND", f"Order `{order_id}` not found.", field="order_id")
        return order

    def update_order(self, order_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """UpdateOrder: fulfillment state changes, order state, a few sparse fields."""
        order = self.get_order(order_id)
        key = request.get("idempotency_key")
        self._idempotent(
            "update:" + order_id, key, request, lambda: self._apply_update(order, request)
        )
        return order

    def _apply_update(self, order: dict[str, Any], request: dict[str, Any]) -> str:
        sparse = request.get("order") or {}
        if "version" in sparse and sparse["version"] != order["version"]:
            raise SquareError(
                400,
                "CONFLICT",
                f"Version mismatch: the order is at version {order['version']}, "
                f"the update names {sparse['version']}.",
                field="order.version",
            )
        if order["state"] in ("COMPLETED", "CANCELED"):
            raise SquareError(
                400, "BAD_REQUEST", f"The order is {order['state']}.", field="order.state"
            )
        allowed = {
            "version",
            "fulfillments",
            "state",
            "reference_id",
            "ticket_name",
            "metadata",
            "location_id",
        }
        for key in sparse:
            if key not in allowed:
                raise SquareError(
                    400,
                    "BAD_REQUEST",
                    f"The Square double does not implement updating `{key}`.",
                    field=f"order.{key}",
                )
        stamp = now_rfc3339()
        changes = []
        for k, patch in enumerate(sparse.get("fulfillments") or ()):
            current = next(
                (f for f in order.get("fulfillments") or () if f["uid"] == patch.get("uid")), None
            )
            if current is None:
                raise SquareError(
                    400,
                    "INVALID_VALUE",
                    f"No fulfillment with uid `{patch.get('uid')}`.",
                    field=f"order.fulfillments[{k}].uid",
                )
            details_field = "pickup_details" if current["type"] == "PICKUP" else "delivery_details"
            new_state = patch.get("state")
            if new_state and new_state != current["state"]:
                self._check_transition(current["state"], new_state, k)
                changes.append(
                    {
                        "fulfillment_uid": current["uid"],
                        "old_state": current["state"],
                        "new_state": new_state,
                    }
                )
                current["state"] = new_state
                stamp_field = (
                    {
                        "RESERVED": "accepted_at",
                        "PREPARED": "ready_at",
                        "COMPLETED": "picked_up_at",
                        "CANCELED": "canceled_at",
                    }
                    if current["type"] == "PICKUP"
                    else {
                        "RESERVED": "in_progress_at",
                        "PREPARED": "ready_at",
                        "COMPLETED": "completed_at",
                        "CANCELED": "canceled_at",
                    }
                )
                if new_state in stamp_field:
                    current.setdefault(details_field, {})[stamp_field[new_state]] = stamp
            for detail, value in (patch.get(details_field) or {}).items():
                current.setdefault(details_field, {})[detail] = copy.deepcopy(value)
        for key in ("reference_id", "ticket_name", "metadata"):
            if key in sparse:
                order[key] = copy.deepcopy(sparse[key])
        for path in request.get("fields_to_clear") or ():
            if path in ("reference_id", "ticket_name", "metadata"):
                order.pop(path, None)
        new_state = sparse.get("state")
        if new_state and new_state != order["state"]:
            if new_state == "COMPLETED" and order["net_amount_due_money"]["amount"] > 0:
                raise SquareError(
                    400,
                    "BAD_REQUEST",
                    "An order can only be COMPLETED when it is fully paid.",
                    field="order.state",
                )
            order["state"] = new_state
        fulfillments = order.get("fulfillments") or ()
        if (
            order["state"] == "OPEN"
            and fulfillments
            and all(f["state"] == "COMPLETED" for f in fulfillments)
            and order["net_amount_due_money"]["amount"] == 0
        ):
            order["state"] = "COMPLETED"
        if order["state"] in ("COMPLETED", "CANCELED"):
            order["closed_at"] = stamp
        order["version"] += 1
        order["updated_at"] = stamp
        self.emit("order.updated", self._order_event("order_updated", order))
        if changes:
            self.emit(
                "order.fulfillment.updated",
                self._order_event("order_fulfillment_updated", order, fulfillment_update=changes),
            )
        return str(order["id"])

    @staticmethod
    def _check_transition(old: str, new: str, index: int) -> None:
        ok = old not in TERMINAL_FULFILLMENT and (
            new in ("CANCELED", "FAILED")
            or (
                new in FULFILLMENT_ORDER
                and FULFILLMENT_ORDER.index(new) > FULFILLMENT_ORDER.index(old)
            )
        )
        if not ok:
            raise SquareError(
                400,
                "INVALID_VALUE",
                f"A fulfillment cannot go from {old} to {new}.",
                field=f"order.fulfillments[{index}].state",
            )

    def set_fulfillment_state(self, order_id: str, state: str) -> dict[str, Any]:
        """Test helper: move the order's first fulfillment, as the restaurant would."""
        order = self.get_order(order_id)
        uid = order["fulfillments"][0]["uid"]
        return self.update_order(
            order_id,
            {
                "order": {
                    "version": order["version"],
                    "fulfillments": [{"uid": uid, "state": state}],
                }
            },
        )

    def search_orders(self, request: dict[str, Any]) -> dict[str, Any]:
        """SearchOrders: location_ids, state/date-time/fulfillment filters, sort, cursor."""
        location_ids = request.get("location_ids") or []
        if not location_ids:
            raise SquareError(
                400,
                "MISSING_REQUIRED_PARAMETER",
                "`location_ids` is required.",
                field="location_ids",
            )
        if len(location_ids) > 10:
            raise SquareError(
                400, "ARRAY_LENGTH_TOO_LONG", "At most 10 location IDs.", field="location_ids"
            )
        for k, loc in enumerate(location_ids):
            self.require_location(loc, f"location_ids[{k}]")
        query = request.get("query") or {}
        flt = query.get("filter") or {}
        sort = query.get("sort") or {}
        sort_field = sort.get("sort_field", "CREATED_AT")
        states = set((flt.get("state_filter") or {}).get("states") or ())
        ranges = []
        for name, value in (flt.get("date_time_filter") or {}).items():
            if value:
                ranges.append((name, value))
        if len(ranges) > 1:
            raise SquareError(
                400,
                "INVALID_VALUE",
                "Filter on one timestamp at a time.",
                field="query.filter.date_time_filter",
            )
        if ranges and ranges[0][0].upper() != sort_field:
            raise SquareError(
                400,
                "INVALID_VALUE",
                f"With a `{ranges[0][0]}` date_time_filter the sort_field must be "
                f"{ranges[0][0].upper()}.",
                field="query.sort.sort_field",
            )
        ff = flt.get("fulfillment_filter") or {}
        f_types = set(ff.get("fulfillment_types") or ())
        f_states = set(ff.get("fulfillment_states") or ())
        limit = request.get("limit") or 500
        limit = min(max(limit, 1), 1000)

        def keep(order: dict[str, Any]) -> bool:
            if order["location_id"] not in location_ids:
                return False
            if states and order["state"] not in states:
                return False
            if ranges:
                name, span = ranges[0]
                value = order.get(name)
                if value is None:
                    return False
                moment = parse_time(value, name)
                if span.get("start_at") and moment < parse_time(span["start_at"], name):
                    return False
                if span.get("end_at") and moment > parse_time(span["end_at"], name):
                    return False
            if f_types or f_states:
                fs = order.get("fulfillments") or ()
                if not any(
                    (not f_types or f["type"] in f_types)
                    and (not f_states or f["state"] in f_states)
                    for f in fs
                ):
                    return False
            return True

        key = sort_field.lower()
        found = [o for o in (self.orders[i] for i in self.order_log) if keep(o)]
        found.sort(
            key=lambda o: (o.get(key) or "", o["id"]),
            reverse=sort.get("sort_order", "DESC") == "DESC",
        )
        shape = _digest({k: v for k, v in request.items() if k not in ("cursor", "limit")})
        offset = 0
        if request.get("cursor"):
            payload = decode_cursor(request["cursor"])
            if payload.get("op") != "orders" or payload.get("shape") != shape:
                raise SquareError(
                    400,
                    "INVALID_CURSOR",
                    "The cursor was issued for another search.",
                    field="cursor",
                )
            offset = int(payload["offset"])
        page = found[offset : offset + limit]
        body: dict[str, Any] = {}
        if request.get("return_entries"):
            body["order_entries"] = [
                {"order_id": o["id"], "version": o["version"], "location_id": o["location_id"]}
                for o in page
            ]
        else:
            body["orders"] = page
        if offset + limit < len(found):
            body["cursor"] = encode_cursor(
                {"op": "orders", "shape": shape, "offset": offset + limit}
            )
        return body

    def batch_retrieve(self, request: dict[str, Any]) -> dict[str, Any]:
        ids = request["order_ids"]
        if len(ids) > 100:
            raise SquareError(
                400, "ARRAY_LENGTH_TOO_LONG", "At most 100 order IDs.", field="order_ids"
            )
        loc = request.get("location_id")
        orders = [
            self.orders[i]
            for i in ids
            if i in self.orders and (not loc or self.orders[i]["location_id"] == loc)
        ]
        return {"orders": orders}

    # -- payments -------------------------------------------------------------------------

    def create_payment(self, request: dict[str, Any]) -> dict[str, Any]:
        payment_id = self._idempotent(
            "payment", request["idempotency_key"], request, lambda: self._new_payment(request)
        )
        return self.payments[payment_id]

    def _new_payment(self, request: dict[str, Any]) -> str:
        source = request["source_id"]
        if source not in ("EXTERNAL", "CASH"):
            raise SquareError(
                400,
                "BAD_REQUEST",
                "The Square double records EXTERNAL and CASH payments only.",
                field="source_id",
            )
        if source == "EXTERNAL" and not request.get("external_details"):
            raise SquareError(
                400,
                "MISSING_REQUIRED_PARAMETER",
                "`external_details` is required for an EXTERNAL payment.",
                field="external_details",
            )
        amount = request.get("amount_money")
        if not amount or amount.get("amount") is None:
            raise SquareError(
                400,
                "MISSING_REQUIRED_PARAMETER",
                "`amount_money` is required.",
                field="amount_money",
            )
        tip = (request.get("tip_money") or {}).get("amount", 0)
        location_id = request.get("location_id") or self.locations[0]["id"]
        self.require_location(location_id, "location_id")
        order = None
        if request.get("order_id"):
            order = self.get_order(request["order_id"])
            if request.get("location_id") and order["location_id"] != location_id:
                raise SquareError(
                    400,
                    "LOCATION_MISMATCH",
                    "The payment and the order are at different locations.",
                    field="location_id",
                )
            location_id = order["location_id"]
            if amount.get("currency") != order["total_money"]["currency"]:
                raise SquareError(
                    400,
                    "CURRENCY_MISMATCH",
                    "The currency differs from the order's.",
                    field="amount_money.currency",
                )
            due = order["net_amount_due_money"]["amount"]
            if amount["amount"] > due:
                raise SquareError(
                    400,
                    "PAYMENT_AMOUNT_MISMATCH",
                    f"The payment ({amount['amount']}) exceeds the amount due ({due}).",
                    field="amount_money.amount",
                    category="PAYMENT_METHOD_ERROR",
                )
            if order["state"] != "OPEN":
                raise SquareError(
                    400, "BAD_REQUEST", f"The order is {order['state']}.", field="order_id"
                )
        stamp = now_rfc3339()
        payment_id = uuid.uuid4().hex[:24].upper() + "PAY"
        total = amount["amount"] + tip
        payment: dict[str, Any] = {
            "id": payment_id,
            "created_at": stamp,
            "updated_at": stamp,
            "amount_money": copy.deepcopy(amount),
            "total_money": _money(total, amount["currency"]),
            "approved_money": _money(total, amount["currency"]),
            "status": "COMPLETED" if request.get("autocomplete", True) else "APPROVED",
            "source_type": source,
            "location_id": location_id,
            "version_token": uuid.uuid4().hex,
            "receipt_number": payment_id[:4],
        }
        if tip:
            payment["tip_money"] = _money(tip, amount["currency"])
        for key in (
            "external_details",
            "cash_details",
            "order_id",
            "reference_id",
            "note",
            "customer_id",
            "team_member_id",
        ):
            if key in request:
                payment[key] = copy.deepcopy(request[key])
        self.payments[payment_id] = payment
        if order is not None:
            tender = {
                "id": payment_id,
                "location_id": location_id,
                "transaction_id": order["id"],
                "created_at": stamp,
                # A tender's amount includes its tip (a payment's amount_money does not).
                "amount_money": _money(total, amount["currency"]),
                "type": "CASH" if source == "CASH" else "OTHER",
                "payment_id": payment_id,
            }
            if tip:
                tender["tip_money"] = _money(tip, amount["currency"])
            order.setdefault("tenders", []).append(tender)
            price_order(order, self.currency)
            order["version"] += 1
            order["updated_at"] = stamp
            self.emit("order.updated", self._order_event("order_updated", order))
        return payment_id

    # -- helpers for tests ----------------------------------------------------------------

    def age_order(self, order_id: str, delta: timedelta) -> None:
        """Move an order's timestamps into the past (date filter tests)."""
        order = self.get_order(order_id)
        for key in ("created_at", "updated_at", "closed_at"):
            if key in order:
                moment = parse_time(order[key], key) - delta
                order[key] = now_rfc3339(moment)
