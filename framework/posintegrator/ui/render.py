"""Server-side rendering of the dashboard: Jinja2 templates (autoescaped) and their filters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web

from posintegrator.model import utcnow
from posintegrator.ui.dashboard import OPERATOR_KEY, SESSION_KEY, dashboard_of

#: Currencies whose minor unit is not a hundredth (ISO 4217); every other has two decimals.
_ZERO_DECIMALS: tuple[str, ...] = ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG")
_ZERO_DECIMALS += ("RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF")
_DECIMALS = {
    **dict.fromkeys(_ZERO_DECIMALS, 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}


def money(amount: int | None, currency: str) -> str:
    """``1250, "EUR"`` -> ``12.50 EUR``: integer minor units shown in major units."""
    if amount is None:
        return "-"
    decimals = _DECIMALS.get(currency, 2)
    if decimals == 0:
        return f"{amount} {currency}"
    sign = "-" if amount < 0 else ""
    major, minor = divmod(abs(amount), 10**decimals)
    return f"{sign}{major}.{minor:0{decimals}d} {currency}"


def when(moment: datetime | None) -> str:
    """An instant as UTC, to the second."""
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """How long ago (or from now) ``moment`` is, roughly: ``3 min ago``, ``in 20 s``."""
    if moment is None:
        return "never"
    seconds = ((now or utcnow()) - moment).total_seconds()
    future, seconds = seconds < 0, abs(seconds)
    if seconds < 60:
        text = f"{int(seconds)} s"
    elif seconds < 3600:
        text = f"{int(seconds // 60)} min"
    elif seconds < 86400:
        text = f"{int(seconds // 3600)} h"
    else:
        text = f"{int(seconds // 86400)} d"
    return f"in {text}" if future else f"{text} ago"


def path_part(value: str) -> str:
    """``value`` quoted to stand as one segment of a URL path (an id may hold ``/`` or ``?``)."""
    return quote(value, safe="")


#: Keys whose whole-number values are money in minor units, wherever they appear in an order.
_MONEY_KEYS = ("amount", "total", "price", "tip", "fee", "value")


def is_money(key: str) -> bool:
    """Whether a field called ``key`` holds an amount of money (``amount``, ``unit_price``,
    ``delivery_fee``...)."""
    return any(key == word or key.endswith(f"_{word}") for word in _MONEY_KEYS)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("posintegrator.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(money=money, when=when, ago=ago, pathpart=path_part)
    env.tests.update(is_money=is_money)
    return env


ENVIRONMENT = _environment()


def render(
    request: web.Request,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
) -> web.Response:
    """The page ``template`` with ``context`` and what every page shows (who is signed in, the
    CSRF token for its forms, how often it refreshes)."""
    session = request.get(SESSION_KEY)
    page = ENVIRONMENT.get_template(template).render(
        request=request,
        operator=request.get(OPERATOR_KEY),
        csrf=session.csrf if session is not None else "",
        refresh_seconds=dashboard_of(request).host.settings.ui.refresh_seconds,
        **context,
    )
    return web.Response(text=page, status=status, content_type="text/html", charset="utf-8")
