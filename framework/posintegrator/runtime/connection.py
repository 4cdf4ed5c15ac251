"""A configured connection at run time: its settings, plugin, context, health and call limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiolimiter import AsyncLimiter

from posintegrator.context import ConnectionContext
from posintegrator.errors import (
    AmbiguousError,
    AuthError,
    NeedsAttentionError,
    PermanentError,
    PosError,
    RetryableError,
)
from posintegrator.plugins import PosPlugin
from posintegrator.runtime.health import ConnectionHealth
from posintegrator.runtime.metrics import ConnectionMetrics
from posintegrator.settings import ConnectionSettings


class CircuitOpenError(RetryableError):
    """The connection's circuit is open: the POS was not called at all."""


class CallTimedOut(AmbiguousError):
    """The plugin did not finish a call within the connection's ``call_timeout_seconds``.

    It was cut off. Whatever it had sent may have reached the POS, so a cut-off submission is
    treated as one whose outcome is unknown; any other call simply failed.
    """


@dataclass
class Connection:
    """One POS connection as the scheduler, delivery and API see it.

    Every call to the POS goes through :meth:`calling`, which applies, in this order, the
    circuit breaker (a POS that is down is not hammered), the rate limit and the limit on calls
    in flight, shared by menu sync, order delivery and status polling; and it cuts off a call
    that takes longer than ``call_timeout_seconds``, so a plugin that hangs holds up nothing but
    its own connection.
    """

    settings: ConnectionSettings
    plugin: PosPlugin
    ctx: ConnectionContext
    health: ConnectionHealth
    limiter: asyncio.Semaphore
    rate: AsyncLimiter | None = None
    metrics: ConnectionMetrics | None = None

    @property
    def name(self) -> str:
        """The connection's name."""
        return self.settings.name

    @asynccontextmanager
    async def calling(self) -> AsyncIterator[None]:
        """Hold a slot for one call to the POS, and record in the health how it went.

        A :class:`PermanentError` or :class:`NeedsAttentionError` counts as the POS answering;
        other :class:`PosError` kinds count as failures; anything else (a cancellation, a bug of
        the host) abandons a probe without judging the POS.

        :raises CircuitOpenError: the circuit is open; ``retry_after`` says when to come back.
        """
        if not self.health.try_call():
            raise CircuitOpenError(
                f"connection {self.name!r} is paused: {self.health.last_error}",
                retry_after=self.health.blocked_for(),
            )
        timeout = self.settings.call_timeout_seconds
        try:
            async with self.limiter:
                if self.rate is not None:
                    waiting = time.perf_counter()
                    await self.rate.acquire()
                    if self.metrics is not None:
                        self.metrics.waited_for_rate_limit(time.perf_counter() - waiting)
                try:
                    async with asyncio.timeout(timeout):
                        yield
                except TimeoutError:
                    self.plugin.timeouts += 1
                    raise CallTimedOut(
                        f"plugin {self.plugin.name!r} did not answer within {timeout:g} s "
                        f"(connection {self.name!r}, call_timeout_seconds): cut off"
                    ) from None
        except (PermanentError, NeedsAttentionError):
            self.health.succeeded()
            raise
        except AuthError as exc:
            self.health.failed(exc.message, auth=True)
            raise
        except PosError as exc:
            self.health.failed(exc.message)
            raise
        except BaseException:
            self.health.probe_abandoned()
            raise
        self.health.succeeded()

    def uses_polling(self) -> bool:
        """Whether status for this connection is polled rather than pushed by webhooks."""
        caps = self.plugin.capabilities()
        if self.settings.status_source == "polling":
            return True
        if self.settings.status_source == "webhook":
            return False
        return caps.status_polling and not caps.status_webhooks
