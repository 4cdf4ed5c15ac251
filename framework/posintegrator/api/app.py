"""The aiohttp application of the Integrator API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from posintegrator.api.auth import guard_middleware
from posintegrator.api.compression import gzip_middleware
from posintegrator.api.handlers import HOST_KEY
from posintegrator.api.problems import problem_middleware
from posintegrator.api.routes import add_routes
from posintegrator.ui.app import mount_dashboard

if TYPE_CHECKING:
    from posintegrator.runtime.host import Host


def build_app(host: Host) -> web.Application:
    """The API of ``host``: compression outermost, then problem documents, then auth and budgets,
    then the routes; a hub (or central host) also serves the operator dashboard at ``/ui``.

    Handlers read bodies themselves within the limits of ``api`` settings (see api/body.py).
    """
    app = web.Application(
        middlewares=[gzip_middleware, problem_middleware, guard_middleware(host.settings.api)]
    )
    app[HOST_KEY] = host
    add_routes(app, agent=host.settings.agent is not None)
    if host.settings.agent is None:
        mount_dashboard(app, host)
    return app
