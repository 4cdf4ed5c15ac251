"""HTTP routes of the DemoPOS vendor API (aiohttp).

Routes only parse requests and render responses; business rules live in the order book,
validation and menu modules. Two middlewares make every answer JSON: one turns failures
into ``{"error", "message"}`` documents, one enforces the optional ``X-Api-Key``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from datetime import UTC, datetime

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from .core import SimulatorCore
from .errors import ApiError, json_response
from .validation import validate_order

log = logging.getLogger(__name__)

CORE_KEY = web.AppKey("demopos_core", SimulatorCore)
MAX_EVENTS_LIMIT = 1000
PUBLIC_PATHS = frozenset({"/health"})


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every failure (our own, aiohttp's 404/405, crashes) as a JSON error."""
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.to_response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        return json_response({"error": code, "message": exc.reason}, status=exc.status)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_response(
            {"error": "internal_error", "message": "unexpected server error"}, status=500
        )


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Require ``X-Api-Key`` on everything except ``/health`` when an api key is set."""
    expected = request.app[CORE_KEY].config.api_key
    if expected is not None and request.path not in PUBLIC_PATHS:
        given = request.headers.get("X-Api-Key", "")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise ApiError(401, "unauthorized", "missing or invalid X-Api-Key header")
    return await handler(request)


async def health(request: web.Request) -> web.Response:
    """Liveness probe (never requires auth)."""
    return json_response({"status": "ok"})


async def locations(request: web.Request) -> web.Response:
    """List the chain's stores."""
    return json_response({"locations": request.app[CORE_KEY].catalog.locations()})


async def menu(request: web.Request) -> web.Response:
    """Return the native menu of ``?location=``."""
    core = request.app[CORE_KEY]
    location_id = request.query.get("location")
    if not location_id:
        raise ApiError(400, "missing_parameter", "query parameter 'location' is required")
    if core.catalog.location(location_id) is None:
        raise ApiError(404, "unknown_location", f"location {location_id!r} does not exist")
    core.menu_requests[location_id] += 1
    return json_response(core.catalog.menu_for(location_id))


async def set_availability(request: web.Request) -> web.Response:
    """Staff action: 86 an item or option at a location, or bring it back.

    Body ``{"location", "item" | "option", "available", "until"?, "reason"?}``; answers with
    the ``availability`` event that is also sent as a webhook.
    """
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise ApiError(400, "invalid_json", "request body is not valid JSON") from None
    return json_response(request.app[CORE_KEY].availability.set_from_body(body))


async def create_order(request: web.Request) -> web.Response:
    """Validate, commit and acknowledge an order, idempotently per Idempotency-Key."""
    core = request.app[CORE_KEY]
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        raise ApiError(400, "missing_idempotency_key", "header Idempotency-Key is required")
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise ApiError(400, "invalid_json", "request body is not valid JSON") from None
    body_hash = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
    # From here to create() there is no await: check-and-commit is atomic on the loop.
    existing = core.book.lookup_idempotent(key, body_hash)
    if existing is not None:
        return json_response(existing, status=200)
    order_input = validate_order(body, core.catalog, datetime.now(UTC))
    order = core.book.create(key, body_hash, order_input)
    core.kitchen.start(order["id"])
    if core.config.submit_delay_seconds > 0:
        await asyncio.sleep(core.config.submit_delay_seconds)
    return json_response(core.book.get(order["id"]) or order, status=201)


async def list_orders(request: web.Request) -> web.Response:
    """List all orders, optionally filtered by ``?reference=`` / ``?location=``."""
    book = request.app[CORE_KEY].book
    orders = book.find(
        reference=request.query.get("reference"), location=request.query.get("location")
    )
    return json_response({"orders": orders})


async def get_order(request: web.Request) -> web.Response:
    """Return one order by POS id."""
    order_id = request.match_info["order_id"]
    order = request.app[CORE_KEY].book.get(order_id)
    if order is None:
        raise ApiError(404, "not_found", f"order {order_id!r} does not exist")
    return json_response(order)


async def cancel_order(request: web.Request) -> web.Response:
    """Cancel an order still in the kitchen's queue; the body may give a ``reason``."""
    core = request.app[CORE_KEY]
    order_id = request.match_info["order_id"]
    raw = await request.read()
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        raise ApiError(400, "invalid_json", "request body is not valid JSON") from None
    reason = body.get("reason") if isinstance(body, dict) else None
    if reason is not None and not isinstance(reason, str):
        raise ApiError(422, "invalid_reason", "reason must be a string")
    order = core.book.cancel(order_id, reason)
    core.kitchen.stop(order_id)
    return json_response(order)


async def events(request: web.Request) -> web.Response:
    """Poll the change feed: events with ``seq > after``, at most ``limit``."""
    after = _query_int(request, "after", default=0, minimum=0)
    limit = _query_int(request, "limit", default=100, minimum=1)
    batch, last_seq, has_more = request.app[CORE_KEY].book.events_after(
        after, min(limit, MAX_EVENTS_LIMIT)
    )
    return json_response({"events": batch, "last_seq": last_seq, "has_more": has_more})


def _query_int(request: web.Request, name: str, default: int, minimum: int) -> int:
    """Parse an integer query parameter or answer 400."""
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"{name} must be an integer") from None
    if value < minimum:
        raise ApiError(400, "invalid_parameter", f"{name} must be >= {minimum}")
    return value


def build_app(core: SimulatorCore) -> web.Application:
    """Create the aiohttp application serving the DemoPOS API for ``core``."""
    app = web.Application(middlewares=[error_middleware, auth_middleware, core.faults.middleware])
    app[CORE_KEY] = core
    core.faults.add_control_routes(app)
    app.router.add_get("/health", health)
    app.router.add_get("/locations", locations)
    app.router.add_get("/menu", menu)
    app.router.add_post("/availability", set_availability)
    app.router.add_post("/orders", create_order)
    app.router.add_get("/orders", list_orders)
    app.router.add_get("/orders/{order_id}", get_order)
    app.router.add_post("/orders/{order_id}/cancel", cancel_order)
    app.router.add_get("/events", events)
    return app
