"""Chaos: the host as a real process against a faulty POS and a flaky cloud, killed with
SIGKILL at random moments while a driver posts hundreds of orders (some twice, some twice at
once). At the end every accepted order is in the POS exactly once, or FAILED / NEEDS_ATTENTION
with a reason; none is in the POS twice; and the cloud heard every order's status changes in
order. The counts are printed (``pytest -s``); ``--chaos-orders`` and ``--chaos-kills`` make it
longer. What it shares with test_scale_chaos is in chaoskit."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path

import aiohttp
import orjson
import pytest
from chaoskit import (
    Driver,
    FaultyPartners,
    HavocPlan,
    assert_cloud_heard_in_order,
    assert_each_order_in_pos_once,
    order_views,
    sample_orders,
    settle,
)
from helpers import POS_WEBHOOK_SECRET, eventually
from hostprocess import ServeProcess
from prometheus_client.parser import text_string_to_metric_families

from posintegrator.cloud.receiver import CloudReceiver

TOKEN = "chaos-token"


# About a minute on a quiet machine, five on one busy with other work: more than the default
# guard against hangs.
@pytest.mark.timeout(900)
async def test_chaos(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    orders_wanted: int = request.config.getoption("--chaos-orders")
    kills_wanted: int = request.config.getoption("--chaos-kills")
    rng = random.Random(20261129)
    partners = await FaultyPartners.start(tmp_path / "pos", fault_seed=1)
    pos, receiver = partners.pos, partners.receiver
    config = tmp_path / "host.toml"
    store = tmp_path / "host.db"
    config.write_text(partners.host_settings(TOKEN, f'path = "{store}"'), encoding="utf-8")

    def point_webhooks(url: str) -> None:
        pos.set_webhook(f"{url}/pos/demo/webhook", POS_WEBHOOK_SECRET)

    serve = ServeProcess(config, tmp_path / "host.log", TOKEN, on_started=point_webhooks)
    menu = await partners.menu()
    chaos = Counter[str]()
    try:
        await serve.start()
        driver = Driver(serve, TOKEN, rng, timeout_seconds=5)
        orders = sample_orders(menu, "chaos", orders_wanted, rng)

        async def kill_and_restart() -> None:
            await serve.kill()
            await asyncio.sleep(rng.uniform(0.1, 0.8))
            await serve.start()

        plan = HavocPlan(
            kill=kill_and_restart, kills_wanted=kills_wanted, kill_weight=2, pause=(0.5, 2.5)
        )
        await partners.drive_through_havoc(driver, orders, plan, chaos)
        statuses = await settle(serve, sorted(driver.accepted), rounds=600)
        histories = await order_views(serve, driver.accepted)

        pos_counts = await partners.pos_counts()
        assert_each_order_in_pos_once(pos_counts, statuses, histories)
        await wait_for_cloud(receiver, statuses)
        assert_cloud_heard_in_order(receiver, statuses)

        # The metrics tell the same story: every accepted order is counted once, those the POS
        # holds are the ones it really holds, and nothing waits for the cloud any more.
        async def backlog_drained() -> bool:
            return _sum(await scrape(serve), "posintegrator_outbox_pending") == 0

        await eventually(backlog_drained, timeout=30)
        samples = await scrape(serve)
        assert _sum(samples, "posintegrator_orders") == len(driver.accepted)
        in_pos = sum(
            value
            for (name, labels), value in samples.items()
            if name == "posintegrator_orders"
            and dict(labels)["status"] in ("ACCEPTED", "IN_PREPARATION", "READY", "COMPLETED")
        )
        assert in_pos == len(pos_counts)

        lookups = sum(
            any(h["source"].endswith(":lookup") for h in view["history"])
            for view in histories.values()
        )
        ignored = sum(
            sum(1 for h in view["history"] if not h["applied"]) for view in histories.values()
        )
        summary = {
            "orders": orders_wanted,
            "accepted": len(driver.accepted),
            "posts": driver.posts,
            "posted_again": driver.repeats,
            "posted_twice_at_once": driver.concurrent_repeats,
            "host_unreachable_posts": driver.unreachable,
            **chaos,
            **partners.pos_fault_counts(),
            "pos_webhook_duplicates": pos.core.webhooks.duplicated,
            "pos_webhook_reorders": pos.core.webhooks.reordered,
            "cloud_duplicate_deliveries": receiver.duplicates,
            "found_by_lookup": lookups,
            "status_events_ignored": ignored,
            "final": dict(Counter(statuses.values())),
        }
        print("\nchaos summary:", orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
        assert chaos["kills"] >= 1
    finally:
        await serve.stop()
        await partners.close()


async def scrape(serve: ServeProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the host's /metrics."""
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session,
        session.get(serve.url + "/metrics") as response,
    ):
        assert response.status == 200
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _sum(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> float:
    return sum(value for (sample, _), value in samples.items() if sample == name)


async def wait_for_cloud(receiver: CloudReceiver, statuses: dict[str, str]) -> None:
    """Wait until the cloud heard the final status of every order."""
    for _ in range(600):
        last = {}
        for event in receiver.events:
            if event.get("order_id"):
                last[event["order_id"]] = event["status"]
        if all(last.get(oid) == status for oid, status in statuses.items()):
            return
        await asyncio.sleep(0.1)
    missing = {oid for oid, s in statuses.items() if last.get(oid) != s}
    raise AssertionError(f"the cloud never heard the final status of {sorted(missing)[:10]}")
