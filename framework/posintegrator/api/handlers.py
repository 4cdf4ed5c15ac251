"""Request handlers of the Integrator API. Each is listed, with its models, in api/routes.py."""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import quote

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel

from posintegrator import __version__
from posintegrator.api.body import read_limited, read_model
from posintegrator.api.problems import FieldError, ProblemError
from posintegrator.api.schemas import (
    AttemptView,
    CancellationView,
    CancelOrder,
    ConnectionList,
    ConnectionView,
    FoundInPos,
    Health,
    HistoryItem,
    MenuDiffView,
    MenuSyncView,
    OperatorAction,
    OrderAccepted,
    OrderList,
    OrderSummary,
    OrderView,
    PluginList,
    PluginView,
    Readiness,
    WebhookReceived,
)
from posintegrator.errors import PosError, WebhookRejected
from posintegrator.hooktypes import Capabilities, InboundWebhook
from posintegrator.link.actions import ActionName, action_message
from posintegrator.menus.live import LiveMenu
from posintegrator.model import Menu, Order, OrderStatus, StatusEvent, is_final, utcnow
from posintegrator.model.availability import AvailabilityChange
from posintegrator.model.menu_diff import diff_menus
from posintegrator.model.order_check import check_order_against_menu
from posintegrator.orders.intake import (
    accept_order,
    check_order,
    order_content_hash,
)
from posintegrator.store import AcceptOutcome, CancelOutcome, OrderRecord

if TYPE_CHECKING:
    from posintegrator.runtime.host import Host

HOST_KEY: web.AppKey[Host] = web.AppKey("host")

ActionT = TypeVar("ActionT", bound=OperatorAction)
ModelT = TypeVar("ModelT", bound=BaseModel)

_DIGITS = re.compile(r"[0-9]{1,19}")
#: The largest menu version a client may name (a signed 64-bit integer).
MAX_VERSION = 2**63 - 1
#: Orders listed at most, and by default, in one answer of GET /v1/orders.
MAX_LIST_LIMIT = 1000
DEFAULT_LIST_LIMIT = 100
#: The title of the 409 answering an operator action while the order is being sent to the POS.
SUBMISSION_UNDER_WAY = "Submission under way"
#: The statuses GET /v1/orders lists when none is asked for: those a person must look at.
DEFAULT_LIST_STATUSES = (OrderStatus.NEEDS_ATTENTION.value, OrderStatus.FAILED.value)


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


async def read_body(request: web.Request, model: type[ModelT], title: str) -> ModelT:
    """The request's JSON body as ``model``, within the API's size and nesting limits."""
    limits = request.app[HOST_KEY].settings.api
    return await read_model(
        request,
        model,
        max_bytes=limits.max_body_bytes,
        max_depth=limits.max_json_depth,
        title=title,
    )


def whole_number(request: web.Request, name: str, low: int, high: int) -> int | None:
    """The query parameter ``name`` as a whole number from ``low`` to ``high``, if given.

    :raises ProblemError: 400 naming the parameter when it is anything else.
    """
    text = request.query.get(name)
    if text is None:
        return None
    if _DIGITS.fullmatch(text) is None or not low <= int(text) <= high:
        reason = f"a whole number from {low} to {high}"
        raise ProblemError(
            400,
            f"Invalid {name}",
            f"{name} must be {reason}",
            [FieldError(field=name, reason=reason)],
        )
    return int(text)


async def healthz(request: web.Request) -> web.Response:
    """Liveness."""
    host = request.app[HOST_KEY]
    return json_response(Health(status="ok" if host.accepting else "stopping", version=__version__))


#: Longest the readiness probe waits for the store's write lock.
READY_STORE_SECONDS = 2.0


async def readyz(request: web.Request) -> web.Response:
    """Readiness: 200 when the host should get traffic; 503 while starting or stopping, or when
    the store cannot be written."""
    host = request.app[HOST_KEY]
    if host.stopping:
        return json_response(
            Readiness(status="stopping", detail="the host is stopping"),
            status=503,
            headers={"Retry-After": "5"},
        )
    if not host.accepting:
        return json_response(
            Readiness(status="starting", detail="the host is starting"),
            status=503,
            headers={"Retry-After": "2"},
        )
    try:
        await asyncio.wait_for(host.store.check_writable(), READY_STORE_SECONDS)
    except Exception as exc:
        return json_response(
            Readiness(
                status="store_unavailable",
                detail=f"the store cannot be written ({type(exc).__name__}): check the disk "
                "and the database file's lock",
            ),
            status=503,
            headers={"Retry-After": "5"},
        )
    missing = []
    for jobs in host.connections.values():
        for location in jobs.connection.settings.locations:
            if await host.live_menus.get(location) is None:
                missing.append(location)
    return json_response(Readiness(status="ready", locations_without_menu=missing))


async def metrics(request: web.Request) -> web.Response:
    """The host's metrics in the Prometheus text format."""
    host = request.app[HOST_KEY]
    return web.Response(
        body=await host.metrics.render(host), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


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
    return json_response(ConnectionList(connections=await connection_views(request.app[HOST_KEY])))


async def connection_views(host: Host) -> list[ConnectionView]:
    """Every connection as ``GET /v1/connections`` (and the dashboard) show it."""
    views = []
    elsewhere = await host.links.linked_elsewhere() if host.links is not None else {}
    for jobs in host.connections.values():
        conn = jobs.connection
        in_flight = await host.store.orders_in_flight(conn.name)
        view = ConnectionView(
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
            placement=conn.settings.placement,
        )
        if conn.settings.placement != "central" and host.links is not None:
            view = await _agent_served(host, view, elsewhere)
        views.append(view)
    return views


async def _agent_served(
    host: Host, view: ConnectionView, elsewhere: dict[str, str]
) -> ConnectionView:
    """A local or hybrid connection's view, with its health as its venue agents report it."""
    assert host.links is not None
    names: list[str] = []
    health: list[str] = []
    errors: list[str] = []
    circuit = "closed"
    for location in view.locations:
        agent = await host.links.agent_for(location)
        if agent is None or agent.name in names:
            continue
        names.append(agent.name)
        if host.links.link_of(agent.name) is None:
            if agent.name in elsewhere:  # what it reports is known to that worker only
                health.append("unknown")
                errors.append(f"agent {agent.name} is linked to worker {elsewhere[agent.name]}")
            else:
                health.append("agent_offline")
                errors.append(f"agent {agent.name} is not connected")
            continue
        for reported in host.links.peer_state(agent.name).get("connections", []):
            if isinstance(reported, dict) and location in reported.get("locations", []):
                health.append(str(reported.get("health", "unknown")))
                if reported.get("circuit") == "open":
                    circuit = "open"
                if reported.get("last_error"):
                    errors.append(f"{agent.name}: {reported['last_error']}")
    worst = next(
        (state for state in ("agent_offline", "auth_failed", "failing") if state in health),
        "ok" if health and set(health) == {"ok"} else "unknown",
    )
    if not names:
        worst, errors = "no_agent", ["no venue agent is approved for its locations"]
    return view.model_copy(
        update={
            "agents": names,
            "health": worst,
            "last_error": "; ".join(errors) or None,
            "circuit": circuit,
        }
    )


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
    since = whole_number(request, "since", 1, MAX_VERSION)
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


async def _menu_diff(host: Host, live: LiveMenu, version: int) -> web.Response:
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
    order = await read_body(request, Order, "Invalid order")
    jobs = host.connection_for_location(order.location)
    problems = check_order(order, jobs, host.settings.orders, host.settings.channel_ids)
    if problems:
        raise ProblemError(
            422,
            "Invalid order",
            "; ".join(f"{p.field}: {p.reason}" for p in problems[:3]),
            [FieldError(field=p.field, reason=p.reason) for p in problems],
        )
    assert jobs is not None
    live = await host.live_menus.get(order.location)
    if live is None:
        if (replay := await _replayed(host, order)) is not None:
            return replay
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
        index=live.index,
    )
    if findings:
        if (replay := await _replayed(host, order)) is not None:
            return replay
        raise ProblemError(
            422,
            "Order does not match the menu",
            "; ".join(f"{f.field}: {f.reason}" for f in findings[:3]),
            [FieldError(field=f.field, reason=f.reason, code=f.code.value) for f in findings],
        )
    result = await accept_order(host.store, order, jobs)
    return _accepted(order, result.outcome)


async def _replayed(host: Host, order: Order) -> web.Response | None:
    """The first answer again, for an order id accepted before, when the menu would refuse it
    now: it may have changed since, and a replay must not be refused for that. (Orders the
    menu takes need no such look-up: accepting them tells a replay from a new order.)"""
    known = await host.store.order_content_hash(order.id)
    if known is None:
        return None
    same = known == order_content_hash(order)
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
    headers = {"Location": f"/v1/orders/{quote(order.id, safe='')}"}
    if outcome == AcceptOutcome.REPLAYED:
        headers["Idempotent-Replayed"] = "true"
    return json_response(
        OrderAccepted(id=order.id, status=OrderStatus.RECEIVED), status=202, headers=headers
    )


async def get_order(request: web.Request) -> web.Response:
    """One order, its status and its status history."""
    host = request.app[HOST_KEY]
    return await _order_view(host, request.match_info["order_id"])


async def _order_view(host: Host, order_id: str, status: int = 200) -> web.Response:
    return json_response(await order_view(host, order_id), status=status)


async def order_view(host: Host, order_id: str) -> OrderView:
    """One order as ``GET /v1/orders/{order_id}`` (and the dashboard) show it.

    :raises ProblemError: 404 when there is no such order.
    """
    record = await host.store.get_order(order_id)
    if record is None:
        raise ProblemError(404, "Unknown order", f"no order with id {order_id!r}")
    history = await host.store.order_history(order_id)
    attempts = await host.store.attempts_of(order_id)
    return OrderView(
        order=record.order,
        status=record.status,
        status_reason=record.status_reason,
        pos_order_id=record.pos_order_id,
        connection=record.connection,
        attempts=record.attempts,
        last_error=record.last_error,
        created_at=record.created_at,
        updated_at=record.updated_at,
        history=[HistoryItem.model_validate(h) for h in history],
        delivery_attempts=[AttemptView.model_validate(a) for a in attempts],
        cancellation=None
        if record.cancellation is None
        else CancellationView.model_validate(record.cancellation),
    )


async def pos_webhook(request: web.Request) -> web.Response:
    """A POS's webhook for one connection: verified and read by the connection's plugin."""
    host = request.app[HOST_KEY]
    name = request.match_info["connection"]
    jobs = host.connections.get(name)
    if jobs is None:
        raise ProblemError(404, "Unknown connection", f"no connection named {name!r}")
    conn = jobs.connection
    body = await read_limited(request, host.settings.api.max_webhook_bytes)
    inbound = InboundWebhook(url=str(request.url), headers=request.headers, body=body)
    try:
        async with asyncio.timeout(conn.settings.webhook_timeout_seconds):
            result = await conn.plugin.parse_webhook(conn.ctx, inbound)
    except WebhookRejected as exc:
        conn.ctx.log.warning("webhook refused: {}", exc.message)
        status = exc.status if 400 <= exc.status < 500 else 400
        raise ProblemError(status, "Webhook refused", exc.message) from None
    except PosError as exc:
        raise ProblemError(
            503, "Webhook not processed", exc.message, headers={"Retry-After": "5"}
        ) from None
    except TimeoutError:
        conn.plugin.timeouts += 1
        conn.ctx.log.error(
            "plugin {} did not read a webhook within {} s: cut off",
            conn.plugin.name,
            conn.settings.webhook_timeout_seconds,
        )
        raise ProblemError(
            503,
            "Webhook not processed",
            "the connection's plugin did not finish reading this webhook in time; send it again",
            headers={"Retry-After": "5"},
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
    return json_response(
        WebhookReceived(received=len(result.events), availability=len(result.availability))
    )


async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI document of this API."""
    from posintegrator.api.openapi import openapi_document
    from posintegrator.api.routes import ROUTES

    return web.Response(
        body=orjson.dumps(openapi_document(ROUTES)), content_type="application/json"
    )


async def list_orders(request: web.Request) -> web.Response:
    """Orders in the given statuses (default: the ones a person must look at)."""
    host = request.app[HOST_KEY]
    wanted = request.query.getall("status", list(DEFAULT_LIST_STATUSES))
    try:
        statuses = [OrderStatus(s) for value in wanted for s in value.split(",") if s]
    except ValueError:
        known = ", ".join(s.value for s in OrderStatus)
        raise ProblemError(
            400,
            "Unknown status",
            f"status must be among {known}",
            [FieldError(field="status", reason=f"one of {known}")],
        ) from None
    limit = whole_number(request, "limit", 1, MAX_LIST_LIMIT) or DEFAULT_LIST_LIMIT
    records = await host.store.orders_by_status(statuses, limit)
    return json_response(
        OrderList(
            orders=[
                OrderSummary(
                    id=r.order.id,
                    location=r.order.location,
                    connection=r.connection,
                    status=r.status,
                    status_reason=r.status_reason,
                    pos_order_id=r.pos_order_id,
                    attempts=r.attempts,
                    last_error=r.last_error,
                    created_at=r.created_at,
                    updated_at=r.updated_at,
                )
                for r in records
            ]
        )
    )


_BEFORE_POS = (OrderStatus.RECEIVED, OrderStatus.SUBMITTING, OrderStatus.NEEDS_ATTENTION)


async def _action_request(request: web.Request, model: type[ActionT]) -> tuple[Host, str, ActionT]:
    """The host, the order id in the path, and the operator's action in the body."""
    action = await read_body(request, model, "Invalid action")
    return request.app[HOST_KEY], request.match_info["order_id"], action


async def _actionable(host: Host, order_id: str, allowed: tuple[OrderStatus, ...]) -> OrderRecord:
    """The order an operator acts on, if it is in a state that allows the action."""
    record = await host.store.get_order(order_id)
    if record is None:
        raise ProblemError(404, "Unknown order", f"no order with id {order_id!r}")
    if record.status not in allowed:
        raise ProblemError(
            409,
            "Not possible in this status",
            f"order {order_id!r} is {record.status}; this action needs "
            + " or ".join(s.value for s in allowed),
        )
    jobs = host.connections.get(record.connection)
    if jobs is not None and jobs.delivery.is_in_flight(order_id):
        raise ProblemError(
            409,
            SUBMISSION_UNDER_WAY,
            f"order {order_id!r} is being sent to the POS right now; try again in a moment",
            headers={"Retry-After": "2"},
        )
    return record


async def retry_order(request: web.Request) -> web.Response:
    """Send an order to the POS again now (a lookup comes first if it may be there).

    202 when the order is with a venue agent, which carries out the retry (see requeue)."""
    host, order_id, action = await _action_request(request, OperatorAction)
    forwarded = await requeue(host, order_id, action, known_missing=False)
    return await _order_view(host, order_id, status=202 if forwarded else 200)


async def order_missing(request: web.Request) -> web.Response:
    """An operator checked: the POS does not have the order. Send it now (202: see retry)."""
    host, order_id, action = await _action_request(request, OperatorAction)
    forwarded = await requeue(host, order_id, action, known_missing=True)
    return await _order_view(host, order_id, status=202 if forwarded else 200)


async def order_found(request: web.Request) -> web.Response:
    """An operator found the order in the POS: it is ACCEPTED with the POS's id (202: see
    retry)."""
    host, order_id, action = await _action_request(request, FoundInPos)
    forwarded = await mark_found(host, order_id, action)
    return await _order_view(host, order_id, status=202 if forwarded else 200)


async def cancel_order(request: web.Request) -> web.Response:
    """Cancel an order, whether or not the POS has it yet (see docs/orders.md).

    200 with the order CANCELLED when it could be cancelled at once (the POS certainly did not
    have it) or already was; 202 when the POS has (or may have) it and is being asked: the
    answer reaches the cloud as events, CANCELLED or ``order.cancel_refused``.
    """
    host = request.app[HOST_KEY]
    action = await read_body(request, CancelOrder, "Invalid cancellation")
    order_id = request.match_info["order_id"]
    asked = await cancel(host, order_id, action)
    return await _order_view(host, order_id, status=202 if asked else 200)


# The operator actions themselves, shared by the API and the dashboard (and carried out by a
# venue agent when a hub forwards them). Each raises ProblemError (404, 409) when the order does
# not allow it.


async def _forwarded(
    host: Host,
    order_id: str,
    verb: ActionName,
    action: OperatorAction,
    label: str,
) -> bool:
    """At a hub, queue ``action`` for the venue agent that holds the order, if one does."""
    if host.links is None:
        return False
    body = action_message(order_id, verb, action)
    agent = await host.store.forward_action(
        order_id, body, operator=action.operator, action=label, note=action.note
    )
    if agent is None:
        return False
    host.links.wake(agent)
    return True


async def requeue(
    host: Host, order_id: str, action: OperatorAction, *, known_missing: bool
) -> bool:
    """Send an order to the POS again now: a retry, or (``known_missing``) after an operator
    checked that the POS does not have it.

    :returns: whether it was forwarded to the venue agent holding the order, which carries it
        out (the outcome reaches the cloud as events).
    """
    record = await _actionable(host, order_id, _BEFORE_POS)
    label = "not in the POS" if known_missing else "retry"
    verb: ActionName = "missing" if known_missing else "retry"
    if await _forwarded(host, order_id, verb, action, label):
        return True
    await host.store.operator_requeue(
        order_id,
        operator=action.operator,
        action=label,
        note=action.note,
        clear_maybe=known_missing,
    )
    host.connections[record.connection].delivery.wake()
    return False


async def mark_found(host: Host, order_id: str, action: FoundInPos) -> bool:
    """An operator found the order in the POS: it becomes ACCEPTED with the POS's id.

    :returns: whether it was forwarded to the venue agent holding the order (see requeue).
    """
    record = await _actionable(host, order_id, _BEFORE_POS)
    if await _forwarded(host, order_id, "found", action, "found in the POS"):
        return True
    await host.store.record_action(
        order_id, operator=action.operator, action="found in the POS", note=action.note
    )
    event = StatusEvent(
        order_id=order_id,
        pos_order_id=action.pos_order_id,
        status=OrderStatus.ACCEPTED,
        source=f"operator:{action.operator}",
        reason=action.note or "found in the POS by an operator",
    )
    await host.intake.apply(record.connection, event)
    return False


async def cancel(host: Host, order_id: str, action: CancelOrder) -> bool:
    """Cancel an order: at once when the POS certainly does not have it, else by asking the POS.

    :returns: whether the POS is being asked (the outcome comes later, as events), directly
        or through the venue agent holding the order; False when the order is CANCELLED now (or
        already was).
    :raises ProblemError: 404, or 409 when the order can no longer be cancelled here.
    """
    record = await host.store.get_order(order_id)
    if record is None:
        raise ProblemError(404, "Unknown order", f"no order with id {order_id!r}")
    if record.status == OrderStatus.CANCELLED:
        return False
    if is_final(record.status):
        raise ProblemError(
            409,
            "Not possible in this status",
            f"order {order_id!r} is {record.status}: there is nothing left to cancel",
        )
    jobs = host.connections.get(record.connection)
    if jobs is not None:
        check_cancellable(record, jobs.connection.plugin.capabilities())
    event = StatusEvent(
        order_id=order_id,
        status=OrderStatus.CANCELLED,
        source=action.source,
        reason=action.reason,
    )
    forward = action_message(order_id, "cancel", action)
    result = await host.store.request_cancel(order_id, event, forward=forward)
    if result.transition is not None:
        await host.intake.announce(result.transition, event)
    if result.outcome == CancelOutcome.FINAL:
        raise ProblemError(
            409,
            "Not possible in this status",
            f"order {order_id!r} became {result.record.status} meanwhile",
        )
    if result.outcome == CancelOutcome.FORWARDED:
        assert host.links is not None and result.agent is not None, "only a hub hands orders over"
        host.links.wake(result.agent)
        return True
    if result.outcome == CancelOutcome.CANCELLED:
        return False
    if jobs is not None:
        jobs.delivery.wake()
    return True


def check_cancellable(record: OrderRecord, caps: Capabilities) -> None:
    """Refuse at once a cancellation that the POS could not carry out.

    :raises ProblemError: 409, saying what to do instead.
    """
    in_pos = record.status not in _BEFORE_POS
    if in_pos and not caps.order_cancel:
        raise ProblemError(
            409,
            "The POS cannot cancel orders",
            f"the POS has order {record.order.id!r} ({record.status}) and cannot cancel orders "
            "through its API: cancel it at the POS",
        )
    if not in_pos and record.maybe_in_pos and not caps.order_lookup:
        raise ProblemError(
            409,
            "The POS may have this order",
            "an earlier submission's outcome is unknown: check the POS, then mark the order "
            "found (and cancel it again) or missing (then cancel it here)",
        )
