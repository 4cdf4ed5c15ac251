"""The aiohttp application of the Integrator API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from posintegrator.api.auth import bearer_middleware
from posintegrator.api.handlers import HOST_KEY
from posintegrator.api.problems import problem_middleware
from posintegrator.api.routes import add_routes

if TYPE_CHECKING:
    from posintegrator.runtime.host import Host

#: Largest request body accepted (an order with hundreds of lines fits easily).
MAX_BODY_BYTES = 1024 * 1024


def build_app(host: Host) -> web.Application:
    """The API of ``host``: problem documents outermost, then bearer auth, then the routes."""
    app = web.Application(
        middlewares=[problem_middleware, bearer_middleware(host.settings.api.token)],
        client_max_size=MAX_BODY_BYTES,
    )
    app[HOST_KEY] = host
    add_routes(app)
    return app
