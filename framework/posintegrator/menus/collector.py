"""Pausing Python's cyclic garbage collector around CPU-bound menu work, safely for the process.

A big menu (20,000 variations) is millions of live containers while it is translated, checked
and hashed; each collection pass walks them all and frees nothing (over half of the work's
time, bench/menu_translation.py), and a pass started by the event loop's own allocations stalls
the API as long. So menu work runs with the collector paused, reference counting still freeing
memory meanwhile.

The host pauses it for a whole sync round of a connection whose plugin fetches many locations at
once (the plugin's read of a big catalog happens on the event loop, in many small pieces, and
would otherwise start full collections), and for the CPU-bound steps of every menu. Cyclic
garbage made meanwhile by the rest of the process waits until the pause ends.

The collector is process-wide, so the pause is shared: it starts when the first piece of menu
work enters (in any thread) and ends when the last one leaves; a collector that was already
disabled by someone else is left disabled, and never re-enabled behind their back. On the way
out, what was made meanwhile is filed straight into the oldest generation (``gc.freeze`` then
``gc.unfreeze``) as if it had survived the young collections: otherwise the first allocation
after the pause (likely the event loop's) would walk all of it at once. This is skipped while
the process keeps frozen objects of its own (a pre-forking server's ``gc.freeze()``), which an
``unfreeze`` would release. Full collections still see everything, like any long-lived data.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_holders = 0
_we_disabled = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run the body with the cyclic garbage collector paused (see the module)."""
    global _holders, _we_disabled
    with _lock:
        if _holders == 0:
            _we_disabled = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _we_disabled:
                if gc.get_freeze_count() == 0:
                    gc.freeze()
                    gc.unfreeze()
                gc.enable()
                _we_disabled = False
