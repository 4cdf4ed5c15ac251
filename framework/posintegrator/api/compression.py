"""gzip for large JSON answers, when the client accepts it (a 20,000-item menu is tens of MB of
JSON and a fifth of that compressed). Large bodies are compressed off the event loop."""

from __future__ import annotations

import asyncio
import gzip

from aiohttp import web

from posintegrator.api.problems import Handler

#: Bodies smaller than this are sent as they are (about one TCP segment: nothing to win).
MIN_BYTES = 1400
#: Bodies larger than this are compressed in a worker thread, not on the event loop.
THREAD_BYTES = 256 * 1024
_JSON = ("application/json", "application/problem+json")


def accepts_gzip(header: str) -> bool:
    """Whether an ``Accept-Encoding`` header allows gzip (and does not refuse it with q=0)."""
    for part in header.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "*"):
            continue
        quality = params.strip().lower()
        if not quality.startswith("q="):
            return True
        try:
            return float(quality[2:]) > 0.0
        except ValueError:
            return False  # a malformed weight: do not guess
    return False


@web.middleware
async def gzip_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Compress a large JSON answer with gzip when the request's ``Accept-Encoding`` allows."""
    response = await handler(request)
    if not isinstance(response, web.Response) or response.content_type not in _JSON:
        return response
    response.headers.add("Vary", "Accept-Encoding")
    body = response.body
    if (
        not isinstance(body, bytes)
        or len(body) < MIN_BYTES
        or "Content-Encoding" in response.headers
        or not accepts_gzip(request.headers.get("Accept-Encoding", ""))
    ):
        return response
    if len(body) > THREAD_BYTES:
        compressed = await asyncio.to_thread(gzip.compress, body, 6)
    else:
        compressed = gzip.compress(body, 6)
    response.body = compressed
    response.headers["Content-Encoding"] = "gzip"
    return response
