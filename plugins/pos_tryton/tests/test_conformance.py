"""The Tryton plugin passes the posintegrator conformance kit against a real Tryton server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pos_tryton.client import forget_sessions
from pos_tryton.testing import SeededDatabase, running_tryton
from posintegrator.testing.contract import PluginContract, PosBackend


class TestTrytonPluginContract(PluginContract):
    """Every contract test, with the plugin against trytond serving the seeded restaurant."""

    plugin_name = "tryton"
    status_timeout = 60.0

    @pytest.fixture
    async def pos_backend(
        self, seeded_tryton: SeededDatabase, tmp_path: Path
    ) -> AsyncIterator[PosBackend]:
        async with running_tryton(seeded_tryton, tmp_path / "tryton") as tryton:

            async def count_orders(order_id: str) -> int:
                return tryton.count_orders(order_id)

            yield PosBackend(
                settings=tryton.plugin_settings("venue", "terrace"),
                locations=["venue", "terrace"],
                count_orders=count_orders,
                wrong_credentials={"password": "not-the-tryton-password"},
            )
        forget_sessions()
