"""A thin client for Tryton's JSON-RPC: sessions, calls, and Tryton's failures in framework terms.

A call is ``POST {base_url}/{database}/rpc/`` with ``{"id", "method", "params"}``; model methods
take the user's context as their last parameter. The client logs in with ``common.db.login``,
reads the user's context once (``model.res.user.get_preferences``), and sends
``Authorization: Session base64(login:user_id:token)`` on every call.

Sessions are credentials, so they live in this process's memory only (never in the host's
store): a restart logs in again. A session Tryton no longer accepts (HTTP 401: expired, logged
out, the user's password changed) is dropped and the call is made once more with a fresh login;
Tryton refuses a request with a bad session before running it, so repeating it is safe even for
a write.

Failures leave this module as the framework's errors:

* login refused (HTTP 401), unknown database (404), ``LoginException`` -> :class:`AuthError`;
* ``UserError`` (Tryton refused the request: a domain, a rule, an access right, a state) and
  ``UserWarning`` (Tryton wants a person to confirm) -> :class:`PermanentError` with Tryton's
  message as the reason; a method Tryton does not expose (403) likewise;
* ``ConcurrencyException``, rate limiting (429), HTTP 5xx, a server-side exception (Tryton rolled
  its transaction back) -> :class:`RetryableError`;
* a lost answer to a write (timeout, dropped connection, unreadable body, a proxy's 502/504) ->
  :class:`AmbiguousError`; to a read -> :class:`RetryableError`.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from pos_tryton.settings import TrytonSettings
from pos_tryton.wire import decode, encode
from posintegrator.errors import AmbiguousError, AuthError, PermanentError, RetryableError
from posintegrator.poshttp import DEFAULT_MAX_RESPONSE_BYTES, Reply, json_object, send

JSONDict = dict[str, Any]
#: Records read per ``search_read`` call: bounded pages, never one call per record.
PAGE_SIZE = 500
#: Statuses a proxy in front of Tryton answers after it may have forwarded the request.
_PROXY_LOST = frozenset({502, 504})


@dataclass(frozen=True)
class Session:
    """A logged-in Tryton session: the user, the header that proves it, the user's context."""

    user_id: int
    authorization: str
    context: JSONDict

    def __repr__(self) -> str:  # the header is a credential: never print it
        return f"Session(user_id={self.user_id})"


class _SessionRefused(Exception):
    """Tryton answered 401 to a call: the session is no longer valid."""


#: Live sessions by (RPC URL, login, digest of the password). In memory only: see the module
#: docstring. The password is part of the key so that settings with another password (a
#: corrected or a mistyped one) log in with it, never ride on a session the old one opened.
_sessions: dict[tuple[str, str, str], Session] = {}
_request_ids = itertools.count(1)


def forget_sessions() -> None:
    """Drop every cached session (the next call of each connection logs in again)."""
    _sessions.clear()


class TrytonClient:
    """Calls one Tryton database as the connection's integration user.

    :param http: the host's shared session; the client never creates or closes one.
    :param settings: where Tryton is and who to log in as.
    :param max_response_bytes: the largest answer read (the connection's limit).
    """

    def __init__(
        self,
        http: aiohttp.ClientSession,
        settings: TrytonSettings,
        *,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self._http = http
        self._max_bytes = max_response_bytes
        self._settings = settings
        self._url = f"{str(settings.base_url).rstrip('/')}/{settings.database}/rpc/"
        password = settings.password.get_secret_value().encode()
        self._key = (self._url, settings.username, hashlib.sha256(password).hexdigest())
        self._timeout = aiohttp.ClientTimeout(total=settings.request_timeout_seconds)

    async def user_id(self) -> int:
        """The integration user's Tryton id (logging in if needed)."""
        return (await self._session()).user_id

    async def call(self, method: str, *params: Any, write: bool = False) -> Any:
        """Call a model method (``model.sale.point.sale.create``) with the user's context.

        :param write: whether the call changes data, so that a lost answer is an unknown outcome.
        """
        session = await self._session()
        try:
            return await self._call(session, method, params, write=write)
        except _SessionRefused:
            if _sessions.get(self._key) is session:
                del _sessions[self._key]
            session = await self._session()
            try:
                return await self._call(session, method, params, write=write)
            except _SessionRefused:
                raise AuthError(
                    f"Tryton {method}: a fresh session of user {self._settings.username!r} "
                    "was refused at once"
                ) from None

    async def search_read(
        self,
        model: str,
        domain: list[Any],
        fields: Sequence[str],
        *,
        order: list[tuple[str, str]] | None = None,
    ) -> list[JSONDict]:
        """Every record of ``model`` matching ``domain``, ``PAGE_SIZE`` per call, by id."""
        records: list[JSONDict] = []
        sort = [list(item) for item in (order or [("id", "ASC")])]
        for offset in itertools.count(0, PAGE_SIZE):
            page = await self.call(
                f"model.{model}.search_read", domain, offset, PAGE_SIZE, sort, list(fields)
            )
            records.extend(page)
            if len(page) < PAGE_SIZE:
                return records
        raise AssertionError("unreachable")  # pragma: no cover

    async def read(self, model: str, ids: Sequence[int], fields: Sequence[str]) -> list[JSONDict]:
        """Records of ``model`` by id (Tryton refuses ids that do not exist or are not visible)."""
        if not ids:
            return []
        result: list[JSONDict] = await self.call(f"model.{model}.read", list(ids), list(fields))
        return result

    async def create(self, model: str, values: list[JSONDict]) -> list[int]:
        """Create records; returns their ids (a write: a lost answer is an unknown outcome)."""
        ids: list[int] = await self.call(f"model.{model}.create", values, write=True)
        return ids

    async def button(self, model: str, name: str, ids: Sequence[int]) -> None:
        """Press a workflow button (``process``, ``cancel``) on records."""
        await self.call(f"model.{model}.{name}", list(ids), write=True)

    async def delete(self, model: str, ids: Sequence[int]) -> None:
        """Delete records."""
        await self.call(f"model.{model}.delete", list(ids), write=True)

    # --- sessions and transport -------------------------------------------------------------

    async def _session(self) -> Session:
        session = _sessions.get(self._key)
        if session is None:
            session = await self._login()
            _sessions[self._key] = session
        return session

    async def _login(self) -> Session:
        settings = self._settings
        what = f"Tryton login of {settings.username!r} on database {settings.database!r}"
        password = settings.password.get_secret_value()
        reply = await self._post(
            "common.db.login", [settings.username, {"password": password}, "en"], None, what=what
        )
        if reply.status in (401, 403, 404):
            problem = "database not found" if reply.status == 404 else "login refused"
            raise AuthError(f"{what}: {problem} (HTTP {reply.status}); check the settings")
        result = self._result(what, reply, write=False)
        user_id, token = int(result[0]), str(result[1])
        header = base64.b64encode(f"{settings.username}:{user_id}:{token}".encode()).decode()
        authorization = f"Session {header}"
        pending = Session(user_id, authorization, {})
        try:
            context = await self._call(
                pending, "model.res.user.get_preferences", (True,), write=False, with_context=False
            )
        except _SessionRefused:
            raise AuthError(f"{what}: the new session was refused at once") from None
        return Session(user_id, authorization, dict(context))

    async def _call(
        self,
        session: Session,
        method: str,
        params: Sequence[Any],
        *,
        write: bool,
        with_context: bool = True,
    ) -> Any:
        what = f"Tryton {method}"
        args = [*params, session.context] if with_context else [*params, {}]
        reply = await self._post(method, args, session.authorization, what=what, write=write)
        if reply.status == 401:
            raise _SessionRefused
        return self._result(what, reply, write=write)

    async def _post(
        self,
        method: str,
        params: list[Any],
        authorization: str | None,
        *,
        what: str,
        write: bool = False,
    ) -> Reply:
        headers = {"Accept": "application/json"}
        if authorization is not None:
            headers["Authorization"] = authorization
        body = {"id": next(_request_ids), "method": method, "params": encode(params)}
        return await send(
            self._http,
            "POST",
            self._url,
            what=what,
            write=write,
            timeout=self._timeout,
            max_bytes=self._max_bytes,
            json=body,
            headers=headers,
        )

    def _result(self, what: str, reply: Reply, *, write: bool) -> Any:
        if not reply.ok:
            raise error_from_status(what, reply, write=write)
        document = json_object(what, reply.body, write=write)
        if "error" in document:
            raise error_from_tryton(what, document["error"])
        if "result" not in document:
            problem = f"{what}: an answer without result or error"
            raise AmbiguousError(problem) if write else RetryableError(problem)
        return decode(document["result"])


def error_from_status(what: str, reply: Reply, *, write: bool) -> Exception:
    """The framework error for an HTTP failure of a JSON-RPC call (see the module docstring)."""
    message = f"{what}: HTTP {reply.status}"
    if reply.status == 404:
        return AuthError(f"{message}: no such database; check the settings")
    if reply.status == 403:
        return PermanentError(
            f"{message}: Tryton does not expose this method", reason="not allowed by Tryton"
        )
    if reply.status == 429:
        return RetryableError(f"{message}: rate limited", retry_after=reply.retry_after)
    if write and reply.status in _PROXY_LOST:
        return AmbiguousError(f"{message}; Tryton may have processed it")
    if reply.status >= 500:
        return RetryableError(message, retry_after=reply.retry_after)
    return PermanentError(message, reason=f"Tryton answered HTTP {reply.status}")


def error_from_tryton(what: str, error: Any) -> Exception:
    """The framework error for a JSON-RPC ``error`` member: ``[kind, args]`` as Tryton sends it.

    Tryton rolls its transaction back before answering with an error, so none of these leaves
    the outcome unknown.
    """
    kind = error[0] if isinstance(error, list) and error else None
    args = error[1] if isinstance(error, list) and len(error) > 1 else None
    if kind == "UserError" and isinstance(args, list) and args:
        reason = " - ".join(str(part) for part in args[:2] if part)
        return PermanentError(f"{what}: {reason}", reason=reason, code="UserError")
    if kind == "UserWarning" and isinstance(args, list) and len(args) > 1:
        reason = " - ".join(str(part) for part in args[1:3] if part)
        return PermanentError(
            f"{what}: needs a person to confirm: {reason}", reason=reason, code=str(args[0])
        )
    if kind == "LoginException":
        return AuthError(f"{what}: Tryton asks for a login: {args}")
    if kind == "ConcurrencyException":
        return RetryableError(f"{what}: the record changed meanwhile: {args}")
    first_line = str(kind).splitlines()[0] if kind else repr(error)[:200]
    return RetryableError(f"{what}: Tryton failed: {first_line}")
