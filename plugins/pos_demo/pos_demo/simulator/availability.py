"""Staff availability actions: 86 an item (or combo) or a modifier option, and bring it back.

What a real POS's back office does when the kitchen runs out of something. Each action is
recorded per location in the persisted state (so the menu keeps showing it after a restart),
laid over ``GET /menu`` by :class:`~.menu.MenuCatalog`, enforced by order validation (409
``sold_out``), and announced as an ``availability`` webhook::

    {"type": "availability", "seq": 3, "location": "downtown",
     "item": "fries",                      # or "option": "sauce_bbq", "group": "burger_sauce"
     "available": false, "until": "2024-05-01T18:00:00.000Z", "reason": "out of stock",
     "hours": null, "channels": null, "at": "2024-05-01T12:00:00.000Z"}

``hours`` and ``channels`` repeat the entity's serving hours and channels (null when it has
none), so a receiver can rebuild its whole availability from the webhook alone. ``seq`` counts
availability webhooks; it is separate from the order change feed, which holds order events only.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .errors import ApiError, JSONDict
from .menu import MenuCatalog, iso
from .storage import Storage, Touched

AvailabilityListener = Callable[[JSONDict], None]


def _invalid(message: str) -> ApiError:
    return ApiError(422, "invalid_request", message)


class AvailabilityBoard:
    """Owns the staff availability overrides inside the persisted state."""

    def __init__(
        self,
        storage: Storage,
        catalog: MenuCatalog,
        on_event: AvailabilityListener | None = None,
    ) -> None:
        self.storage = storage
        self.catalog = catalog
        self.on_event = on_event

    def overrides(self, location: str) -> JSONDict:
        """The overrides of one location (``{"items": {...}, "options": {...}}``, maybe empty)."""
        found: JSONDict = self.storage.state.availability.get(location, {})
        return found

    def set_from_body(self, body: Any) -> JSONDict:
        """Validate a ``POST /availability`` body and apply it; returns the announced event."""
        if not isinstance(body, dict):
            raise _invalid("body must be a JSON object")
        location = body.get("location")
        if not isinstance(location, str):
            raise _invalid("location must be a string")
        item, option = body.get("item"), body.get("option")
        if (item is None) == (option is None):
            raise _invalid("name exactly one of 'item' or 'option'")
        for name, value in (("item", item), ("option", option)):
            if value is not None and not isinstance(value, str):
                raise _invalid(f"{name} must be a string")
        available = body.get("available")
        if not isinstance(available, bool):
            raise _invalid("available must be a boolean")
        until = body.get("until")
        if until is not None and not isinstance(until, str):
            raise _invalid("until must be an ISO-8601 timestamp or null")
        reason = body.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise _invalid("reason must be a string or null")
        return self.set(
            location, item=item, option=option, available=available, until=until, reason=reason
        )

    def set(
        self,
        location: str,
        *,
        item: str | None = None,
        option: str | None = None,
        available: bool,
        until: datetime | str | None = None,
        reason: str | None = None,
        now: datetime | None = None,
    ) -> JSONDict:
        """86 (``available=False``) or restore an item/combo or an option at ``location``.

        ``until`` and ``reason`` only apply to an 86 and are dropped when restoring.
        Persists the change, then announces it; returns the webhook body.

        :raises ApiError: 404 for an unknown location, 422 for anything else that is wrong.
        """
        if self.catalog.location(location) is None:
            raise ApiError(404, "unknown_location", f"location {location!r} does not exist")
        if (item is None) == (option is None):
            raise _invalid("name exactly one of 'item' or 'option'")
        now = now or datetime.now(UTC)
        index = self.catalog.index_for(location, now)
        target: JSONDict = {}
        if item is not None:
            entity = index.items.get(item) or index.combos.get(item)
            if entity is None:
                raise _invalid(f"item: unknown item {item!r} at {location!r}")
            kind, key = "items", item
            target = {"item": item}
        else:
            assert option is not None
            found = index.options.get(option)
            if found is None:
                raise _invalid(f"option: unknown option {option!r} at {location!r}")
            group_id, entity = found
            kind, key = "options", option
            target = {"option": option, "group": group_id}
        until_text = None if available else _until(until)
        record = {
            "available": available,
            "until": until_text,
            "reason": None if available else reason,
            "at": iso(now),
        }
        state = self.storage.state
        state.availability.setdefault(location, {}).setdefault(kind, {})[key] = record
        state.last_availability_seq += 1
        event: JSONDict = {
            "type": "availability",
            "seq": state.last_availability_seq,
            "location": location,
            **target,
            "available": record["available"],
            "until": record["until"],
            "reason": record["reason"],
            "hours": entity.get("hours") or None,
            "channels": entity.get("channels") or None,
            "at": record["at"],
        }
        self.storage.save(Touched(availability={(location, kind, key)}))
        if self.on_event is not None:
            self.on_event(copy.deepcopy(event))
        return event


def _until(value: datetime | str | None) -> str | None:
    """Normalise ``until`` to ISO-8601 UTC (``...Z``); it must carry a time zone."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise _invalid("until must be an ISO-8601 timestamp") from None
    if value.tzinfo is None:
        raise _invalid("until must carry a time zone (e.g. a trailing 'Z')")
    return iso(value)
