"""The operator actions of the dashboard's forms: the same functions as the Integrator API's
(``api.handlers``), recorded with the signed-in operator's name and the note they wrote."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web
from loguru import logger
from pydantic import ValidationError

from posintegrator.api import handlers, streams
from posintegrator.api.problems import ProblemError
from posintegrator.api.schemas import (
    CancelledBy,
    CancelOrder,
    FoundInPos,
    OperatorAction,
    SkipEvent,
)
from posintegrator.ui.auth import Operator
from posintegrator.ui.dashboard import OPERATOR_KEY, dashboard_of, safe_next
from posintegrator.ui.pages import attention_page, order_page

VERBS = ("retry", "found", "missing", "cancel")
STREAM_VERBS = ("retry", "skip")


async def act_on_order(request: web.Request) -> web.StreamResponse:
    """Carry out one action on an order, then go back where the form was (with a note of what
    was done), or show the order page with the reason it was refused."""
    order_id = request.match_info["order_id"]
    verb = request.match_info["verb"]
    if verb not in VERBS:
        raise web.HTTPNotFound()
    operator = _acting(request)
    form = await request.post()
    fields = {k: str(v).strip() for k, v in form.items() if k in ("note", "pos_order_id")}
    note = fields.get("note", "")
    if not note:
        return await order_page(
            request,
            order_id,
            error="Write a note: what you checked, or why (it is kept in the order's history).",
            status=422,
            form=fields,
        )
    host = dashboard_of(request).host
    try:
        if verb == "found":
            found = FoundInPos(
                operator=operator.name, note=note, pos_order_id=fields.get("pos_order_id", "")
            )
            await handlers.mark_found(host, order_id, found)
        elif verb == "cancel":
            cancellation = CancelOrder(
                requested_by=CancelledBy.OPERATOR, operator=operator.name, reason=note
            )
            await handlers.cancel(host, order_id, cancellation)
        else:
            action = OperatorAction(operator=operator.name, note=note)
            await handlers.requeue(host, order_id, action, known_missing=verb == "missing")
    except ValidationError as exc:
        reasons = _reasons(exc)
        return await order_page(request, order_id, error=reasons, status=422, form=fields)
    except ProblemError as exc:
        if exc.problem.status == 404:
            raise
        detail = exc.problem.detail or exc.problem.title
        return await order_page(
            request, order_id, error=detail, status=exc.problem.status, form=fields
        )
    logger.bind(order_id=order_id).info(
        "dashboard: {} did {} on order {}", operator.name, verb, order_id
    )
    target = safe_next(str(form.get("next", "")), f"/ui/orders/{quote(order_id, safe='')}")
    separator = "&" if "?" in target else "?"
    raise web.HTTPSeeOther(f"{target}{separator}done={verb}")


async def act_on_stream(request: web.Request) -> web.StreamResponse:
    """Retry or skip the head event of a stream to the cloud, then go back to the page of what
    needs a person (with a note of what was done), or show it with the reason it was refused."""
    stream = request.match_info["stream"]
    verb = request.match_info["verb"]
    if verb not in STREAM_VERBS:
        raise web.HTTPNotFound()
    operator = _acting(request)
    form = await request.post()
    note = str(form.get("note", "")).strip()
    if not note:
        return await attention_page(
            request,
            error=f"{stream}: write a note: why (it is kept with the stream's actions).",
            status=422,
        )
    host = dashboard_of(request).host
    try:
        if verb == "skip":
            event_id = str(form.get("event_id", ""))
            skipping = SkipEvent(operator=operator.name, note=note, event_id=event_id)
            await streams.skip(host, stream, skipping)
        else:
            await streams.retry(host, stream, OperatorAction(operator=operator.name, note=note))
    except ValidationError as exc:
        reasons = _reasons(exc)
        return await attention_page(request, error=f"{stream}: {reasons}", status=422)
    except ProblemError as exc:
        detail = exc.problem.detail or exc.problem.title
        return await attention_page(request, error=detail, status=exc.problem.status)
    logger.info("dashboard: {} did {} on stream {}", operator.name, verb, stream)
    raise web.HTTPSeeOther(f"/ui/attention?done=stream-{verb}")


def _acting(request: web.Request) -> Operator:
    """The signed-in operator, if they may act (403 otherwise)."""
    operator = request[OPERATOR_KEY]
    if operator is None or not operator.can_act:
        who = "nobody" if operator is None else f"{operator.name} ({operator.role})"
        raise ProblemError(403, "Read-only", f"{who} may look but not act")
    return operator


def _reasons(exc: ValidationError) -> str:
    """What a form got wrong, field by field, in one line."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)
    )
