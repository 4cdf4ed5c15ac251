"""Bearer-token authentication of the Integrator API."""

from __future__ import annotations

import hmac

from aiohttp import web
from pydantic import SecretStr

from posintegrator.api.problems import Handler, ProblemError

#: Paths that need no token: liveness for load balancers, and POS webhooks, which the POS signs
#: with its own scheme and the plugin verifies.
PUBLIC_PREFIXES = ("/healthz", "/pos/")


def bearer_middleware(token: SecretStr | None) -> web.middleware:  # type: ignore[valid-type]
    """A middleware that demands ``Authorization: Bearer <token>``.

    Without a configured token every protected route answers 401, so a host is never open by
    accident.
    """
    expected = token.get_secret_value().encode() if token is not None else None

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(PUBLIC_PREFIXES):
            return await handler(request)
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if (
            expected is None
            or scheme.lower() != "bearer"
            or not hmac.compare_digest(given.strip().encode(), expected)
        ):
            raise ProblemError(
                401,
                "Unauthorized",
                "send the API token as 'Authorization: Bearer <token>'"
                + ("" if expected else " (this host has no api.token configured)"),
                headers={"WWW-Authenticate": 'Bearer realm="posintegrator"'},
            )
        return await handler(request)

    return middleware
