"""Testing tools: a host on loopback for tests, orders built from a menu, fault injection, and
the conformance kit every POS plugin runs (``posintegrator.testing.contract``, which needs
pytest: import it from there).

This package itself imports nothing from pytest, so test doubles that run outside a test
session (the demo POS uses the fault injector) can use it with only the runtime installed.
"""

from posintegrator.testing.harness import HostHarness, eventually, running_host
from posintegrator.testing.sample_orders import (
    complete_order,
    one_product_menu,
    price_list_for,
    sample_order,
    sample_order_with,
)

__all__ = [
    "HostHarness",
    "complete_order",
    "eventually",
    "one_product_menu",
    "price_list_for",
    "running_host",
    "sample_order",
    "sample_order_with",
]
