"""The demo plugin passes the posintegrator conformance kit against the DemoPOS simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from pos_demo.simulator import SimulatorConfig, start_simulator
from pos_demo.simulator.webhooks import SIGNATURE_HEADER, sign
from posintegrator.testing.contract import PluginContract, PosBackend, WebhookSigning

FIXTURES = Path(__file__).parent / "fixtures"
API_KEY = "conformance-key"
WEBHOOK_SECRET = "conformance-webhook-secret"


class TestDemoPluginContract(PluginContract):
    """Runs every contract test with the demo plugin."""

    plugin_name = "demo"

    @pytest.fixture
    async def pos_backend(self, tmp_path: Path) -> AsyncIterator[PosBackend]:
        simulator = await start_simulator(
            SimulatorConfig(data_dir=tmp_path / "pos", api_key=API_KEY, stage_seconds=0.1)
        )

        async def count_orders(order_id: str) -> int:
            async with (
                aiohttp.ClientSession(headers={"X-Api-Key": API_KEY}) as session,
                session.get(f"{simulator.url}/orders", params={"reference": order_id}) as response,
            ):
                response.raise_for_status()
                return len((await response.json())["orders"])

        async def on_host_started(webhook_url: str) -> None:
            simulator.set_webhook(webhook_url, WEBHOOK_SECRET)

        async def hold_orders(hold: bool) -> None:
            simulator.set_stage_seconds(3600 if hold else 0.1)

        yield PosBackend(
            settings={
                "base_url": simulator.url,
                "api_key": API_KEY,
                "webhook_secret": WEBHOOK_SECRET,
            },
            locations=["downtown", "airport"],
            count_orders=count_orders,
            on_host_started=on_host_started,
            hold_orders=hold_orders,
            faults=simulator.core.faults,
            wrong_credentials={"api_key": "not-the-conformance-key"},
            webhooks=WebhookSigning(
                sign=lambda _url, body, secret: {
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: sign(secret, body),
                },
                secret=WEBHOOK_SECRET,
                body=(FIXTURES / "webhook_order.json").read_bytes(),
            ),
        )
        await simulator.close()
