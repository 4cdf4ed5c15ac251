"""Who is signed in to the dashboard, and whether a form really comes from it.

* Operators sign in with a name and password (``ui.users``, scrypt hashes), or a trusted single
  sign-on proxy names them in a header (``ui.proxy_user_header``, believed only from
  ``ui.proxy_addresses``). The dashboard's sign-in is separate from the API token: the cloud's
  credential never opens the dashboard, and an operator's never calls the API.
* The session is a cookie signed with ``ui.session_secret`` (itsdangerous), carrying the
  operator's name, when it was issued and a random CSRF token; it is HttpOnly, SameSite=Strict,
  Secure over HTTPS, and refused after ``ui.session_seconds``. The role is looked up in the
  settings on every request, so a user removed or made a viewer loses the rights at the next
  restart, whatever their cookie says.
* Every form carries the session's CSRF token; a POST without the right one, or from another
  origin, is refused (403) before any handler runs.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import secrets
import time
from dataclasses import dataclass

from aiohttp import web
from itsdangerous import BadSignature, URLSafeTimedSerializer
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from posintegrator.settings import Role, UiSettings, UiUser
from posintegrator.ui.passwords import hash_password, verify_password

COOKIE = "posintegrator_ui"
CSRF_FIELD = "csrf"


@dataclass(frozen=True)
class Operator:
    """A signed-in person."""

    name: str
    role: Role

    @property
    def can_act(self) -> bool:
        """Whether this person may change orders (a viewer only looks)."""
        return self.role == "operator"


@dataclass(frozen=True)
class Session:
    """What the session cookie carries.

    :param user: who signed in with a password; None before sign-in, or when a proxy names the
        operator on every request.
    """

    csrf: str
    user: str | None
    issued_at: float

    @classmethod
    def new(cls, user: str | None = None) -> Session:
        """A fresh session, with a new CSRF token (never reused across a sign-in)."""
        return cls(csrf=secrets.token_urlsafe(32), user=user, issued_at=time.time())


class TooManyAttempts(Exception):
    """The client's budget of wrong passwords is spent; ``retry_after`` in seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins; try again in {retry_after} s")
        self.retry_after = retry_after


class Authenticator:
    """Sign-in, sessions and CSRF checks of the dashboard.

    :param failures_per_minute: wrong passwords one client address may send per minute.
    """

    def __init__(self, settings: UiSettings, *, failures_per_minute: int) -> None:
        self.settings = settings
        secret = (
            settings.session_secret.get_secret_value()
            if settings.session_secret is not None
            else secrets.token_urlsafe(32)
        )
        self._serializer = URLSafeTimedSerializer(secret, salt="posintegrator.ui.session")
        self._users = {user.name.lower(): user for user in settings.users}
        self._failures = RateLimitItemPerMinute(failures_per_minute)
        # A moving window: exactly the failures of the last minute count, wherever the
        # minute boundaries fall.
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        # Checked against when the name is unknown, so a wrong name costs as long as a wrong
        # password and the timing does not tell which names exist.
        self._decoy = hash_password(secrets.token_urlsafe(16))

    @property
    def configured(self) -> bool:
        """Whether anyone can sign in at all."""
        has_password = any(user.password_hash is not None for user in self.settings.users)
        return has_password or self.settings.proxy_user_header is not None

    # --- sessions -------------------------------------------------------------------------------

    def read(self, request: web.Request) -> Session | None:
        """The request's session, if its cookie is genuine and not expired."""
        cookie = request.cookies.get(COOKIE)
        if not cookie:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=self.settings.session_seconds)
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        user = data.get("u")
        issued = data.get("t")
        return Session(
            csrf=data["c"],
            user=user if isinstance(user, str) else None,
            issued_at=float(issued) if isinstance(issued, int | float) else 0.0,
        )

    def write(self, response: web.StreamResponse, session: Session, *, secure: bool) -> None:
        """Set ``session`` as the response's cookie."""
        value = self._serializer.dumps(
            {"c": session.csrf, "u": session.user, "t": session.issued_at}
        )
        response.set_cookie(
            COOKIE,
            value,
            max_age=self.settings.session_seconds,
            path="/ui",
            httponly=True,
            samesite="Strict",
            secure=secure,
        )

    # --- who is it ------------------------------------------------------------------------------

    def operator(self, request: web.Request, session: Session | None) -> Operator | None:
        """Who makes this request: the proxy's operator, or the session's signed-in user."""
        header = self.settings.proxy_user_header
        if header is not None and request.remote in self.settings.proxy_addresses:
            name = request.headers.get(header, "").strip()
            if name:
                user = self._users.get(name.lower())
                return Operator(name, user.role if user else self.settings.proxy_role)
        if session is None or session.user is None:
            return None
        user = self._users.get(session.user.lower())
        return None if user is None else Operator(user.name, user.role)

    async def sign_in(self, name: str, password: str, client: str) -> Operator | None:
        """The operator whose password this is, or None.

        :raises TooManyAttempts: the client has sent too many wrong passwords lately.
        """
        if not self._limiter.test(self._failures, client):
            raise TooManyAttempts(self._retry_after(client))
        user: UiUser | None = self._users.get(name.strip().lower())
        encoded = (
            user.password_hash.get_secret_value()
            if user is not None and user.password_hash is not None
            else self._decoy
        )
        matches = await asyncio.to_thread(verify_password, password, encoded)
        if user is None or user.password_hash is None or not matches:
            self._limiter.hit(self._failures, client)
            return None
        return Operator(user.name, user.role)

    def _retry_after(self, client: str) -> int:
        reset = self._limiter.get_window_stats(self._failures, client).reset_time
        return max(1, math.ceil(reset - time.time()))


def csrf_matches(session: Session | None, given: str | None) -> bool:
    """Whether a form's token is the session's (compared in constant time)."""
    if session is None or not given:
        return False
    return hmac.compare_digest(session.csrf.encode(), given.encode())


def same_origin(request: web.Request) -> bool:
    """Whether a browser's ``Origin`` header, when it sends one, names this host."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return origin in {f"http://{request.host}", f"https://{request.host}"}
