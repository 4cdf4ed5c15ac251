"""The dashboard as an aiohttp sub-application mounted at ``/ui`` on the host's server.

Its routes are HTML pages for people, outside the Integrator API's route table and OpenAPI
document. Every request goes through :func:`_dashboard_middleware`: it finds who is signed in,
sends everyone else to the sign-in page, refuses forged forms, renders errors as pages and sets
the security headers (a strict Content-Security-Policy: nothing but this host's own files).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from aiohttp import web
from loguru import logger

from posintegrator.api.problems import Handler, ProblemError
from posintegrator.ui import actions, pages, signin
from posintegrator.ui.auth import CSRF_FIELD, Authenticator, Session, csrf_matches, same_origin
from posintegrator.ui.dashboard import (
    DASHBOARD_KEY,
    NEW_SESSION_KEY,
    OPERATOR_KEY,
    PREFIX,
    SESSION_KEY,
    Dashboard,
    dashboard_of,
)
from posintegrator.ui.render import render

if TYPE_CHECKING:
    from posintegrator.runtime.host import Host

STATIC = Path(__file__).parent / "static"

#: Paths anyone may fetch without signing in.
_OPEN_PATHS = (f"{PREFIX}/login", f"{PREFIX}/static/")

_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def mount_dashboard(app: web.Application, host: Host) -> None:
    """Serve the dashboard of ``host`` under ``/ui`` of ``app``."""
    settings = host.settings
    dashboard = Dashboard(
        host=host,
        auth=Authenticator(settings.ui, failures_per_minute=settings.api.auth_failures_per_minute),
    )
    ui = web.Application(middlewares=[_dashboard_middleware])
    ui[DASHBOARD_KEY] = dashboard
    ui.router.add_get("/", pages.overview)
    ui.router.add_get("/login", signin.sign_in_page)
    ui.router.add_post("/login", signin.sign_in)
    ui.router.add_post("/logout", signin.sign_out)
    ui.router.add_get("/orders", pages.orders)
    ui.router.add_get("/orders/{order_id}", pages.order)
    ui.router.add_post("/orders/{order_id}/{verb}", actions.act_on_order)
    ui.router.add_get("/attention", pages.attention)
    ui.router.add_post("/streams/{stream}/{verb}", actions.act_on_stream)
    ui.router.add_get("/menus", pages.menus)
    ui.router.add_get("/menus/{location}", pages.menu)
    ui.router.add_get("/menus/{location}/diff", pages.menu_diff)
    ui.router.add_static("/static", STATIC)
    # /ui itself (no slash) leads to the overview; registered before the sub-application so
    # it wins the match.
    app.router.add_get(PREFIX, _to_overview)
    app.add_subapp(PREFIX, ui)


async def _to_overview(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(f"{PREFIX}/")


def _secure(request: web.Request, dashboard: Dashboard) -> bool:
    """Whether the session cookie must only travel over HTTPS."""
    public = dashboard.host.settings.api.public_url
    return request.secure or (public is not None and public.scheme == "https")


@web.middleware
async def _dashboard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    dashboard = dashboard_of(request)
    auth = dashboard.auth
    session = auth.read(request)
    fresh = session is None
    if session is None:
        session = Session.new()
    request[SESSION_KEY] = session
    request[OPERATOR_KEY] = operator = auth.operator(request, session)
    response: web.StreamResponse
    try:
        if request.method == "POST":
            form = await request.post()
            token = form.get(CSRF_FIELD)
            if (
                fresh
                or not same_origin(request)
                or not csrf_matches(session, token if isinstance(token, str) else None)
            ):
                logger.warning("dashboard: refused a form without a valid CSRF token")
                response = render(
                    request,
                    "error.html",
                    {
                        "title": "Form refused",
                        "detail": "This form did not come from this dashboard's current "
                        "session (it may have expired). Reload the page and try again.",
                    },
                    status=403,
                )
                return _finish(request, dashboard, response, session, fresh)
        if operator is None and not request.path.startswith(_OPEN_PATHS):
            target = request.path_qs if request.method == "GET" else f"{PREFIX}/"
            raise web.HTTPSeeOther(f"{PREFIX}/login?next={quote(target, safe='/')}")
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            _finish(request, dashboard, exc, session, fresh)
            raise
        response = render(
            request, "error.html", {"title": exc.reason, "detail": None}, status=exc.status
        )
    except ProblemError as exc:
        response = render(
            request,
            "error.html",
            {"title": exc.problem.title, "detail": exc.problem.detail},
            status=exc.problem.status,
        )
    except Exception:
        logger.exception("dashboard: unexpected error in {} {}", request.method, request.path)
        response = render(
            request,
            "error.html",
            {"title": "Internal error", "detail": "The error is logged. Try again later."},
            status=500,
        )
    return _finish(request, dashboard, response, session, fresh)


def _finish(
    request: web.Request,
    dashboard: Dashboard,
    response: web.StreamResponse,
    session: Session,
    fresh: bool,
) -> web.StreamResponse:
    """Security headers, no caching of pages, and the session cookie when it is new."""
    for name, value in _HEADERS.items():
        response.headers.setdefault(name, value)
    if not request.path.startswith(f"{PREFIX}/static/"):
        response.headers["Cache-Control"] = "no-store"
    replaced = request.get(NEW_SESSION_KEY)
    if replaced is not None:
        dashboard.auth.write(response, replaced, secure=_secure(request, dashboard))
    elif fresh:
        dashboard.auth.write(response, session, secure=_secure(request, dashboard))
    return response


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")
