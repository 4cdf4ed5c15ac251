"""The route table: each route's handler and models, used both to serve and to document."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web
from pydantic import BaseModel

from posintegrator.api import handlers
from posintegrator.api.problems import Handler, Problem
from posintegrator.api.schemas import (
    ConnectionList,
    FoundInPos,
    Health,
    MenuDiffView,
    OperatorAction,
    OrderAccepted,
    OrderList,
    OrderView,
    PluginList,
)
from posintegrator.menus.sync import MenuReport
from posintegrator.model import Menu, Order


@dataclass(frozen=True)
class Route:
    """One API route.

    :param responses: status code -> body model (None for no body; a tuple when the body is
        one of several models).
    :param query: optional query parameters -> what they do.
    :param auth: whether the bearer token is required.
    """

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    request: type[BaseModel] | None = None
    responses: dict[int, Body] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    auth: bool = True


Body = type[BaseModel] | tuple[type[BaseModel], ...] | None

_ERRORS: dict[int, Body] = {401: Problem}

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
        "/openapi.json",
        handlers.openapi,
        "This document",
        "system",
        responses={200: None, **_ERRORS},
    ),
    Route(
        "GET",
        "/v1/plugins",
        handlers.list_plugins,
        "Loaded plugins",
        "system",
        responses={200: PluginList, **_ERRORS},
    ),
    Route(
        "GET",
        "/v1/connections",
        handlers.list_connections,
        "Connections and their health",
        "system",
        responses={200: ConnectionList, **_ERRORS},
    ),
    Route(
        "GET",
        "/v1/locations/{location}/menu",
        handlers.get_menu,
        "The last published menu of a location (ETag = content hash), or a diff",
        "menu",
        responses={200: (Menu, MenuDiffView), 304: None, 400: Problem, 404: Problem, **_ERRORS},
        query={"since": "a version number: answer with the diff from it to the latest version"},
    ),
    Route(
        "GET",
        "/v1/locations/{location}/menu/report",
        handlers.get_menu_report,
        "The latest validation report of a location's menu",
        "menu",
        responses={200: MenuReport, 404: Problem, **_ERRORS},
    ),
    Route(
        "POST",
        "/v1/orders",
        handlers.post_order,
        "Place an order (idempotent on its id)",
        "orders",
        request=Order,
        responses={
            202: OrderAccepted,
            400: Problem,
            409: Problem,
            422: Problem,
            503: Problem,
            **_ERRORS,
        },
    ),
    Route(
        "GET",
        "/v1/orders",
        handlers.list_orders,
        "Orders by status (default: NEEDS_ATTENTION and FAILED)",
        "operations",
        responses={200: OrderList, 400: Problem, **_ERRORS},
        query={"status": "a status, repeatable or comma-separated", "limit": "1 to 1000"},
    ),
    *(
        Route(
            "POST",
            f"/v1/orders/{{order_id}}/{verb}",
            handler,
            summary,
            "operations",
            request=model,
            responses={
                200: OrderView,
                400: Problem,
                404: Problem,
                409: Problem,
                422: Problem,
                **_ERRORS,
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
            (
                "cancel",
                handlers.cancel_order,
                OperatorAction,
                "Cancel an order the POS does not have",
            ),
        )
    ),
    Route(
        "GET",
        "/v1/orders/{order_id}",
        handlers.get_order,
        "An order with its status history",
        "orders",
        responses={200: OrderView, 404: Problem, **_ERRORS},
    ),
    Route(
        "POST",
        "/pos/{connection}/webhook",
        handlers.pos_webhook,
        "Webhook intake for a connection's POS (verified by its plugin, not the bearer token)",
        "pos",
        responses={200: None, 400: Problem, 401: Problem, 404: Problem, 503: Problem},
        auth=False,
    ),
)


def add_routes(app: web.Application) -> None:
    """Register every route of :data:`ROUTES` on ``app``."""
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
