"""The HTTP plumbing every POS client needs, with failures already in the framework's terms.

A plugin's client sends its requests through :func:`send`, which maps transport failures to the
framework's errors (not connected: retryable; cut off or timed out after sending a write: outcome
unknown), and decodes successful JSON bodies with :func:`json_object`. What a POS's *error
bodies* mean stays in the plugin: that part is vendor specific.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import orjson

from posintegrator.errors import AmbiguousError, RetryableError

#: The largest POS answer read when a client names no limit (a 20,000-item catalog page set is
#: far smaller; a POS sending more is treated as failing, not trusted with the host's memory).
DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Reply:
    """A POS's answer: status, raw body, and the pause it asked for (``Retry-After``)."""

    status: int
    body: bytes
    retry_after: float | None

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300


async def send(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    what: str,
    write: bool,
    timeout: aiohttp.ClientTimeout,
    params: dict[str, Any] | None = None,
    json: Any = None,
    headers: dict[str, str] | None = None,
    max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> Reply:
    """Send one request to a POS.

    :param what: names the call in error messages, e.g. ``"Square POST /v2/orders"``.
    :param write: whether the request changes something in the POS, so that losing the answer
        leaves the outcome unknown.
    :param max_bytes: the largest answer read (pass ``ctx.max_response_bytes``); a larger one is
        cut off unread, so a POS answering with gigabytes cannot exhaust the host's memory.
    :raises RetryableError: the POS could not be reached, a read failed, or its answer was too
        large.
    :raises AmbiguousError: a write was sent but its answer was lost (or too large to read).
    """
    all_headers = dict(headers or {})
    data = None
    if json is not None:
        data = orjson.dumps(json)
        all_headers["Content-Type"] = "application/json"
    try:
        async with http.request(
            method, url, params=params, data=data, headers=all_headers, timeout=timeout
        ) as response:
            body = await read_at_most(response.content, response.content_length, max_bytes)
            if body is None:
                problem = (
                    f"{what}: the answer is larger than {max_bytes} bytes and was not read "
                    "(raise the connection's max_response_bytes if the POS really sends that much)"
                )
                if write:
                    raise AmbiguousError(problem + "; the POS may have processed the request")
                raise RetryableError(problem)
            return Reply(
                response.status, body, parse_retry_after(response.headers.get("Retry-After"))
            )
    except aiohttp.ClientConnectorError as exc:
        # Not even connected: the request certainly did not reach the POS.
        raise RetryableError(f"{what}: cannot connect: {exc}") from exc
    except (TimeoutError, aiohttp.ClientError) as exc:
        problem = "timed out" if isinstance(exc, TimeoutError) else f"failed: {exc!r}"
        if write:
            raise AmbiguousError(f"{what} {problem}; the POS may have processed it") from exc
        raise RetryableError(f"{what} {problem}") from exc


async def read_at_most(
    content: aiohttp.StreamReader, declared_length: int | None, max_bytes: int
) -> bytes | None:
    """A whole HTTP body, or None as soon as it is known to be longer than ``max_bytes``: from
    its declared ``Content-Length`` before anything is read, or while reading a body sent in
    chunks. (The host reads request bodies the same way.)"""
    if declared_length is not None and declared_length > max_bytes:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in content.iter_any():
        size += len(chunk)
        if size > max_bytes:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def json_object(what: str, body: bytes, *, write: bool) -> dict[str, Any]:
    """Decode a successful answer; an unreadable one after a write leaves its outcome unknown."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        document = None
    if isinstance(document, dict):
        return document
    if write:
        raise AmbiguousError(f"{what}: unreadable success response")
    raise RetryableError(f"{what}: unreadable response")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
