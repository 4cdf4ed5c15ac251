"""The route table: each route's handler, parameters and models, used both to serve and to
document (api/openapi.py builds the OpenAPI document from it; a test holds the two together)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from posintegrator.api import agents, handlers, streams
from posintegrator.api.problems import Handler, Problem
from posintegrator.api.schemas import (
    AgentList,
    AgentView,
    CancelOrder,
    ConnectionList,
    FoundInPos,
    Health,
    MenuDiffView,
    OperatorAction,
    OrderAccepted,
    OrderList,
    OrderView,
    PluginList,
    Readiness,
    SkipEvent,
    StreamActionResult,
    StreamList,
    WebhookReceived,
)
from posintegrator.link.pairing import (
    Approval,
    PairingPoll,
    PairingRequest,
    PairingStarted,
    PairingStatus,
)
from posintegrator.menus.sync import MenuReport
from posintegrator.model import Menu, Order, OrderStatus

Body = type[BaseModel] | tuple[type[BaseModel], ...] | None


@dataclass(frozen=True)
class Param:
    """A query or header parameter, with the JSON Schema of the values the handler takes."""

    name: str
    description: str
    schema: dict[str, Any]
    location: str = "query"


@dataclass(frozen=True)
class Link:
    """An operation that a successful answer leads to (an OpenAPI link).

    :param operation: the target's operationId (its handler's name).
    :param parameters: the target's parameters, as runtime expressions on this answer.
    """

    operation: str
    parameters: dict[str, str]


@dataclass(frozen=True)
class Route:
    """One API route.

    :param request: the model of its JSON body; None for no body.
    :param raw_body: the body is the caller's own format (a POS webhook), any media type.
    :param responses: status code -> body model (None for no body; a tuple when the body is
        one of several models). Problems every route of its kind can answer (401 and 429 with
        auth; 400, 413, 415 and 422 with a JSON body) are added by the document builder.
    :param headers: status code -> names of response headers it carries.
    :param links: status code -> operations its answer leads to.
    :param auth: whether the bearer token is required.
    """

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    request: type[BaseModel] | None = None
    raw_body: bool = False
    responses: dict[int, Body] = field(default_factory=dict)
    params: tuple[Param, ...] = ()
    headers: dict[int, tuple[str, ...]] = field(default_factory=dict)
    links: dict[int, tuple[Link, ...]] = field(default_factory=dict)
    auth: bool = True


def _order_links(expression: str) -> tuple[Link, ...]:
    """The operations on one order, from an answer carrying its id at ``expression``."""
    return tuple(
        Link(operation, {"order_id": expression})
        for operation in (
            "get_order",
            "retry_order",
            "order_found",
            "order_missing",
            "cancel_order",
        )
    )


_MENU_HEADERS = ("ETag", "X-Menu-Version", "Last-Modified")

ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/healthz",
        handlers.healthz,
        "Liveness",
        "system",
        responses={200: Health},
        auth=False,
    ),
    Route(
        "GET",
        "/readyz",
        handlers.readyz,
        "Readiness: whether the host should get traffic",
        "system",
        responses={200: Readiness, 503: Readiness},
        headers={503: ("Retry-After",)},
        auth=False,
    ),
    Route(
        "GET",
        "/metrics",
        handlers.metrics,
        "Metrics in the Prometheus text format",
        "system",
        responses={200: None},
    ),
    Route(
        "GET",
        "/openapi.json",
        handlers.openapi,
        "This document",
        "system",
        responses={200: None},
    ),
    Route(
        "GET",
        "/v1/plugins",
        handlers.list_plugins,
        "Loaded plugins",
        "system",
        responses={200: PluginList},
    ),
    Route(
        "GET",
        "/v1/connections",
        handlers.list_connections,
        "Connections and their health",
        "system",
        responses={200: ConnectionList},
    ),
    Route(
        "GET",
        "/v1/locations/{location}/menu",
        handlers.get_menu,
        "The last published menu of a location (ETag = content hash), or a diff",
        "menu",
        responses={200: (Menu, MenuDiffView), 304: None, 400: Problem, 404: Problem},
        params=(
            Param(
                "since",
                "A version number: answer with the diff from it to the latest version.",
                {"type": "integer", "minimum": 1, "maximum": handlers.MAX_VERSION},
            ),
            Param(
                "If-None-Match",
                "The ETag of the menu the client has: 304 when it is still the latest.",
                {"type": "string"},
                location="header",
            ),
        ),
        headers={200: _MENU_HEADERS, 304: _MENU_HEADERS, 404: ("Retry-After",)},
    ),
    Route(
        "GET",
        "/v1/locations/{location}/menu/report",
        handlers.get_menu_report,
        "The latest validation report of a location's menu",
        "menu",
        responses={200: MenuReport, 404: Problem},
    ),
    Route(
        "POST",
        "/v1/orders",
        handlers.post_order,
        "Place an order (idempotent on its id)",
        "orders",
        request=Order,
        responses={202: OrderAccepted, 409: Problem, 503: Problem},
        headers={202: ("Location", "Idempotent-Replayed"), 503: ("Retry-After",)},
        links={202: _order_links("$response.body#/id")},
    ),
    Route(
        "GET",
        "/v1/orders",
        handlers.list_orders,
        "Orders by status (default: NEEDS_ATTENTION and FAILED)",
        "operations",
        responses={200: OrderList, 400: Problem},
        params=(
            Param(
                "status",
                "Statuses to list; repeat the parameter or separate them with commas.",
                {
                    "type": "array",
                    "items": {"type": "string", "enum": [s.value for s in OrderStatus]},
                },
            ),
            Param(
                "limit",
                "Most orders in the answer.",
                {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": handlers.MAX_LIST_LIMIT,
                    "default": handlers.DEFAULT_LIST_LIMIT,
                },
            ),
        ),
    ),
    *(
        Route(
            "POST",
            f"/v1/orders/{{order_id}}/{verb}",
            handler,
            summary,
            "operations",
            request=model,
            responses={200: OrderView, 202: OrderView, 404: Problem, 409: Problem},
            headers={409: ("Retry-After",)},
            links={
                200: _order_links("$response.body#/order/id"),
                202: _order_links("$response.body#/order/id"),
            },
        )
        for verb, handler, model, summary in (
            (
                "retry",
                handlers.retry_order,
                OperatorAction,
                "Send an order to the POS again now (looked up first if it may be there)",
            ),
            (
                "found",
                handlers.order_found,
                FoundInPos,
                "An operator found the order in the POS: ACCEPTED with the POS's id",
            ),
            (
                "missing",
                handlers.order_missing,
                OperatorAction,
                "An operator checked that the POS lacks the order: send it now",
            ),
        )
    ),
    Route(
        "POST",
        "/v1/orders/{order_id}/cancel",
        handlers.cancel_order,
        "Cancel an order: at once when the POS does not have it, else by asking the POS",
        "orders",
        request=CancelOrder,
        responses={200: OrderView, 202: OrderView, 404: Problem, 409: Problem},
        links={200: _order_links("$response.body#/order/id")},
    ),
    Route(
        "GET",
        "/v1/orders/{order_id}",
        handlers.get_order,
        "An order with its status history",
        "orders",
        responses={200: OrderView, 404: Problem},
        links={200: _order_links("$response.body#/order/id")},
    ),
    Route(
        "GET",
        "/v1/streams",
        streams.list_streams,
        "Streams of events to the cloud whose head event failed, the longest waiting first",
        "operations",
        responses={200: StreamList, 400: Problem},
        params=(
            Param(
                "limit",
                "Most streams in the answer.",
                {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": streams.MAX_STREAMS,
                    "default": streams.DEFAULT_STREAMS,
                },
            ),
        ),
    ),
    Route(
        "POST",
        "/v1/streams/{stream}/retry",
        streams.retry_stream,
        "Try a stream's head event now instead of at its next retry time",
        "operations",
        request=OperatorAction,
        responses={200: StreamActionResult, 404: Problem},
    ),
    Route(
        "POST",
        "/v1/streams/{stream}/skip",
        streams.skip_stream_head,
        "Skip a stream's head event: it is never delivered; the events behind it follow",
        "operations",
        request=SkipEvent,
        responses={200: StreamActionResult, 404: Problem, 409: Problem},
        headers={409: ("Retry-After",)},
    ),
    Route(
        "GET",
        "/v1/agents",
        agents.list_agents,
        "Venue agents: their locations and how their links are doing",
        "agents",
        responses={200: AgentList},
    ),
    Route(
        "POST",
        "/v1/agents/approve",
        agents.approve_agent,
        "Approve a venue agent's pairing code for some locations",
        "agents",
        request=Approval,
        responses={200: AgentView, 404: Problem, 409: Problem},
    ),
    Route(
        "POST",
        "/v1/agents/{name}/revoke",
        agents.revoke_agent,
        "Revoke a venue agent: its link ends at once and is refused from then on",
        "agents",
        request=OperatorAction,
        responses={200: AgentView, 404: Problem},
    ),
    Route(
        "POST",
        "/v1/link/pairings",
        agents.start_agent_pairing,
        "A venue agent asks to be paired (answers the code an operator approves)",
        "agents",
        request=PairingRequest,
        responses={201: PairingStarted, 429: Problem},
        headers={429: ("Retry-After",)},
        auth=False,
    ),
    Route(
        "POST",
        "/v1/link/pairings/poll",
        agents.poll_agent_pairing,
        "A venue agent asks whether its pairing code was approved",
        "agents",
        request=PairingPoll,
        responses={200: PairingStatus, 404: Problem},
        auth=False,
    ),
    Route(
        "GET",
        "/v1/link",
        agents.link,
        "A venue agent's link: a WebSocket, authenticated by the agent's key (docs/link.md)",
        "agents",
        responses={101: None, 400: Problem, 404: Problem},
        auth=False,
    ),
    Route(
        "POST",
        "/pos/{connection}/webhook",
        handlers.pos_webhook,
        "Webhook intake for a connection's POS (verified by its plugin, not the bearer token)",
        "pos",
        raw_body=True,
        responses={
            200: WebhookReceived,
            400: Problem,
            401: Problem,
            404: Problem,
            503: Problem,
        },
        headers={503: ("Retry-After",)},
        auth=False,
    ),
)

#: JSON Schemas of path parameters, by name: what the handlers accept (others answer 404).
PATH_PARAMS: dict[str, dict[str, Any]] = {
    "location": {"type": "string", "minLength": 1, "maxLength": 200},
    "order_id": {"type": "string", "minLength": 1, "maxLength": 200},
    "connection": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"},
    "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"},
    "stream": {"type": "string", "pattern": "^(order|menu):.+$", "maxLength": 220},
}

#: The routes a venue agent serves: its POS's webhooks and liveness (its cloud is the hub).
AGENT_PATHS = frozenset({"/healthz", "/readyz", "/pos/{connection}/webhook"})


def add_routes(app: web.Application, *, agent: bool = False) -> None:
    """Register the routes of :data:`ROUTES` on ``app``: all of them for a hub, those of
    :data:`AGENT_PATHS` for a venue agent."""
    for route in ROUTES:
        if not agent or route.path in AGENT_PATHS:
            app.router.add_route(route.method, route.path, route.handler)
