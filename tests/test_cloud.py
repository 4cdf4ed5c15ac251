"""Cloud notifications: Standard Webhooks signatures with every active secret, unique ids,
per-order sequence, retried until acknowledged."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from helpers import SignedDelivery, eventually
from standardwebhooks import Webhook, WebhookVerificationError

from posintegrator.cloud.receiver import CloudReceiver
from posintegrator.cloud.signatures import (
    SignatureRejected,
    generate_secret,
    secret_key,
    signed_headers,
    verify,
)
from posintegrator.demo import prepare_data_dir, write_demo_config
from posintegrator.model import OrderStatus
from posintegrator.testing import HostHarness

KEY_A = b"A" * 32
KEY_B = b"B" * 32
BODY = b'{"type":"menu.published","event_id":"e-1"}'


def by_hand(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The standard's v1 signature, written out from its text."""
    signed = msg_id.encode() + b"." + str(timestamp).encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def test_each_active_secret_signs_id_timestamp_and_body() -> None:
    headers = signed_headers([KEY_A, KEY_B], "e-1", 1700000000, BODY)
    assert headers == {
        "webhook-id": "e-1",
        "webhook-timestamp": "1700000000",
        "webhook-signature": f"{by_hand(KEY_A, 'e-1', 1700000000, BODY)} "
        f"{by_hand(KEY_B, 'e-1', 1700000000, BODY)}",
    }
    with pytest.raises(ValueError, match="full stop"):
        signed_headers([KEY_A], "e.1", 1700000000, BODY)
    with pytest.raises(ValueError, match="at least one key"):
        signed_headers([], "e-1", 1700000000, BODY)


def test_verify_accepts_any_matching_secret_and_refuses_everything_else() -> None:
    now = int(time.time())
    both = signed_headers([KEY_A, KEY_B], "e-1", now, BODY)
    assert verify([KEY_A], both, BODY) == "e-1"
    assert verify([KEY_B], both, BODY) == "e-1"
    assert verify([b"C" * 32, KEY_B], both, BODY) == "e-1", "any of the receiver's keys"
    upper = {name.upper(): value for name, value in both.items()}
    assert verify([KEY_A], upper, BODY) == "e-1", "header names are case-insensitive"

    def refused(keys: list[bytes], headers: dict[str, str], body: bytes = BODY) -> str:
        with pytest.raises(SignatureRejected) as info:
            verify(keys, headers, body)
        return str(info.value)

    assert "matches" in refused([b"C" * 32], both)
    assert "matches" in refused([KEY_A], both, BODY + b" ")
    assert "matches" in refused([KEY_A], {**both, "webhook-id": "e-2"})
    assert "matches" in refused([KEY_A], {**both, "webhook-timestamp": str(now - 1)})
    stale = signed_headers([KEY_A], "e-1", now - 3600, BODY)
    assert "old" in refused([KEY_A], stale)
    future = signed_headers([KEY_A], "e-1", now + 3600, BODY)
    assert "future" in refused([KEY_A], future)
    assert "missing" in refused([KEY_A], {k: v for k, v in both.items() if k != "webhook-id"})
    assert "whole Unix seconds" in refused([KEY_A], {**both, "webhook-timestamp": "soon"})
    other_scheme = both["webhook-signature"].replace("v1,", "v1a,")
    assert "matches" in refused([KEY_A], {**both, "webhook-signature": other_scheme})
    assert "matches" in refused([KEY_A], {**both, "webhook-signature": "garbage"})
    # The replay window is the standard's five minutes, measured from the receiver's clock.
    assert verify([KEY_A], stale, BODY, now=now - 3600 + 299) == "e-1"


def test_secrets_are_whsec_base64_of_24_to_64_bytes() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(secret_key(secret)) == 32
    assert secret_key("whsec_" + base64.b64encode(KEY_A).decode()) == KEY_A
    for bad, reason in (
        (base64.b64encode(KEY_A).decode(), "must start with whsec_"),
        ("whsec_" + base64.urlsafe_b64encode(b"\xff" * 32).decode(), "standard base64"),
        ("whsec_" + base64.b64encode(KEY_A).decode().rstrip("="), "padded"),
        ("whsec_" + base64.b64encode(b"k" * 23).decode(), "23 bytes"),
        ("whsec_" + base64.b64encode(b"k" * 65).decode(), "65 bytes"),
    ):
        with pytest.raises(ValueError, match=reason) as info:
            secret_key(bad)
        assert bad not in str(info.value)


def test_the_standard_library_verifies_a_delivery_the_host_sent(
    signed_delivery: SignedDelivery,
) -> None:
    """A cloud using the standard's own Python package accepts what the host really sent,
    holding either of the host's two secrets alone; another secret fails."""
    delivery = signed_delivery.delivery
    assert len(delivery.headers["webhook-signature"].split(" ")) == 2
    for secret in signed_delivery.secrets:
        event = Webhook(secret).verify(delivery.body, delivery.headers)
        assert event == orjson.loads(delivery.body)
        assert event["event_id"] == delivery.headers["webhook-id"]
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(delivery.body, delivery.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signed_delivery.secrets[0]).verify(delivery.body + b" ", delivery.headers)


async def test_the_receiver_accepts_any_of_its_secrets_and_refuses_with_401(
    signed_delivery: SignedDelivery,
) -> None:
    old, new = signed_delivery.secrets
    stranger = generate_secret()
    body = b'{"type":"menu.published","event_id":"e-9"}'

    def headers(secret: str, timestamp: int | None = None) -> dict[str, str]:
        moment = int(time.time()) if timestamp is None else timestamp
        return signed_headers([secret_key(secret)], "e-9", moment, body)

    receiver = CloudReceiver([old, new])
    await receiver.start()
    try:
        async with aiohttp.ClientSession() as session:

            async def post(sent: dict[str, str]) -> int:
                async with session.post(receiver.url, data=body, headers=sent) as response:
                    return response.status

            assert await post(headers(stranger)) == 401
            assert await post(headers(old, int(time.time()) - 3600)) == 401, "a replay"
            assert await post({}) == 401
            assert receiver.events == [] and receiver.rejected == 3
            assert "old" in receiver.rejections[1]
            assert await post(headers(new)) == 204, "signed with the second secret only"
            assert await post(headers(old)) == 200, "the first secret: a repeat of e-9"
            # A delivery the host sent (with both of its secrets) passes a receiver holding one.
            one = CloudReceiver([new])
            await one.start()
            try:
                delivery = signed_delivery.delivery
                sent = {k: v for k, v in delivery.headers.items() if k.startswith("webhook-")}
                async with session.post(one.url, data=delivery.body, headers=sent) as response:
                    assert response.status == 204
            finally:
                await one.stop()
        assert [e["event_id"] for e in receiver.events] == ["e-9"]
        assert receiver.duplicates == 1
    finally:
        await receiver.stop()


def test_webhook_secret_command_prints_a_new_standard_secret() -> None:
    def run(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "posintegrator.cli", "webhook-secret", *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return result.stdout.strip()

    first, second, large = run(), run(), run("--bytes", "64")
    assert first != second
    assert len(secret_key(first)) == 32 and len(secret_key(large)) == 64
    Webhook(first)  # the standard's library takes it as it is
    refused = subprocess.run(
        [sys.executable, "-m", "posintegrator.cli", "webhook-secret", "--bytes", "16"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert refused.returncode != 0 and "24<=x<=64" in refused.stderr


async def test_events_are_signed_unique_and_in_sequence(
    demo_host: HostHarness, example_order: dict[str, Any]
) -> None:
    await demo_host.post_order(example_order)
    await demo_host.wait_for_status("demo-order-0001", {OrderStatus.COMPLETED})
    events = await demo_host.wait_for_events(
        lambda evs: "COMPLETED" in [e.get("status") for e in evs]
    )
    assert demo_host.receiver.rejected == 0
    assert len({e["event_id"] for e in events}) == len(events)
    mine = [e for e in events if e.get("order_id") == "demo-order-0001"]
    assert [e["sequence"] for e in mine] == list(range(1, len(mine) + 1))
    assert [e["status"] for e in mine][-1] == "COMPLETED"
    assert all(e["previous_status"] == p["status"] for p, e in itertools.pairwise(mine))
    menu_events = {e["location"]: e for e in events if e["type"] == "menu.published"}
    assert sorted(menu_events) == ["airport", "downtown"]
    assert menu_events["downtown"]["version"] == 1
    assert menu_events["downtown"]["diff_url"] is None, "a first version has nothing to diff"


async def test_cloud_down_then_everything_arrives_in_order(
    demo_host: HostHarness, example_order: dict[str, Any]
) -> None:
    demo_host.receiver.fail_with = 503
    await demo_host.post_order(example_order)
    await demo_host.wait_for_status("demo-order-0001", {OrderStatus.COMPLETED})
    notifier = demo_host.host.notifier

    async def failed_twice() -> bool:
        return notifier.failures >= 2

    await eventually(failed_twice)
    assert [e for e in demo_host.receiver.events if e.get("order_id")] == []
    assert await demo_host.host.store.outbox_pending() >= 6
    demo_host.receiver.fail_with = None
    await demo_host.wait_for_events(
        lambda evs: "COMPLETED" in [e.get("status") for e in evs], timeout=20
    )
    assert demo_host.receiver.statuses("demo-order-0001") == [
        "RECEIVED",
        "SUBMITTING",
        "ACCEPTED",
        "IN_PREPARATION",
        "READY",
        "COMPLETED",
    ]
    sequences = [e["sequence"] for e in demo_host.receiver.events if e.get("order_id")]
    assert sequences == sorted(sequences), "one order's events arrive in sequence order"

    async def outbox_empty() -> bool:
        return await demo_host.host.store.outbox_pending() == 0

    await eventually(outbox_empty, timeout=20)


def test_the_fast_status_event_body_is_a_valid_event() -> None:
    from datetime import UTC, datetime

    from posintegrator.cloud.events import OrderStatusChanged, order_status_changed
    from posintegrator.model import OrderStatus

    body = order_status_changed(
        event_id="e1",
        sequence=2,
        order_id="o1",
        location="downtown",
        status=OrderStatus.ACCEPTED,
        previous_status=OrderStatus.SUBMITTING,
        occurred_at=datetime(2026, 11, 29, 4, 0, tzinfo=UTC),
        reason=None,
        pos_order_id="P1",
        source="pos:demo",
    )
    event = OrderStatusChanged.model_validate(body)
    assert event.model_dump(mode="json") == body


def test_a_demo_directory_from_before_gets_a_standard_cloud_secret(tmp_path: Path) -> None:
    """The demo resumes a data directory written before the Standard Webhooks format: its plain
    cloud secret is replaced (both ends are the demo's own), the other secrets are kept."""
    old = {
        "api_token": "tok",
        "cloud_webhook_secret": "plain-old-secret",
        "pos_api_key": "key",
        "pos_webhook_secret": "pos-secret",
    }
    (tmp_path / "demo-secrets.json").write_bytes(orjson.dumps(old))
    values, _ = prepare_data_dir(tmp_path)
    assert len(secret_key(values["cloud_webhook_secret"])) == 32
    kept = {k: values[k] for k in old if k != "cloud_webhook_secret"}
    assert kept == {k: v for k, v in old.items() if k != "cloud_webhook_secret"}
    # A directory from before the dashboard also gets its operator's sign-in.
    assert set(values) - set(old) == {"ui_password", "ui_password_hash", "ui_session_secret"}
    assert orjson.loads((tmp_path / "demo-secrets.json").read_bytes()) == values
    assert prepare_data_dir(tmp_path)[0] == values, "a second run keeps the new secret"
    config = write_demo_config(
        tmp_path, 8080, values, "http://127.0.0.1:1", "http://127.0.0.1:2/hook"
    ).read_text(encoding="utf-8")
    assert f'webhook_secrets = ["{values["cloud_webhook_secret"]}"]' in config


def test_the_refund_and_the_refusal_bodies_are_valid_events() -> None:
    from datetime import UTC, datetime

    import jsonschema

    from posintegrator.cloud.events import (
        OrderCancelRefused,
        OrderStatusChanged,
        order_cancel_refused,
        order_status_changed,
    )
    from posintegrator.schemas import json_schema

    at = datetime(2026, 11, 29, 4, 0, tzinfo=UTC)
    cancelled = order_status_changed(
        event_id="e2",
        sequence=4,
        order_id="o1",
        location="downtown",
        status=OrderStatus.CANCELLED,
        previous_status=OrderStatus.ACCEPTED,
        occurred_at=at,
        reason="cancelled at the request of cloud:customer: changed mind",
        pos_order_id="P1",
        source="pos:demo",
        refund=(1990, "EUR"),
    )
    assert OrderStatusChanged.model_validate(cancelled).model_dump(mode="json") == cancelled
    assert cancelled["refund"] == {"amount": 1990, "currency": "EUR"}
    refused = order_cancel_refused(
        event_id="e3",
        sequence=5,
        order_id="o1",
        location="downtown",
        status=OrderStatus.IN_PREPARATION,
        occurred_at=at,
        reason="too late: order D-000001 is preparing",
        requested_by="cloud:customer",
        pos_order_id="P1",
        source="pos:demo",
    )
    assert OrderCancelRefused.model_validate(refused).model_dump(mode="json") == refused
    for body in (cancelled, refused):
        jsonschema.validate(body, json_schema("event"))
