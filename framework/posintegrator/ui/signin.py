"""Signing in to the dashboard with a name and password, and signing out."""

from __future__ import annotations

from aiohttp import web
from loguru import logger

from posintegrator.ui.auth import Session, TooManyAttempts
from posintegrator.ui.dashboard import (
    NEW_SESSION_KEY,
    OPERATOR_KEY,
    PREFIX,
    dashboard_of,
    safe_next,
)
from posintegrator.ui.render import render


async def sign_in_page(request: web.Request) -> web.StreamResponse:
    """The sign-in form (or straight on, when already signed in)."""
    target = safe_next(request.query.get("next"))
    if request[OPERATOR_KEY] is not None:
        raise web.HTTPSeeOther(target)
    return _sign_in_form(request, target, error=None, name="")


def _sign_in_form(
    request: web.Request, target: str, *, error: str | None, name: str, status: int = 200
) -> web.Response:
    dashboard = dashboard_of(request)
    return render(
        request,
        "login.html",
        {
            "next": target,
            "error": error,
            "name": name,
            "configured": dashboard.auth.configured,
            "proxy": dashboard.host.settings.ui.proxy_user_header,
        },
        status=status,
    )


async def sign_in(request: web.Request) -> web.StreamResponse:
    """Check a name and password; on success a new session (new CSRF token) is issued."""
    form = await request.post()
    name = str(form.get("name", ""))[:100]
    password = str(form.get("password", ""))[:1000]
    target = safe_next(str(form.get("next", "")))
    auth = dashboard_of(request).auth
    try:
        operator = await auth.sign_in(name, password, request.remote or "unknown")
    except TooManyAttempts as exc:
        response = _sign_in_form(request, target, error=str(exc), name=name, status=429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if operator is None:
        return _sign_in_form(
            request, target, error="Wrong name or password.", name=name, status=401
        )
    logger.info("dashboard: {} signed in ({})", operator.name, operator.role)
    request[NEW_SESSION_KEY] = Session.new(operator.name)
    raise web.HTTPSeeOther(target)


async def sign_out(request: web.Request) -> web.StreamResponse:
    """End the session: the browser gets a new one without a user."""
    request[NEW_SESSION_KEY] = Session.new()
    raise web.HTTPSeeOther(f"{PREFIX}/login")
