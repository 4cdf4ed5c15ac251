"""GET /metrics in the Prometheus text format: what the counters and gauges say matches what
the host did."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml
from helpers import eventually
from prometheus_client.parser import text_string_to_metric_families

from posintegrator.model import OrderStatus
from posintegrator.testing import HostHarness, sample_order

DOCS = Path(__file__).resolve().parents[1] / "docs"


async def scrape(harness: HostHarness) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, by name and labels."""
    async with harness.client.get(harness.url + "/metrics") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_count_what_the_host_did(demo_host: HostHarness) -> None:
    menu = await demo_host.wait_for_menu("downtown")
    for order_id in ("m-1", "m-2"):
        status, _ = await demo_host.post_order(sample_order(menu, order_id))
        assert status == 202
    for order_id in ("m-1", "m-2"):
        await demo_host.wait_for_status(order_id, {OrderStatus.COMPLETED}, timeout=20)

    async def cloud_caught_up() -> bool:
        samples = await scrape(demo_host)
        return value(samples, "posintegrator_outbox_pending", kind="order") == 0

    await eventually(cloud_caught_up, timeout=20)
    samples = await scrape(demo_host)
    assert value(samples, "posintegrator_orders", connection="demo", status="COMPLETED") == 2
    assert (
        value(
            samples, "posintegrator_delivery_attempts_total", connection="demo", outcome="accepted"
        )
        == 2
    )
    assert value(samples, "posintegrator_pickup_seconds_count", connection="demo") == 2
    assert value(samples, "posintegrator_submit_seconds_count", connection="demo") == 2
    assert value(samples, "posintegrator_connection_up", connection="demo") == 1
    assert value(samples, "posintegrator_circuit_open", connection="demo") == 0
    assert value(samples, "posintegrator_menu_last_success_timestamp_seconds", location="downtown")
    assert value(samples, "posintegrator_menu_findings", location="downtown", severity="error") == 0
    delivered = value(samples, "posintegrator_cloud_delivery_seconds_count", result="delivered")
    assert delivered >= 2 * 5, "each order's statuses, and the menus"
    assert value(samples, "posintegrator_store_write_seconds_count") > 0
    assert value(samples, "posintegrator_plugin_bugs", plugin="demo") == 0
    assert not [key for key in samples if "m-1" in str(key)], "no order ids as labels"


async def test_metrics_need_the_token(demo_host: HostHarness) -> None:
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.get(demo_host.url + "/metrics") as response,
    ):
        assert response.status == 401


async def test_the_example_alerts_and_dashboard_use_metrics_that_exist(
    demo_host: HostHarness,
) -> None:
    async with demo_host.client.get(demo_host.url + "/metrics") as response:
        exposed = {family.name for family in text_string_to_metric_families(await response.text())}
    docs = DOCS
    rules = yaml.safe_load((docs / "monitoring" / "alerts.yml").read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = orjson.loads((docs / "monitoring" / "grafana-dashboard.json").read_bytes())
    expressions += [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {
        re.sub(r"_(bucket|count|sum|total)$", "", name)
        for expression in expressions
        for name in re.findall(r"posintegrator_\w+", expression)
    }
    assert used <= exposed, f"not exposed: {sorted(used - exposed)}"
    guide = (docs / "deployer-guide.md").read_text()
    missing = [name for name in sorted(exposed) if f"`{name}" not in guide]
    assert not missing, f"docs/deployer-guide.md (Monitoring) does not list: {missing}"
