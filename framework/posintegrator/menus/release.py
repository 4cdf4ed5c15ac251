"""Letting go of a big menu's objects without holding up the event loop.

When the last reference to a 20,000-variation menu (or the catalog it was read from) goes, the
interpreter frees its million objects in one go, with the GIL held throughout: a third of a
second in which the API answers nothing, even from a worker thread. Emptied a piece at a time
in a worker thread instead, each piece is a separate step, between which the event loop's
thread gets its turn (the host lowers the interpreter's switch interval to 0.5 ms).
"""

from __future__ import annotations

from typing import Any

#: List entries freed per step (each may be a whole product or catalog object).
_PIECE = 16


def release_in_pieces(*containers: dict[Any, Any] | list[Any]) -> None:
    """Empty each of ``containers`` a piece at a time; run it in a worker thread, on
    containers nothing else holds (what they refer to is freed when nothing else holds it)."""
    for container in containers:
        if isinstance(container, dict):
            while container:
                container.popitem()
        else:
            while container:
                del container[-_PIECE:]
