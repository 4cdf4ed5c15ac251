"""pytest plugin (entry point ``pytest11``): fixtures for testing against a running host.

Loaded automatically when posintegrator is installed. Plugins use
:class:`posintegrator.testing.PluginContract` for the contract tests.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Register the kit's marker."""
    config.addinivalue_line(
        "markers", "posintegrator_contract: a posintegrator plugin contract test"
    )
