"""The dashboard's pages: connections and venues, orders, what needs a person, menus.

Each handler gathers what its page shows through the same functions the Integrator API uses
(``api.handlers``, ``api.agents``) or the store, and renders a template; nothing here changes
state (the forms post to ``ui.actions``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from pydantic import ValidationError

from posintegrator.api.agents import agent_view
from posintegrator.api.handlers import check_cancellable, connection_views, order_view
from posintegrator.api.problems import ProblemError
from posintegrator.cloud.events import MenuNotice, menu_stream, order_stream
from posintegrator.menus.sync import MenuReport
from posintegrator.model import Menu, OrderStatus, can_retry_delivery, is_final, utcnow
from posintegrator.model.menu_diff import COLLECTIONS, diff_menus
from posintegrator.store import OrderQuery, OrderRecord
from posintegrator.ui import views
from posintegrator.ui.dashboard import dashboard_of
from posintegrator.ui.render import render

if TYPE_CHECKING:
    from posintegrator.runtime.host import Host

#: Orders one search shows at most.
SEARCH_LIMIT = 200
#: Orders per group on the "needs a person" page.
ATTENTION_LIMIT = 100


def _host(request: web.Request) -> Host:
    return dashboard_of(request).host


def _locations(host: Host) -> list[str]:
    return sorted(
        loc for jobs in host.connections.values() for loc in jobs.connection.settings.locations
    )


# --- connections and venues ---------------------------------------------------------------------


@dataclass(frozen=True)
class VenueMenu:
    """A location's menu as the overview shows it."""

    location: str
    version: int | None
    published_at: datetime | None
    notice: MenuNotice | None


async def overview(request: web.Request) -> web.Response:
    """Connections with their health and circuit, each venue's menu, agents, the cloud backlog
    and the counts of orders by status."""
    host = _host(request)
    venues: dict[str, VenueMenu] = {}
    for location in _locations(host):
        live = await host.live_menus.get(location)
        notice = None
        if live is not None:
            version = live.snapshot.version
            events = await host.store.stream_events(menu_stream(location), after=version - 1)
            if events:
                body = orjson.loads(events[-1].body)
                notice = MenuNotice.model_validate(body.get("notice", {}))
        venues[location] = VenueMenu(
            location,
            live.snapshot.version if live else None,
            live.snapshot.published_at if live else None,
            notice,
        )
    agents = []
    if host.links is not None:
        elsewhere = await host.links.linked_elsewhere()
        agents = [await agent_view(host, agent, elsewhere) for agent in await host.store.agents()]
    counts: dict[str, dict[str, int]] = {}
    for connection, status, count in await host.store.order_counts():
        counts.setdefault(connection, {})[status] = count
    return render(
        request,
        "overview.html",
        {
            "connections": await connection_views(host),
            "syncs": {
                name: jobs.connection.health.menu_syncs for name, jobs in host.connections.items()
            },
            "venues": venues,
            "agents": agents,
            "backlog": await host.store.outbox_backlog(),
            "counts": counts,
            "statuses": [s.value for s in OrderStatus],
        },
    )


# --- orders -------------------------------------------------------------------------------------


class FormError(Exception):
    """A search field that cannot be read: ``field`` and ``reason``."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _utc(field: str, text: str) -> datetime | None:
    """A ``datetime-local`` field's value, read as UTC."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise FormError(field, "a date and time such as 2026-05-01T12:30") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _query(request: web.Request, locations: list[str]) -> OrderQuery:
    """The search form's fields as an :class:`OrderQuery`.

    :raises FormError: naming the first field that cannot be read.
    """
    params = request.query
    text = params.get("q", "").strip()
    if len(text) > 200:
        raise FormError("q", "at most 200 characters")
    location = params.get("location", "")
    if location and location not in locations:
        raise FormError("location", "not a location this host serves")
    try:
        statuses = tuple(OrderStatus(s) for s in params.getall("status", []) if s)
    except ValueError:
        raise FormError("status", "not an order status") from None
    return OrderQuery(
        text=text or None,
        location=location or None,
        statuses=statuses,
        created_from=_utc("from", params.get("from", "")),
        created_to=_utc("to", params.get("to", "")),
        limit=SEARCH_LIMIT,
    )


async def orders(request: web.Request) -> web.Response:
    """Search orders by id (or the POS's id), location, status and time placed."""
    host = _host(request)
    locations = _locations(host)
    error: FormError | None = None
    found: list[OrderRecord] = []
    try:
        query = _query(request, locations)
        found = await host.store.search_orders(query)
    except FormError as exc:
        error = exc
        query = OrderQuery()
    return render(
        request,
        "orders.html",
        {
            "orders": found,
            "query": query,
            "params": request.query,
            "locations": locations,
            "statuses": [s.value for s in OrderStatus],
            "error": error,
            "limit": SEARCH_LIMIT,
        },
        status=400 if error else 200,
    )


#: What the operator actions do, as the order page and the attention page explain them.
ACTIONS = {
    "retry": "Send it to the POS again now (it is looked up first if it may be there).",
    "found": "You found it in the POS: it becomes ACCEPTED with the POS's id.",
    "missing": "You checked that the POS does not have it: it is sent now.",
    "cancel": "Cancel it: at once while the POS does not have it, else the POS is asked to.",
}
DONE = {
    "retry": "Sent to the POS again.",
    "found": "Marked as found in the POS.",
    "missing": "Marked as missing from the POS; it is being sent.",
    "cancel": "Cancelled, or (when the POS has it) asked of the POS: its answer shows here.",
    "stream-retry": "The stream's head event is being sent to the cloud again.",
    "stream-skip": "The head event was skipped: the events behind it follow.",
}


def actions_for(host: Host, record: OrderRecord) -> list[str]:
    """The operator actions an order allows, as the API would judge them."""
    verbs = ["retry", "found", "missing"] if can_retry_delivery(record.status) else []
    if _cancellable(host, record):
        verbs.append("cancel")
    return verbs


def _cancellable(host: Host, record: OrderRecord) -> bool:
    if is_final(record.status) or record.cancel_pending:
        return False
    jobs = host.connections.get(record.connection)
    if jobs is None:
        return True
    try:
        check_cancellable(record, jobs.connection.plugin.capabilities())
    except ProblemError:
        return False
    return True


async def order(request: web.Request) -> web.Response:
    """One order: where it is and why (its timeline), and what the customer ordered."""
    return await order_page(request, request.match_info["order_id"])


async def order_page(
    request: web.Request,
    order_id: str,
    *,
    error: str | None = None,
    status: int = 200,
    form: dict[str, str] | None = None,
) -> web.Response:
    """The order page, with an action's refusal (``error``) and the form it came with."""
    host = _host(request)
    view = await order_view(host, order_id)
    record = await host.store.get_order(order_id)
    assert record is not None
    live = await host.live_menus.get(view.order.location)
    events = await host.store.stream_events(order_stream(order_id))
    done = request.query.get("done", "")
    return render(
        request,
        "order.html",
        {
            "view": view,
            "record": record,
            "timeline": views.timeline(view, events),
            "lines": views.priced_lines(view.order, live.menu if live else None),
            "extras": views.order_extras(view.order),
            "menu_version": live.snapshot.version if live else None,
            "actions": actions_for(host, record),
            "descriptions": ACTIONS,
            "done": DONE.get(done),
            "error": error,
            "form": form or {},
        },
        status=status,
    )


async def attention(request: web.Request) -> web.Response:
    """What needs a person: orders parked for a check, deliveries that keep failing, orders
    that failed, streams whose head event the cloud keeps refusing, and events it has not
    taken."""
    return await attention_page(request)


async def attention_page(
    request: web.Request, *, error: str | None = None, status: int = 200
) -> web.Response:
    """The page of what needs a person, with an action's refusal (``error``)."""
    host = _host(request)
    stuck_after = timedelta(seconds=host.settings.cloud.stuck_after_seconds)
    store = host.store
    parked = await store.orders_by_status([OrderStatus.NEEDS_ATTENTION], ATTENTION_LIMIT)
    waiting = await store.orders_by_status(
        [OrderStatus.RECEIVED, OrderStatus.SUBMITTING], 10 * ATTENTION_LIMIT
    )
    failing = [r for r in waiting if r.last_error is not None][:ATTENTION_LIMIT]
    failed = await store.search_orders(
        OrderQuery(statuses=(OrderStatus.FAILED,), limit=ATTENTION_LIMIT)
    )
    return render(
        request,
        "attention.html",
        {
            "parked": parked,
            "failing": failing,
            "failed": failed,
            "backlog": await store.outbox_backlog(),
            "streams": [
                (head, utcnow() - head.created_at > stuck_after)
                for head in await store.stream_heads(
                    failing=True, made_before=None, limit=ATTENTION_LIMIT
                )
            ],
            "actions_for": partial(actions_for, host),
            "descriptions": ACTIONS,
            "done": DONE.get(request.query.get("done", "")),
            "error": error,
        },
        status=status,
    )


# --- menus --------------------------------------------------------------------------------------


async def menus(request: web.Request) -> web.Response:
    """Every location's published menu and its latest check."""
    host = _host(request)
    rows: list[dict[str, Any]] = []
    for location in _locations(host):
        live = await host.live_menus.get(location)
        report = await _report(host, location)
        rows.append({"location": location, "live": live, "report": report})
    return render(request, "menus.html", {"rows": rows})


async def _report(host: Host, location: str) -> MenuReport | None:
    body = await host.store.menu_report(location)
    if body is None:
        return None
    try:
        return MenuReport.model_validate_json(body)
    except ValidationError:
        return None  # a report of another release: the menu page does without it


def _served(host: Host, request: web.Request) -> str:
    location = request.match_info["location"]
    if host.connection_for_location(location) is None:
        raise ProblemError(404, "Unknown location", f"no connection serves location {location!r}")
    return location


async def _version(host: Host, location: str, version: int) -> Menu:
    snapshot = await host.store.menu_version(location, version)
    if snapshot is None:
        raise ProblemError(404, "Unknown version", f"{location} has no menu version {version}")
    return Menu.model_validate_json(snapshot.body)


def _version_param(request: web.Request, name: str, latest: int) -> int | None:
    text = request.query.get(name, "")
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= latest:
        raise ProblemError(400, f"Invalid {name}", f"{name} must be a version from 1 to {latest}")
    return int(text)


async def menu(request: web.Request) -> web.Response:
    """A location's menu as a tree, what is 86'd, its validation report, and its versions."""
    host = _host(request)
    location = _served(host, request)
    live = await host.live_menus.get(location)
    report = await _report(host, location)
    if live is None:
        return render(
            request,
            "menu.html",
            {"location": location, "menu": None, "report": report, "latest": None},
        )
    latest = live.snapshot.version
    version = _version_param(request, "version", latest) or latest
    shown = live.menu if version == latest else await _version(host, location, version)
    snapshot = (
        live.snapshot if version == latest else await host.store.menu_version(location, version)
    )
    return render(
        request,
        "menu.html",
        {
            "location": location,
            "menu": shown,
            "snapshot": snapshot,
            "version": version,
            "latest": latest,
            "tree": views.menu_tree(shown),
            "groups": views.groups_by_id(shown),
            "products": {p.id: p for p in shown.products},
            "unavailable": views.unavailable(shown),
            "report": report,
        },
    )


async def menu_diff(request: web.Request) -> web.Response:
    """What changed in a location's menu between two versions (default: the last change)."""
    host = _host(request)
    location = _served(host, request)
    live = await host.live_menus.get(location)
    if live is None:
        raise ProblemError(404, "No menu yet", f"the menu of {location!r} has not synced yet")
    latest = live.snapshot.version
    to = _version_param(request, "to", latest) or latest
    since = _version_param(request, "from", latest) or max(1, to - 1)
    old = await _version(host, location, since)
    new = live.menu if to == latest else await _version(host, location, to)
    diff = diff_menus(old, new)
    names = {
        collection: {
            entity.id: getattr(entity, "name", entity.id)
            for menu in (old, new)
            for entity in getattr(menu, collection)
        }
        for collection in COLLECTIONS
    }
    # The diff carries the new values; the page shows each next to what it was.
    before = {
        collection: {
            entity.id: entity.model_dump(mode="json") for entity in getattr(old, collection)
        }
        for collection in COLLECTIONS
    }
    return render(
        request,
        "diff.html",
        {
            "location": location,
            "since": since,
            "to": to,
            "latest": latest,
            "diff": diff,
            "collections": COLLECTIONS,
            "names": names,
            "before": before,
            "old_fields": old.model_dump(mode="json"),
        },
    )
