"""The one logging setup of the host: loguru to stderr, as text for people or JSON lines for a
log pipeline, with the standard library's loggers (aiohttp, plugins' vendor libraries) routed
through the same sink.

Every line carries the component (``host``, ``agent``) and, where the code bound them, the
connection, the plugin and the order. Secrets are ``SecretStr`` everywhere, so they print as
``**********`` if they reach a log line.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Any, Literal

import orjson
from loguru import logger

if TYPE_CHECKING:
    from loguru import Message, Record

LogFormat = Literal["text", "json"]

#: Fields bound with ``logger.bind`` that are worth a column of their own.
FIELDS = ("connection", "plugin", "order_id")

_TEXT = (
    "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
    "<cyan>{extra[component]}</cyan>{extra[_where]} {message}\n{exception}"
)


def _text_format(record: Record) -> str:
    where = [str(record["extra"][name]) for name in FIELDS if record["extra"].get(name)]
    record["extra"]["_where"] = f" [{' '.join(where)}]" if where else ""
    return _TEXT


def _json_sink(message: Message) -> None:
    record = message.record
    line: dict[str, Any] = {
        "time": record["time"].astimezone().isoformat(timespec="milliseconds"),
        "level": record["level"].name,
        "message": record["message"],
        "component": record["extra"].get("component"),
        "logger": record["name"],
    }
    for name in FIELDS:
        value = record["extra"].get(name)
        if value is not None:
            line[name] = str(value)
    if record["exception"] is not None:
        exception = record["exception"]
        line["exception"] = (
            f"{exception.type.__name__ if exception.type else ''}: {exception.value}"
        )
    sys.stderr.write(orjson.dumps(line, default=str).decode() + "\n")


class _ToLoguru(logging.Handler):
    """Sends a standard-library log record to loguru, keeping its level and origin."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(exception=record.exc_info, depth=6).bind(component=record.name).log(
            level, record.getMessage()
        )


def setup_logging(
    level: str | None = None, *, component: str = "host", log_format: LogFormat | None = None
) -> None:
    """Send logs to stderr at ``level`` (default INFO, or POSINTEGRATOR_LOG_LEVEL) as ``text``
    or ``json`` lines (default text, or POSINTEGRATOR_LOG_FORMAT)."""
    chosen = (level or os.environ.get("POSINTEGRATOR_LOG_LEVEL", "INFO")).upper()
    form = log_format or os.environ.get("POSINTEGRATOR_LOG_FORMAT", "text")
    logger.remove()
    logger.configure(extra={"component": component})
    if form == "json":
        logger.add(_json_sink, level=chosen, backtrace=False, diagnose=False)
    else:
        logger.add(sys.stderr, level=chosen, format=_text_format, backtrace=False, diagnose=False)
    # The standard library's loggers (aiohttp's, a plugin's vendor SDK's) go the same way.
    logging.basicConfig(handlers=[_ToLoguru()], level=logging.getLevelName(chosen), force=True)
