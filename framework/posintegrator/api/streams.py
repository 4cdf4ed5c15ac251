"""Handlers of the routes on streams of events to the cloud: which are stuck, and an operator's
retry or skip of a stream's head event. Each is listed, with its models, in api/routes.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from posintegrator.api.handlers import HOST_KEY, json_response, read_body, whole_number
from posintegrator.api.problems import ProblemError
from posintegrator.api.schemas import (
    OperatorAction,
    SkipEvent,
    StreamActionResult,
    StreamList,
    StreamView,
)
from posintegrator.model import utcnow
from posintegrator.store.streams import HeadMoved, StreamHead

if TYPE_CHECKING:
    from posintegrator.runtime.host import Host

#: Streams listed at most, and by default, in one answer of GET /v1/streams.
MAX_STREAMS = 1000
DEFAULT_STREAMS = 100


def _view(host: Host, head: StreamHead) -> StreamView:
    age = (utcnow() - head.created_at).total_seconds()
    return StreamView(
        stream=head.stream,
        connection=head.connection,
        event_id=head.event_id,
        sequence=head.sequence,
        created_at=head.created_at,
        age_seconds=round(age, 3),
        attempts=head.attempts,
        last_error=head.last_error,
        next_attempt_at=head.next_attempt_at,
        waiting=head.waiting,
        stuck=age > host.settings.cloud.stuck_after_seconds,
    )


async def list_streams(request: web.Request) -> web.Response:
    """Streams whose head event failed at least once, the longest waiting first."""
    host = request.app[HOST_KEY]
    limit = whole_number(request, "limit", 1, MAX_STREAMS) or DEFAULT_STREAMS
    heads = await host.store.stream_heads(failing=True, made_before=None, limit=limit)
    return json_response(
        StreamList(
            streams=[_view(host, head) for head in heads],
            stuck_after_seconds=host.settings.cloud.stuck_after_seconds,
        )
    )


def _unknown(stream: str) -> ProblemError:
    return ProblemError(404, "Nothing waits", f"no event of stream {stream!r} waits for delivery")


async def retry_stream(request: web.Request) -> web.Response:
    """Try a stream's head event now instead of at its next retry time."""
    host = request.app[HOST_KEY]
    action = await read_body(request, OperatorAction, "Invalid action")
    stream = request.match_info["stream"]
    head = await retry(host, stream, action)
    return json_response(
        StreamActionResult(
            stream=stream, action="retry", event_id=head.event_id, head=_view(host, head)
        )
    )


async def skip_stream_head(request: web.Request) -> web.Response:
    """Skip a stream's head event: it is never delivered, and the stream goes on behind it."""
    host = request.app[HOST_KEY]
    action = await read_body(request, SkipEvent, "Invalid action")
    stream = request.match_info["stream"]
    head = await skip(host, stream, action)
    return json_response(
        StreamActionResult(
            stream=stream,
            action="skip",
            event_id=action.event_id,
            head=None if head is None else _view(host, head),
        )
    )


# --- the actions, shared with the dashboard's forms ---------------------------------------------


async def retry(host: Host, stream: str, action: OperatorAction) -> StreamHead:
    """Make ``stream``'s head event due now; its head.

    :raises ProblemError: 404 when nothing of the stream waits.
    """
    try:
        head = await host.store.retry_stream(stream, operator=action.operator, note=action.note)
    except KeyError:
        raise _unknown(stream) from None
    host.notifier.wake()
    return head


async def skip(host: Host, stream: str, action: SkipEvent) -> StreamHead | None:
    """Skip ``stream``'s head event, which must be ``action.event_id``; the new head, if any.

    :raises ProblemError: 404 when nothing of the stream waits, 409 when that event is not the
        head (any more) or is being sent right now.
    """
    if host.notifier.is_in_flight(action.event_id):
        raise ProblemError(
            409,
            "Delivery under way",
            f"event {action.event_id} is being sent to the cloud right now; try again in a moment",
            headers={"Retry-After": "2"},
        )
    try:
        head = await host.store.skip_stream_head(
            stream, action.event_id, operator=action.operator, note=action.note
        )
    except KeyError:
        raise _unknown(stream) from None
    except HeadMoved as exc:
        raise ProblemError(409, "Not the head event", str(exc)) from None
    host.notifier.wake()
    return head
