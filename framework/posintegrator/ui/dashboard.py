"""What the dashboard's handlers share: the host, the sign-in, and where forms may lead."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from posintegrator.ui.auth import Authenticator, Operator, Session

if TYPE_CHECKING:
    from posintegrator.runtime.host import Host

PREFIX = "/ui"


@dataclass(frozen=True)
class Dashboard:
    """What the dashboard's handlers share: the host and the sign-in."""

    host: Host
    auth: Authenticator


DASHBOARD_KEY: web.AppKey[Dashboard] = web.AppKey("dashboard")
#: The request's session (a new one when it came without a valid cookie).
SESSION_KEY: web.RequestKey[Session] = web.RequestKey("ui.session")
#: Who makes the request, if anyone is signed in.
OPERATOR_KEY: web.RequestKey[Operator | None] = web.RequestKey("ui.operator")
#: A session that replaces the request's one (signing in or out).
NEW_SESSION_KEY: web.RequestKey[Session] = web.RequestKey("ui.new_session")


def dashboard_of(request: web.Request) -> Dashboard:
    """The dashboard serving ``request``."""
    return request.config_dict[DASHBOARD_KEY]


def safe_next(target: str | None, default: str = f"{PREFIX}/") -> str:
    """Where to go after a form: a path of this dashboard only (never another site)."""
    if (
        target
        and target.startswith(f"{PREFIX}/")
        and "//" not in target
        and "\\" not in target
        and not any(ord(ch) < 32 for ch in target)
    ):
        return target
    return default
