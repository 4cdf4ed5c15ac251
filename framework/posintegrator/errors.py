"""The errors that cross the boundary between the host and plugins, and the host's own.

A plugin turns every failure of its POS into one of the :class:`PosError` kinds, so the host
can decide what to do without knowing the POS. Anything else a plugin raises is a bug: the host
logs it with the plugin's name and treats it as retryable.
"""

from __future__ import annotations


class PosError(Exception):
    """Base of the errors a plugin raises for a POS failure."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RetryableError(PosError):
    """The POS is down, overloaded or rate limiting; the same request may succeed later.

    :param retry_after: seconds the POS asked us to wait (e.g. from ``Retry-After``), if any.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PluginBugError(RetryableError):
    """A plugin raised something other than a :class:`PosError`, or returned the wrong type.

    Raised by the host, not by plugins. It is retried like a :class:`RetryableError`, but during
    an order submission it counts as an unknown outcome: the bug may have struck after the POS
    took the order.
    """


class PermanentError(PosError):
    """The POS refused the request for a reason that retrying will not change.

    :param reason: a short text the cloud can show to the customer or operator.
    :param code: a machine-readable code from the POS, if it gave one.
    """

    def __init__(self, message: str, *, reason: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message
        self.code = code


class AmbiguousError(PosError):
    """The request was sent but its outcome is unknown (timeout, dropped connection).

    The host will look the order up before sending it again.
    """


class NeedsAttentionError(PosError):
    """The POS cannot tell whether it has the order, and asking again will not settle it.

    Raised by ``pos_find_order`` when the POS's own data is contradictory (several of its orders
    fit ours and none carries our reference, or the order it created for us is gone). The host
    parks the order as NEEDS_ATTENTION with this message: a person checks the POS, then marks
    the order found or missing.
    """


class AuthError(PosError):
    """The POS refused our credentials; a person must fix the connection's settings."""


class WebhookRejected(Exception):
    """An inbound POS webhook failed verification (signature, timestamp) or could not be read.

    :param status: the HTTP status to answer with (401 for a bad signature, 400 for bad content).
    """

    def __init__(self, message: str, *, status: int = 401) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class StartupError(Exception):
    """The host cannot start as configured; the message says what to fix."""
