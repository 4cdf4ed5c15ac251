"""The conformance kit: run the real host against a plugin's test POS, and the contract tests
every POS plugin must pass (see docs/plugin-guide.md)."""

from posintegrator.testing.contract import PluginContract, PosBackend
from posintegrator.testing.harness import HostHarness, running_host
from posintegrator.testing.sample_orders import price_list_for, sample_order

__all__ = [
    "HostHarness",
    "PluginContract",
    "PosBackend",
    "price_list_for",
    "running_host",
    "sample_order",
]
