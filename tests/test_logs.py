"""Logs as a deployer's pipeline reads them: one JSON object per line with the component, the
connection, the plugin and the order where there is one; the standard library's loggers (the
access log among them) in the same stream; and the text format showing the same fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from helpers import POS_WEBHOOK_SECRET, write_host_config
from hostprocess import ServeProcess

from pos_demo.simulator import RunningSimulator
from posintegrator.cloud.receiver import CloudReceiver
from posintegrator.cloud.signatures import generate_secret
from posintegrator.model import Menu
from posintegrator.testing import sample_order

TOKEN = "logs-token"


async def _serve(tmp_path: Path, simulator: RunningSimulator, log_table: str) -> dict[str, Any]:
    secret = generate_secret()
    receiver = CloudReceiver([secret])
    await receiver.start()
    config = tmp_path / "host.toml"
    write_host_config(
        config,
        port=0,
        token=TOKEN,
        store=tmp_path / "host.db",
        simulator_url=simulator.url,
        cloud_url=receiver.url,
        cloud_key=secret,
    )
    config.write_text(config.read_text() + log_table, encoding="utf-8")

    def point(url: str) -> None:
        simulator.set_webhook(f"{url}/pos/demo/webhook", POS_WEBHOOK_SECRET)

    serve = ServeProcess(config, tmp_path / "host.log", TOKEN, on_started=point)
    try:
        await serve.start()
        _, menu = await serve.call("GET", "/v1/locations/downtown/menu")
        status, _ = await serve.call(
            "POST", "/v1/orders", sample_order(Menu.model_validate(menu), "logged-1")
        )
        assert status == 202
        await receiver_sees(receiver, "logged-1")
    finally:
        await serve.stop()
        await receiver.stop()
    return {"text": (tmp_path / "host.log").read_text()}


async def receiver_sees(receiver: CloudReceiver, order_id: str) -> None:
    from helpers import eventually

    async def accepted() -> bool:
        return "ACCEPTED" in receiver.statuses(order_id)

    await eventually(accepted, timeout=30)


async def test_json_lines_with_fields_and_the_access_log(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    logs = await _serve(tmp_path, simulator, '\n[log]\nformat = "json"\naccess_log = true\n')
    lines = [line for line in logs["text"].splitlines() if line.strip()]
    records = [orjson.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "message", "component"} <= set(r) for r in records)
    assert any(r.get("order_id") == "logged-1" for r in records)
    assert any(r.get("connection") == "demo" and r.get("plugin") == "demo" for r in records)
    access = [r for r in records if r["component"] == "aiohttp.access"]
    assert any("POST /v1/orders" in r["message"] and " 202 " in r["message"] for r in access)
    assert TOKEN not in logs["text"]


async def test_text_lines_show_the_same_fields(tmp_path: Path, simulator: RunningSimulator) -> None:
    logs = await _serve(tmp_path, simulator, "")
    assert any(
        "[demo demo logged-1]" in line or "[logged-1]" in line for line in logs["text"].splitlines()
    ), logs["text"][-2000:]
    assert "aiohttp.access" not in logs["text"], "no access log unless asked for"
