"""Request handlers of the Integrator API. Each is listed, with its models, in api/routes.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from posintegrator import __version__
from posintegrator.api.problems import FieldError, ProblemError, validation_problem
from posintegrator.api.schemas import (
    ConnectionList,
    ConnectionView,
    Health,
    HistoryItem,
    MenuDiffView,
    MenuSyncView,
    OrderAccepted,
    OrderView,
    PluginList,
    PluginView,
)
from posintegrator.errors import PosError, WebhookRejected
from posintegrator.hooktypes import InboundWebhook
from posintegrator.live_menus import LiveMenu
from posintegrator.model import Menu, Order, OrderStatus, utcnow
from posintegrator.model.availability import AvailabilityChange
from posintegrator.model.menu_diff import diff_menus
from posintegrator.model.order_check import check_order_against_menu
from posintegrator.order_intake import (
    OrderProblem,
    accept_order,
    check_order,
    order_content_hash,
)
from posintegrator.store import AcceptOutcome

if TYPE_CHECKING:
    from posintegrator.runtime import Host

HOST_KEY: web.AppKey[Host] = web.AppKey("host")


def json_response(
    model: BaseModel, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON response of ``model``, serialised by orjson."""
    return web.Response(
        status=status,
        body=orjson.dumps(model.model_dump(mode="json")),
        content_type="application/json",
        headers=headers,
    )


async def healthz(request: web.Request) -> web.Response:
    """Liveness."""
    host = request.app[HOST_KEY]
    return json_response(Health(status="ok" if host.accepting else "stopping", version=__version__))


async def list_plugins(request: web.Request) -> web.Response:
    """The loaded plugins."""
    host = request.app[HOST_KEY]
    views = []
    for info in host.plugins.plugins():
        pos = host.plugins.pos(info.name)
        views.append(
            PluginView(
                name=info.name,
                version=info.version,
                distribution=info.distribution,
                capabilities=pos.capabilities(),
            )
        )
    return json_response(PluginList(plugins=views))


async def list_connections(request: web.Request) -> web.Response:
    """The connections, their health and last menu syncs."""
    host = request.app[HOST_KEY]
    views = []
    for jobs in host.connections.values():
        conn = jobs.connection
        in_flight = await host.store.orders_in_flight(conn.name)
        views.append(
            ConnectionView(
                name=conn.name,
                plugin=conn.plugin.name,
                locations=list(conn.settings.locations),
                health=conn.health.state.value,
                health_since=conn.health.since,
                last_error=conn.health.last_error,
                circuit=conn.health.circuit.value,
                probe_at=conn.health.probe_at,
                status_source="polling" if conn.uses_polling() else "webhook",
                orders_in_flight=len(in_flight),
                menu_syncs=[
                    MenuSyncView(location=loc, at=s.at, ok=s.ok, version=s.version, error=s.error)
                    for loc, s in sorted(conn.health.menu_syncs.items())
                ],
            )
        )
    return json_response(ConnectionList(connections=views))


def _served_location(host: Host, request: web.Request) -> str:
    location = request.match_info["location"]
    if host.connection_for_location(location) is None:
        raise ProblemError(404, "Unknown location", f"no connection serves location {location!r}")
    return location


async def _live_menu(host: Host, location: str) -> LiveMenu:
    live = await host.live_menus.get(location)
    if live is None:
        raise ProblemError(
            404,
            "No menu yet",
            f"the menu of {location!r} has not been fetched from the POS yet; try again shortly",
            headers={"Retry-After": "5"},
        )
    return live


async def get_menu(request: web.Request) -> web.Response:
    """The last published menu of a location (ETag: its content hash), or with ``since`` the
    diff from that version to the latest."""
    host = request.app[HOST_KEY]
    location = _served_location(host, request)
    live = await _live_menu(host, location)
    since = request.query.get("since")
    if since is not None:
        return await _menu_diff(host, live, since)
    snapshot = live.snapshot
    etag = f'"{snapshot.content_hash}"'
    headers = {
        "ETag": etag,
        "X-Menu-Version": str(snapshot.version),
        "Last-Modified": snapshot.published_at.strftime("%a, %d %b %Y %H:%M:%S GMT"),
    }
    if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
        return web.Response(status=304, headers=headers)
    return web.Response(body=snapshot.body, content_type="application/json", headers=headers)


async def _menu_diff(host: Host, live: LiveMenu, since: str) -> web.Response:
    if not since.isdigit():
        raise ProblemError(
            400,
            "Invalid version",
            "since must be a menu version number",
            [FieldError(field="since", reason="not a whole number")],
        )
    version = int(since)
    latest = live.snapshot.version
    if version > latest:
        raise ProblemError(
            404, "Unknown version", f"version {version} is newer than the latest ({latest})"
        )
    old = await host.store.menu_version(live.snapshot.location, version)
    if old is None:
        raise ProblemError(
            404, "Unknown version", f"version {version} does not exist; fetch the whole menu"
        )
    diff = diff_menus(Menu.model_validate_json(old.body), live.menu)
    return json_response(
        MenuDiffView(
            location=live.snapshot.location,
            from_version=version,
            to_version=latest,
            content_hash=live.snapshot.content_hash,
            diff=diff,
        )
    )


async def get_menu_report(request: web.Request) -> web.Response:
    """The latest validation report of a location's menu."""
    host = request.app[HOST_KEY]
    location = _served_location(host, request)
    body = await host.store.menu_report(location)
    if body is None:
        raise ProblemError(404, "No report yet", f"the menu of {location!r} was not checked yet")
    return web.Response(body=body, content_type="application/json")


async def post_order(request: web.Request) -> web.Response:
    """Accept an order from the cloud (202), idempotently on its id."""
    host = request.app[HOST_KEY]
    if not host.accepting:
        raise ProblemError(
            503,
            "Not accepting orders",
            "the host is stopping; retry shortly",
            headers={"Retry-After": "5"},
        )
    raw = await request.read()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ProblemError(
            400, "Body is not JSON", str(exc), [FieldError(field="body", reason=str(exc))]
        ) from None
    try:
        order = Order.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(exc, "Invalid order") from None
    jobs = host.connection_for_location(order.location)
    try:
        check_order(order, jobs)
    except OrderProblem as exc:
        raise ProblemError(
            422,
            "Invalid order",
            f"{exc.field}: {exc.reason}",
            [FieldError(field=exc.field, reason=exc.reason)],
        ) from None
    assert jobs is not None
    replay = await _replayed(host, order)
    if replay is not None:
        return replay
    live = await host.live_menus.get(order.location)
    if live is None:
        raise ProblemError(
            503,
            "Menu not synced yet",
            f"orders for {order.location!r} are checked against its menu, which has not been "
            "fetched from the POS yet; retry shortly",
            headers={"Retry-After": "5"},
        )
    findings = check_order_against_menu(
        order,
        live.menu,
        at=order.pickup_time or utcnow(),
        price_tolerance=host.settings.orders.price_tolerance,
    )
    if findings:
        raise ProblemError(
            422,
            "Order does not match the menu",
            "; ".join(f"{f.field}: {f.reason}" for f in findings[:3]),
            [FieldError(field=f.field, reason=f.reason, code=f.code.value) for f in findings],
        )
    result = await accept_order(host.store, order, jobs)
    return _accepted(order, result.outcome)


async def _replayed(host: Host, order: Order) -> web.Response | None:
    """The first answer again, for an order id accepted before (checked before the menu, which
    may have changed since: a replay must not be refused for that)."""
    record = await host.store.get_order(order.id)
    if record is None:
        return None
    same = record.content_hash == order_content_hash(order)
    return _accepted(order, AcceptOutcome.REPLAYED if same else AcceptOutcome.CONFLICT)


def _accepted(order: Order, outcome: AcceptOutcome) -> web.Response:
    if outcome == AcceptOutcome.CONFLICT:
        raise ProblemError(
            409,
            "Order id already used",
            f"order {order.id!r} was accepted before with different content; "
            "use a new id for a new order",
            [FieldError(field="id", reason="already used with different content")],
        )
    headers = {"Location": f"/v1/orders/{order.id}"}
    if outcome == AcceptOutcome.REPLAYED:
        headers["Idempotent-Replayed"] = "true"
    return json_response(
        OrderAccepted(id=order.id, status=OrderStatus.RECEIVED), status=202, headers=headers
    )


async def get_order(request: web.Request) -> web.Response:
    """One order, its status and its status history."""
    host = request.app[HOST_KEY]
    order_id = request.match_info["order_id"]
    record = await host.store.get_order(order_id)
    if record is None:
        raise ProblemError(404, "Unknown order", f"no order with id {order_id!r}")
    history = await host.store.order_history(order_id)
    return json_response(
        OrderView(
            order=record.order,
            status=record.status,
            status_reason=record.status_reason,
            pos_order_id=record.pos_order_id,
            connection=record.connection,
            attempts=record.attempts,
            last_error=record.last_error,
            created_at=record.created_at,
            updated_at=record.updated_at,
            history=[
                HistoryItem(
                    at=h.at,
                    status=h.status,
                    applied=h.applied,
                    note=h.note,
                    source=h.source,
                    reason=h.reason,
                    sequence=h.sequence,
                )
                for h in history
            ],
        )
    )


async def pos_webhook(request: web.Request) -> web.Response:
    """A POS's webhook for one connection: verified and read by the connection's plugin."""
    host = request.app[HOST_KEY]
    name = request.match_info["connection"]
    jobs = host.connections.get(name)
    if jobs is None:
        raise ProblemError(404, "Unknown connection", f"no connection named {name!r}")
    conn = jobs.connection
    inbound = InboundWebhook(
        url=str(request.url), headers=request.headers, body=await request.read()
    )
    try:
        result = await conn.plugin.parse_webhook(conn.ctx, inbound)
    except WebhookRejected as exc:
        conn.ctx.log.warning("webhook refused: {}", exc.message)
        raise ProblemError(exc.status, "Webhook refused", exc.message) from None
    except PosError as exc:
        raise ProblemError(
            503, "Webhook not processed", exc.message, headers={"Retry-After": "5"}
        ) from None
    for event in result.events:
        await host.intake.apply(name, event)
    if result.menu_changed_locations:
        jobs.request_menu_sync(result.menu_changed_locations)
    by_location: dict[str, list[AvailabilityChange]] = {}
    for change in result.availability:
        if change.location in conn.settings.locations:
            by_location.setdefault(change.location, []).append(change)
    for location, changes in by_location.items():
        await jobs.menusync.apply_availability(location, changes)
    return web.json_response(
        {"received": len(result.events), "availability": len(result.availability)}
    )


async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI document of this API."""
    from posintegrator.api.openapi import openapi_document
    from posintegrator.api.routes import ROUTES

    return web.Response(
        body=orjson.dumps(openapi_document(ROUTES)), content_type="application/json"
    )
