"""The one retry schedule of the host: exponential backoff with jitter and a cap.

Retries of orders and of cloud events are persisted (their next run time is in the store), so
this module only computes delays; it never sleeps.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Delay before retry number ``n``: ``base * 2**(n-1)``, capped, with half of it jittered.

    :param base: seconds before the first retry.
    :param cap: the longest delay, in seconds.
    """

    base: float = 1.0
    cap: float = 300.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        Half the delay is fixed and half random, so many failing items do not retry in step.
        A server's ``Retry-After`` is a floor: we never come back sooner than asked.
        """
        ceiling = min(self.cap, self.base * float(2 ** max(0, min(attempt - 1, 60))))
        delay = ceiling / 2 + random.random() * ceiling / 2
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay
