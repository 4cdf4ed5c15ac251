"""The one logging setup of the host: loguru to stderr, level from POSINTEGRATOR_LOG_LEVEL.

Secrets are ``SecretStr`` everywhere, so they print as ``**********`` if they reach a log line.
"""

from __future__ import annotations

import os
import sys

from loguru import logger

_FORMAT = (
    "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
    "<cyan>{extra[component]}</cyan> {message}"
)


def setup_logging(level: str | None = None, *, component: str = "host") -> None:
    """Send logs to stderr at ``level`` (default INFO, or the environment's choice)."""
    chosen = level or os.environ.get("POSINTEGRATOR_LOG_LEVEL", "INFO")
    logger.remove()
    logger.configure(extra={"component": component})
    logger.add(sys.stderr, level=chosen.upper(), format=_FORMAT, backtrace=False, diagnose=False)
