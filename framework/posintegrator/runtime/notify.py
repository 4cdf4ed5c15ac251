"""Readiness notifications in systemd's ``sd_notify`` protocol.

When a supervisor sets ``NOTIFY_SOCKET`` (systemd with ``Type=notify``, or a test harness), the
host tells it once it serves (``READY=1``, with the URL it really listens on, which matters when
``api.port`` is 0) and when it starts stopping (``STOPPING=1``). Without the variable nothing is
sent. A supervisor that cannot be reached is noted in the debug log, never fatal.
"""

from __future__ import annotations

import os
import socket

from loguru import logger

#: Where the URL the API listens on travels (systemd keeps ``X_`` variables for applications).
URL_FIELD = "X_POSINTEGRATOR_URL"


def _send(message: str) -> None:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        logger.debug("cannot notify the supervisor at NOTIFY_SOCKET ({}): {}", address, exc)


def notify_ready(url: str) -> None:
    """Tell the supervisor the host serves at ``url``."""
    _send(f"READY=1\nSTATUS=serving at {url}\n{URL_FIELD}={url}\nMAINPID={os.getpid()}")


def notify_stopping() -> None:
    """Tell the supervisor the host is stopping."""
    _send("STOPPING=1\nSTATUS=stopping")
