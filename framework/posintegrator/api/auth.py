"""Bearer-token authentication of the Integrator API, within request budgets per client.

A client over budget gets 429 with ``Retry-After``. Two budgets, both counted per client
address (``request.remote``; behind a reverse proxy every client shares the proxy's address,
see docs/security.md):

* wrong or missing API tokens, so nobody can try tokens at line rate (a request with the right
  token is never refused by this budget);
* optionally, all requests to authenticated routes (``api.requests_per_second``).
"""

from __future__ import annotations

import hmac
import math
import time

from aiohttp import web
from limits import RateLimitItem, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from posintegrator.api.problems import Handler, ProblemError
from posintegrator.settings import ApiSettings

#: Paths that need no token, and so count against no budget: liveness and readiness for load
#: balancers; POS
#: webhooks, which the POS signs with its own scheme and the plugin verifies; venue agents'
#: pairing requests and links, which prove themselves with the agent's key (docs/link.md); and
#: the operator dashboard, which signs its own users in (ui/auth.py): the API token never opens
#: it.
PUBLIC_PREFIXES = ("/healthz", "/readyz", "/pos/", "/v1/link", "/ui")


class _Budget:
    """One budget of requests per client address.

    Counted over a moving window (the time of each request in the last window is kept), so
    the budget holds exactly over any span: a window counter would let a burst that straddles
    the boundary of two windows through with one request more.
    """

    def __init__(self, item: RateLimitItem, storage: MemoryStorage) -> None:
        self._item = item
        self._limiter = MovingWindowRateLimiter(storage)

    def spend(self, client: str) -> bool:
        """Count one request of ``client``; False when its budget is spent."""
        return self._limiter.hit(self._item, client)

    def exhausted(self, client: str) -> bool:
        """Whether ``client`` has no request left in this window (nothing is counted)."""
        return not self._limiter.test(self._item, client)

    def retry_after(self, client: str) -> int:
        """Whole seconds until ``client`` has a request left."""
        reset = self._limiter.get_window_stats(self._item, client).reset_time
        return max(1, math.ceil(reset - time.time()))


def _too_many(budget: _Budget, client: str, detail: str) -> ProblemError:
    return ProblemError(
        429,
        "Too many requests",
        detail,
        headers={"Retry-After": str(budget.retry_after(client))},
    )


def guard_middleware(settings: ApiSettings) -> web.middleware:  # type: ignore[valid-type]
    """A middleware that demands ``Authorization: Bearer <token>`` on every route but the
    public ones, within the client's budgets.

    Without a configured token every protected route answers 401, so a host is never open by
    accident.
    """
    token = settings.token
    expected = token.get_secret_value().encode() if token is not None else None
    storage = MemoryStorage()
    failures = _Budget(RateLimitItemPerMinute(settings.auth_failures_per_minute), storage)
    requests = (
        _Budget(RateLimitItemPerSecond(settings.requests_per_second), storage)
        if settings.requests_per_second is not None
        else None
    )

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(PUBLIC_PREFIXES):
            return await handler(request)
        client = request.remote or "unknown"
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        authorised = (
            expected is not None
            and scheme.lower() == "bearer"
            and hmac.compare_digest(given.strip().encode(), expected)
        )
        if not authorised:
            if failures.exhausted(client) or not failures.spend(client):
                raise _too_many(
                    failures, client, "too many requests with a wrong or missing API token"
                )
            raise ProblemError(
                401,
                "Unauthorized",
                "send the API token as 'Authorization: Bearer <token>'"
                + ("" if expected else " (this host has no api.token configured)"),
                headers={"WWW-Authenticate": 'Bearer realm="posintegrator"'},
            )
        if requests is not None and not requests.spend(client):
            raise _too_many(
                requests, client, f"more than {settings.requests_per_second} requests per second"
            )
        return await handler(request)

    return middleware
