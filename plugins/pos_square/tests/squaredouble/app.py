"""The aiohttp app playing Square for one merchant, checked against Square's OpenAPI spec."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler
from spec import Problem, SpecViolation, SquareSpec, square_error_code

from posintegrator.testing.faults import FaultInjector, FaultPlan

from .catalog import DEFAULT_LOCATIONS, GeneratedCatalog, generate_catalog
from .errors import SquareError
from .oauth import TokenAuthority
from .state import MerchantState
from .webhooks import WebhookSender

DEFAULT_TOKEN = "EAAAl-double-access-token"
MERCHANT_ID = "ML7DOUBLE2X9Q"
_VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

Route = Callable[[dict[str, str], Any], Awaitable[tuple[int, dict[str, Any]]]]


@dataclass
class Violation:
    """A spec violation the double saw (``direction`` is ``request``, ``response`` or
    ``webhook``)."""

    direction: str
    method: str
    path: str
    error: SpecViolation

    def __str__(self) -> str:
        return f"{self.direction} {self.method} {self.path}: {self.error}"


class SquareDouble:
    """Square for one merchant: locations, catalog, orders, payments, webhooks.

    :param catalog: the catalog (default ``generate_catalog(variations, locations, seed)``).
    :param access_tokens: accepted bearer tokens.
    :param revoked_tokens: tokens answered with 401 ``ACCESS_TOKEN_REVOKED``.
    :param refresh_tokens: refresh tokens ObtainToken accepts (see :class:`TokenAuthority`).
    :param oauth_application: (client_id, client_secret) ObtainToken accepts.
    :param token_lifetime: how long the access tokens ObtainToken issues are good for.
    :param rotate_refresh_tokens: ObtainToken answers a new refresh token each time.
    :param notification_url: where to POST webhook events (none: events are only recorded).
    :param signature_key: the subscription's signature key (replaced by
        UpdateWebhookSubscriptionSignatureKey on subscription ``SUBSCRIPTION_ID``).
    :param strict_requests: refuse request fields the spec does not declare.
    :param validate_responses: check every response (and webhook event) against the spec;
        a violation is recorded and answered 500 (switch off for big benchmarks).
    :param enforce_modifier_limits: refuse line items breaking min/max modifier selections.
    :param sold_out_code: the error code for a sold-out variation (Square has no dedicated one).
    """

    def __init__(
        self,
        *,
        catalog: GeneratedCatalog | None = None,
        variations: int = 240,
        locations: Sequence[str] = DEFAULT_LOCATIONS,
        seed: int = 7,
        access_tokens: Sequence[str] = (DEFAULT_TOKEN,),
        revoked_tokens: Sequence[str] = (),
        refresh_tokens: Sequence[str] = (),
        oauth_application: tuple[str, str] | None = None,
        token_lifetime: timedelta = timedelta(days=30),
        rotate_refresh_tokens: bool = False,
        notification_url: str | None = None,
        signature_key: str | None = None,
        webhook_retry_delays: tuple[float, ...] = (),
        strict_requests: bool = True,
        validate_responses: bool = True,
        enforce_modifier_limits: bool = True,
        sold_out_code: str = "INVALID_VALUE",
        merchant_id: str = MERCHANT_ID,
        fault_plan: FaultPlan | None = None,
        fault_seed: int | None = 0,
        spec: SquareSpec | None = None,
    ) -> None:
        self.spec = spec or SquareSpec.load()
        self.strict_requests = strict_requests
        self.validate_responses = validate_responses
        self.tokens = TokenAuthority(
            access_tokens=access_tokens,
            revoked_tokens=revoked_tokens,
            refresh_tokens=refresh_tokens,
            application=oauth_application,
            merchant_id=merchant_id,
            token_lifetime=token_lifetime,
            rotate_refresh_tokens=rotate_refresh_tokens,
        )
        self.access_tokens = self.tokens.access_tokens
        self.spec_violations: list[Violation] = []
        self.requests: list[tuple[str, str, int]] = []
        self.square_versions: list[str] = []
        self.faults = FaultInjector(fault_plan, seed=fault_seed)
        self._rate_limited = 0
        self._retry_after = 1
        self.webhooks = WebhookSender(
            merchant_id,
            notification_url=notification_url,
            signature_key=signature_key,
            retry_delays=webhook_retry_delays,
            validate=self._validate_event,
        )
        generated = catalog or generate_catalog(variations, locations, seed)
        self.state = MerchantState(
            generated,
            merchant_id=merchant_id,
            emit=self.webhooks.emit,
            enforce_modifier_limits=enforce_modifier_limits,
            sold_out_code=sold_out_code,
        )
        self.routes: dict[str, Route] = {
            "ListLocations": self._list_locations,
            "RetrieveLocation": self._retrieve_location,
            "ListCatalog": self._list_catalog,
            "SearchCatalogObjects": self._search_catalog,
            "CreateOrder": self._create_order,
            "SearchOrders": self._search_orders,
            "BatchRetrieveOrders": self._batch_retrieve,
            "RetrieveOrder": self._retrieve_order,
            "UpdateOrder": self._update_order,
            "CreatePayment": self._create_payment,
            "UpdateWebhookSubscriptionSignatureKey": self._update_signature_key,
            "ObtainToken": self._obtain_token,
        }

    # -- switches for tests ---------------------------------------------------------------

    def rate_limit(self, requests: int, retry_after: int = 1) -> None:
        """Answer the next ``requests`` API requests with 429 ``RATE_LIMITED``."""
        self._rate_limited = requests
        self._retry_after = retry_after

    def revoke(self, token: str) -> None:
        """From now on, ``token`` gets 401 ``ACCESS_TOKEN_REVOKED``."""
        self.tokens.revoked_tokens.add(token)

    def expire(self, token: str) -> None:
        """From now on, ``token`` gets 401 ``ACCESS_TOKEN_EXPIRED``."""
        self.tokens.expire(token)

    @property
    def catalog(self) -> GeneratedCatalog:
        return self.state.catalog

    def set_sold_out(self, variation_id: str, location_id: str, sold_out: bool = True) -> None:
        """Mark a variation sold out (or back) at a location; emits catalog.version.updated."""
        self.state.set_sold_out(variation_id, location_id, sold_out)

    def set_price(self, variation_id: str, amount: int, location_id: str | None = None) -> None:
        """Change a variation's price (at one location); emits catalog.version.updated."""
        self.state.set_price(variation_id, amount, location_id)

    def add_objects(self, objects: Sequence[dict[str, Any]]) -> None:
        """Add catalog objects (e.g. a recorded ListCatalog page's); emits
        catalog.version.updated."""
        self.state.add_objects(objects)

    def delete_object(self, object_id: str) -> None:
        """Delete a catalog object; emits catalog.version.updated."""
        self.state.delete_object(object_id)

    def bump_catalog(self) -> None:
        """A new catalog version without visible change; emits catalog.version.updated."""
        self.state.bump_catalog()

    def advance_fulfillment(self, order_id: str, state: str) -> dict[str, Any]:
        """Move the order's pickup fulfillment (emits order.updated and
        order.fulfillment.updated)."""
        return self.state.set_fulfillment_state(order_id, state)

    # -- the app --------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[self._errors, self.faults.middleware, self._gate],
            client_max_size=8 * 1024 * 1024,
        )
        self.faults.add_control_routes(app)
        app.router.add_route("*", "/v2/{tail:.*}", self._dispatch)
        app.router.add_route("*", "/oauth2/{tail:.*}", self._dispatch)
        return app

    def _reply(
        self,
        request: web.Request,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        if self.validate_responses:
            try:
                self.spec.validate_response(request.method, request.path, status, body, strict=True)
            except SpecViolation as exc:
                self.spec_violations.append(
                    Violation("response", request.method, request.path, exc)
                )
                body = SquareError(
                    500, "INTERNAL_SERVER_ERROR", f"the Square double broke the spec: {exc}"
                ).body()
                status = 500
        self.requests.append((request.method, request.path, status))
        return web.Response(
            status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
        )

    def _validate_event(self, schema: str, event: dict[str, Any]) -> None:
        if not self.validate_responses:
            return
        problems = self.spec.schema_problems(schema, event, strict=True)
        if problems:
            exc = SpecViolation(schema, "webhook", problems)
            self.spec_violations.append(Violation("webhook", "POST", event["type"], exc))
            raise exc

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except SquareError as exc:
            return self._reply(request, exc.status, exc.body(), exc.headers)

    @web.middleware
    async def _gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_faults"):
            return await handler(request)
        if self._rate_limited > 0:
            self._rate_limited -= 1
            raise SquareError(
                429,
                "RATE_LIMITED",
                "Rate limit exceeded, retry later.",
                headers={"Retry-After": str(self._retry_after)},
            )
        if not request.path.startswith("/oauth2/"):  # ObtainToken takes the app's secret
            auth = request.headers.get("Authorization", "")
            self.tokens.check(auth[7:].strip() if auth.startswith("Bearer ") else "")
        version = request.headers.get("Square-Version")
        if version is not None:
            if not _VERSION_RE.match(version):
                raise SquareError(
                    400,
                    "INVALID_SQUARE_VERSION_FORMAT",
                    f"`{version}` is not a Square-Version (YYYY-MM-DD).",
                )
            self.square_versions.append(version)
        return await handler(request)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        try:
            op = self.spec.operation(request.method, request.path)
        except SpecViolation:
            raise SquareError(
                404, "NOT_FOUND", f"{request.method} {request.path} is not a Square API endpoint."
            ) from None
        route = self.routes.get(op.operation_id)
        if route is None:
            raise SquareError(
                404, "NOT_FOUND", f"The Square double does not implement {op.operation_id}."
            )
        body: Any = None
        raw = await request.read()
        if raw:
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                violation = SpecViolation(
                    op.operation_id, "request", [Problem("$", "the body is not JSON", "body")]
                )
                self.spec_violations.append(
                    Violation("request", request.method, request.path, violation)
                )
                raise SquareError(
                    400, "EXPECTED_JSON_BODY", "The request body is not valid JSON."
                ) from None
        query: dict[str, Any] = {}
        for key in request.query:
            values = request.query.getall(key)
            query[key] = values if len(values) > 1 else values[0]
        _, problems = self.spec.request_problems(
            request.method, request.path, body, query, strict=self.strict_requests
        )
        if problems:
            violation = SpecViolation(op.operation_id, "request", problems)
            self.spec_violations.append(
                Violation("request", request.method, request.path, violation)
            )
            first = problems[0]
            raise SquareError(
                400, square_error_code(first), str(violation), field=first.field or None
            )
        params = self.spec.path_params(op, request.path)
        status, payload = await route(params, body if body is not None else query)
        return self._reply(request, status, payload)

    # -- handlers -------------------------------------------------------------------------

    async def _list_locations(
        self, _params: dict[str, str], _body: Any
    ) -> tuple[int, dict[str, Any]]:
        return 200, {"locations": self.state.locations}

    async def _retrieve_location(
        self, params: dict[str, str], _body: Any
    ) -> tuple[int, dict[str, Any]]:
        location_id = params["location_id"]
        for location in self.state.locations:
            if location["id"] == location_id:
                return 200, {"location": location}
        raise SquareError(404, "NOT_FOUND", f"Location {location_id!r} not found.")

    async def _list_catalog(
        self, _params: dict[str, str], query: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        if query.get("catalog_version"):
            raise SquareError(
                400,
                "BAD_REQUEST",
                "The Square double serves the current catalog version only.",
                field="catalog_version",
            )
        return 200, self.state.list_catalog(query.get("types"), query.get("cursor"))

    async def _search_catalog(
        self, _params: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        return 200, self.state.search_catalog(body)

    async def _create_order(
        self, _params: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        return 200, {"order": self.state.create_order(body)}

    async def _search_orders(
        self, _params: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        return 200, self.state.search_orders(body)

    async def _batch_retrieve(
        self, _params: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        return 200, self.state.batch_retrieve(body)

    async def _retrieve_order(
        self, params: dict[str, str], _body: Any
    ) -> tuple[int, dict[str, Any]]:
        return 200, {"order": self.state.get_order(params["order_id"])}

    async def _update_order(
        self, params: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        order_id = params["order_id"]
        return 200, {"order": self.state.update_order(order_id, body)}

    async def _create_payment(
        self, _params: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        return 200, {"payment": self.state.create_payment(body)}

    async def _obtain_token(
        self, _params: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        return 200, self.tokens.obtain_token(body)

    async def _update_signature_key(
        self, params: dict[str, str], body: dict[str, Any] | None
    ) -> tuple[int, dict[str, Any]]:
        subscription_id = params["subscription_id"]
        if subscription_id != self.webhooks.subscription_id:
            raise SquareError(
                404, "NOT_FOUND", f"Webhook subscription {subscription_id!r} not found."
            )
        idempotency_key = (body or {}).get("idempotency_key")
        return 200, {"signature_key": self.webhooks.rotate_signature_key(idempotency_key)}


class RunningDouble:
    """A started :class:`SquareDouble` (``url``, ``token``, ``double``, ``close()``)."""

    def __init__(self, double: SquareDouble, runner: web.AppRunner, url: str) -> None:
        self.double = double
        self.url = url
        self.token = next(iter(double.access_tokens))
        self._runner = runner

    @property
    def state(self) -> MerchantState:
        return self.double.state

    @property
    def spec_violations(self) -> list[Violation]:
        return self.double.spec_violations

    @property
    def headers(self) -> dict[str, str]:
        """Headers a Square client sends."""
        return {"Authorization": f"Bearer {self.token}", "Square-Version": "2025-08-20"}

    @property
    def location_ids(self) -> list[str]:
        return [loc["id"] for loc in self.double.state.locations]

    def assert_clean(self) -> None:
        """Fail when the double saw any spec violation."""
        assert not self.spec_violations, "\n".join(map(str, self.spec_violations))

    async def close(self) -> None:
        await self.double.webhooks.close()
        await self._runner.cleanup()

    async def __aenter__(self) -> RunningDouble:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()


async def start_double(host: str = "127.0.0.1", port: int = 0, **options: Any) -> RunningDouble:
    """Start a :class:`SquareDouble` (``options`` go to its constructor) on a free port."""
    double = SquareDouble(**options)
    runner = web.AppRunner(double.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    assert server is not None
    sockets = getattr(server, "sockets", None) or ()
    bound = sockets[0].getsockname()[1] if sockets else port
    return RunningDouble(double, runner, f"http://{host}:{bound}")
