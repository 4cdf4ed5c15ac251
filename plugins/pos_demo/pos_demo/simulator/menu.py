"""The native DemoPOS menu: base data from ``menu_data.json`` plus per-location rules.

The base menu is shared by all locations; the small differences a real chain has between
stores (higher airport prices, an item not sold at the airport) are applied in code so the
JSON stays single-sourced. Time-dependent fields (the 86'd item's ``unavailable_until``) are
computed on every request, exactly like a live POS would report them. Staff availability
overrides (86 and back, see :mod:`.availability`) are laid over the menu on every request too;
an 86 whose ``until`` has passed no longer applies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from functools import cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from .errors import JSONDict


@dataclass(frozen=True)
class Location:
    """A store of the simulated chain and how its menu deviates from the base menu."""

    id: str
    name: str
    currency: str = "EUR"
    timezone: str = "Europe/Berlin"
    price_delta: int = 0
    """Added (in cents) to every item size price and combo price."""
    excluded_items: frozenset[str] = field(default_factory=frozenset)
    """Items (and combo choices using them) that this store does not sell."""

    def public(self) -> JSONDict:
        """Return the document used by ``GET /locations``."""
        return {
            "id": self.id,
            "name": self.name,
            "currency": self.currency,
            "timezone": self.timezone,
        }


LOCATIONS: tuple[Location, ...] = (
    Location(id="downtown", name="DemoBurger Downtown"),
    Location(
        id="airport",
        name="DemoBurger Airport T1",
        price_delta=50,
        excluded_items=frozenset({"chili_burger"}),
    ),
)


@cache
def load_base_menu() -> JSONDict:
    """Read the packaged base menu once; callers must copy it before mutating."""
    raw = resources.files(__package__).joinpath("menu_data.json").read_bytes()
    data: JSONDict = orjson.loads(raw)
    return data


def iso(moment: datetime) -> str:
    """Format a datetime as ISO-8601 UTC with a ``Z`` suffix (second precision+millis)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def next_restock(now: datetime) -> datetime:
    """Return tomorrow 06:00 UTC, when 86'd items come back."""
    tomorrow = (now.astimezone(UTC) + timedelta(days=1)).date()
    return datetime.combine(tomorrow, time(6, 0), tzinfo=UTC)


@dataclass
class MenuIndex:
    """Id lookups over one location's menu, used to validate orders."""

    items: dict[str, JSONDict]
    groups: dict[str, JSONDict]
    options: dict[str, tuple[str, JSONDict]]
    """option id -> (group id, option document)."""
    combos: dict[str, JSONDict]
    timezone: ZoneInfo


OverrideSource = Callable[[str], JSONDict]
"""Location id -> its availability overrides ``{"items": {id: record}, "options": {...}}``."""


class MenuCatalog:
    """Produces location menus and lookup indexes from the base data.

    :param overrides: where staff availability overrides come from (set by the simulator core
        so the menu follows the persisted state); ``None`` serves the base menu as is.
    """

    def __init__(
        self,
        base: JSONDict | None = None,
        locations: tuple[Location, ...] = LOCATIONS,
        updated_at: datetime | None = None,
        overrides: OverrideSource | None = None,
    ) -> None:
        self._base = base if base is not None else load_base_menu()
        self._locations = {loc.id: loc for loc in locations}
        self.updated_at = updated_at or datetime.now(UTC)
        self.overrides = overrides

    def locations(self) -> list[JSONDict]:
        """Return all stores in their public shape."""
        return [loc.public() for loc in self._locations.values()]

    def location(self, location_id: str) -> Location | None:
        """Return the store with that id, or ``None`` when unknown."""
        return self._locations.get(location_id)

    def menu_for(self, location_id: str, now: datetime | None = None) -> JSONDict:
        """Build the native menu document of a store; raises ``KeyError`` if unknown."""
        loc = self._locations[location_id]
        now = now or datetime.now(UTC)
        # A JSON round trip copies the (JSON-only) base menu several times faster than
        # copy.deepcopy, which was most of the cost of validating an order.
        base: JSONDict = orjson.loads(orjson.dumps(self._base))
        items = [it for it in base["items"] if it["id"] not in loc.excluded_items]
        for it in items:
            for size in it["sizes"]:
                size["prices"] = _shift(size["prices"], loc.price_delta)
            if not it["available"] and it.get("unavailable_reason"):
                it["unavailable_until"] = iso(next_restock(now))
        combos = []
        for combo in base["combos"]:
            combo["prices"] = _shift(combo["prices"], loc.price_delta)
            for slot in combo["slots"]:
                slot["choices"] = [
                    c for c in slot["choices"] if c["item"] not in loc.excluded_items
                ]
            if all(slot["choices"] or slot["min"] == 0 for slot in combo["slots"]):
                combos.append(combo)
        if self.overrides is not None:
            _apply_overrides(self.overrides(loc.id), items + combos, base["modifier_groups"], now)
        return {
            "location": loc.id,
            "currency": loc.currency,
            "timezone": loc.timezone,
            "updated_at": iso(self.updated_at),
            "price_levels": base["price_levels"],
            "taxes": base["taxes"],
            "categories": base["categories"],
            "items": items,
            "modifier_groups": base["modifier_groups"],
            "combos": combos,
        }

    def index_for(self, location_id: str, now: datetime | None = None) -> MenuIndex:
        """Build id lookups for a store's menu; raises ``KeyError`` if unknown."""
        menu = self.menu_for(location_id, now)
        options: dict[str, tuple[str, JSONDict]] = {}
        for group in menu["modifier_groups"]:
            for option in group["options"]:
                options[option["id"]] = (group["id"], option)
        return MenuIndex(
            items={it["id"]: it for it in menu["items"]},
            groups={g["id"]: g for g in menu["modifier_groups"]},
            options=options,
            combos={c["id"]: c for c in menu["combos"]},
            timezone=ZoneInfo(self._locations[location_id].timezone),
        )


def _shift(prices: dict[str, Any], delta: int) -> dict[str, int]:
    """Add a fixed amount to every price level."""
    return {level: int(amount) + delta for level, amount in prices.items()}


def _apply_overrides(
    overrides: JSONDict, products: list[JSONDict], groups: list[JSONDict], now: datetime
) -> None:
    """Lay staff availability records over items/combos and modifier options, in place."""
    item_records: JSONDict = overrides.get("items") or {}
    option_records: JSONDict = overrides.get("options") or {}
    for product in products:
        if product["id"] in item_records:
            _set_availability(product, item_records[product["id"]], now)
    for group in groups:
        for option in group["options"]:
            if option["id"] in option_records:
                _set_availability(option, option_records[option["id"]], now)


def _set_availability(entity: JSONDict, record: JSONDict, now: datetime) -> None:
    """Apply one record; an 86 whose ``until`` has passed means available again."""
    until = record.get("until")
    expired = until is not None and datetime.fromisoformat(until) <= now
    if record["available"] or expired:
        entity.update(available=True, unavailable_until=None, unavailable_reason=None)
    else:
        entity.update(
            available=False, unavailable_until=until, unavailable_reason=record.get("reason")
        )
