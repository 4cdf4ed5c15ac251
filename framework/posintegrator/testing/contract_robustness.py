"""The conformance kit's checks of how a plugin fails, verifies and keeps secrets.

Part of :class:`posintegrator.testing.contract.PluginContract` (a plugin opts into all of it with
one subclass). The POS failures are real ones: the fault injector in front of the plugin's own
test POS (``PosBackend.faults``) answers 5xx, 429 or nothing at all, and the plugin must turn each
into the error kind the host acts on. A test the plugin's capabilities or test POS make
inapplicable is skipped with the reason, which ``pytest -rs`` shows.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from loguru import logger
from pydantic import BaseModel, SecretStr

from posintegrator.errors import (
    AmbiguousError,
    AuthError,
    PluginBugError,
    RetryableError,
    WebhookRejected,
)
from posintegrator.hooktypes import Capabilities, InboundWebhook, TrackedOrder
from posintegrator.model import Menu, Order, OrderStatus
from posintegrator.orders.intake import idempotency_key
from posintegrator.runtime.connection import Connection
from posintegrator.settings import ConnectionSettings
from posintegrator.testing.backend import CONNECTION, ContractBase, PosBackend
from posintegrator.testing.checklist import Outcome, check_plugin, render
from posintegrator.testing.faults import FaultInjector, FaultPlan
from posintegrator.testing.harness import HostHarness
from posintegrator.testing.sample_orders import one_product_menu, sample_order

#: Statuses that say the POS has the order.
IN_POS = {
    OrderStatus.ACCEPTED,
    OrderStatus.IN_PREPARATION,
    OrderStatus.READY,
    OrderStatus.COMPLETED,
}
#: Shorter values could turn up in a log line by chance.
SHORTEST_SECRET = 6


class RobustnessContract(ContractBase):
    """Static checks, every promised hook, error kinds, webhooks, settings errors, secrets."""

    def test_static_checklist_passes(self) -> None:
        """Every item of ``posintegrator plugins check`` passes (entry point, version ranges,
        hooks, settings model, capabilities)."""
        assert self.plugin_name, "set plugin_name on the PluginContract subclass"
        items = check_plugin(self.plugin_name)
        failed = [item for item in items if item.outcome is Outcome.FAILED]
        assert not failed, render(self.plugin_name, items)

    async def test_every_promised_hook_answers(
        self, tmp_path: Path, pos_backend: PosBackend
    ) -> None:
        """Each hook the capabilities promise is called once against the test POS and answers
        with the type its specification names."""
        pos = self._plugins().pos(self.plugin_name)
        caps = pos.capabilities()
        promised = {hook for hook, declared in pos.promised_hooks(caps).items() if declared}
        if "pos_parse_webhook" in promised:
            assert pos_backend.webhooks is not None, (
                "the plugin promises status webhooks: describe how its test POS signs them "
                "(PosBackend.webhooks) so the kit can call pos_parse_webhook"
            )
        called: set[str] = set()
        location = pos_backend.locations[0]
        async with self._host(tmp_path, pos_backend) as harness:
            conn = _connection(harness)
            if "pos_fetch_menu" in promised:
                for each in pos_backend.locations:
                    assert (await conn.plugin.fetch_menu(conn.ctx, each)).location == each
                called.add("pos_fetch_menu")
            if caps.orders:
                menu = await self._orderable_menu(harness, caps, location)
                order = Order.model_validate(sample_order(menu, f"hooks-{uuid.uuid4().hex[:8]}"))
                key = idempotency_key(order.id)
                submitted = await conn.plugin.submit_order(conn.ctx, order, key)
                called.add("pos_submit_order")
                if caps.order_lookup:
                    found = await conn.plugin.find_order(conn.ctx, order.id, location)
                    assert found is not None, "pos_find_order misses an order just submitted"
                    assert found.pos_order_id == submitted.pos_order_id
                    called.add("pos_find_order")
                if caps.status_polling:
                    tracked = TrackedOrder(
                        order_id=order.id,
                        pos_order_id=submitted.pos_order_id,
                        location=location,
                        status=submitted.status,
                    )
                    await conn.plugin.poll_status(conn.ctx, [tracked])
                    called.add("pos_poll_status")
                if caps.order_cancel:
                    await conn.plugin.cancel_order(
                        conn.ctx, order.id, submitted.pos_order_id, location, "conformance kit"
                    )
                    called.add("pos_cancel_order")
            if caps.status_webhooks and pos_backend.webhooks is not None:
                signing = pos_backend.webhooks
                url = conn.ctx.webhook_url
                headers = signing.sign(url, signing.body, signing.secret)
                await conn.plugin.parse_webhook(
                    conn.ctx, InboundWebhook(url=url, headers=headers, body=signing.body)
                )
                called.add("pos_parse_webhook")
        assert called == promised

    async def test_webhooks_are_verified(self, tmp_path: Path, pos_backend: PosBackend) -> None:
        """A genuine webhook is read; a forged, an altered and an unsigned one are refused."""
        if not self._capabilities().status_webhooks:
            pytest.skip("the plugin has no status webhooks (capabilities.status_webhooks is false)")
        if pos_backend.webhooks is None:
            pytest.skip("the test POS does not say how it signs webhooks (PosBackend.webhooks)")
        signing = pos_backend.webhooks
        async with self._host(tmp_path, pos_backend) as harness:
            conn = _connection(harness)
            url = conn.ctx.webhook_url
            genuine = signing.sign(url, signing.body, signing.secret)
            await conn.plugin.parse_webhook(
                conn.ctx, InboundWebhook(url=url, headers=genuine, body=signing.body)
            )
            forged = signing.sign(url, signing.body, "forged-" + signing.secret)
            unsigned = {k: v for k, v in genuine.items() if k.lower() == "content-type"}
            attempts = {
                "forged": InboundWebhook(url=url, headers=forged, body=signing.body),
                "altered": InboundWebhook(url=url, headers=genuine, body=signing.body + b" "),
                "unsigned": InboundWebhook(url=url, headers=unsigned, body=signing.body),
            }
            for what, request in attempts.items():
                with pytest.raises(WebhookRejected):
                    await conn.plugin.parse_webhook(conn.ctx, request)
                    pytest.fail(f"an {what} webhook was accepted")

    async def test_settings_errors_name_the_field(
        self, tmp_path: Path, pos_backend: PosBackend
    ) -> None:
        """A missing required setting and an unknown one are each reported at their path in
        the settings file, without repeating any secret."""
        plugins = self._plugins()
        model = plugins.pos(self.plugin_name).settings_model()
        secrets = _secrets(model, pos_backend)
        cases: dict[str, dict[str, Any]] = {
            name: {k: v for k, v in pos_backend.settings.items() if k != name}
            for name, info in model.model_fields.items()
            if info.is_required()
        }
        cases["no_such_setting"] = {**pos_backend.settings, "no_such_setting": "x"}
        for field, settings in cases.items():
            connection = ConnectionSettings(
                name=CONNECTION,
                plugin=self.plugin_name,
                locations=pos_backend.locations,
                settings=settings,
            )
            _, problems = plugins.validate_connection(0, connection)
            paths = [problem.path for problem in problems]
            assert f"connections[0].settings.{field}" in paths, (field, problems)
            for problem in problems:
                assert not any(secret in problem.message for secret in secrets), problem

    async def test_pos_failures_map_to_retryable(
        self, tmp_path: Path, pos_backend: PosBackend
    ) -> None:
        """A POS answering 5xx, or 429 with ``Retry-After``, is a RetryableError (the pause
        kept), never a plugin bug."""
        faults = _faults(pos_backend)
        caps = self._capabilities()
        async with self._host(tmp_path, pos_backend) as harness:
            read = _read_call(_connection(harness), caps, pos_backend.locations[0])
            with _faulty(faults, fail_5xx=1.0, methods=("GET", "POST")):
                with pytest.raises(RetryableError) as failed:
                    await read()
                assert not isinstance(failed.value, PluginBugError), failed.value
            with _faulty(faults, fail_429=1.0, retry_after_seconds=13, methods=("GET", "POST")):
                with pytest.raises(RetryableError) as limited:
                    await read()
                assert not isinstance(limited.value, PluginBugError), limited.value
                assert limited.value.retry_after == 13
            assert faults.counts["fail_5xx"] >= 1 and faults.counts["fail_429"] >= 1

    async def test_refused_credentials_are_an_auth_error(
        self, tmp_path: Path, pos_backend: PosBackend
    ) -> None:
        """Credentials the POS refuses give an AuthError that does not repeat them."""
        if not pos_backend.wrong_credentials:
            pytest.skip("the test POS names no credentials it refuses (wrong_credentials)")
        caps = self._capabilities()
        settings = {**pos_backend.settings, **pos_backend.wrong_credentials}
        async with self._host(tmp_path, pos_backend, settings=settings) as harness:
            read = _read_call(_connection(harness), caps, pos_backend.locations[0])
            with pytest.raises(AuthError) as refused:
                await read()
        for value in pos_backend.wrong_credentials.values():
            assert str(value) not in str(refused.value)

    async def test_lost_answer_to_an_order_is_ambiguous(
        self, tmp_path: Path, pos_backend: PosBackend
    ) -> None:
        """An order the POS created but whose answer was lost is an AmbiguousError."""
        caps = self._capabilities()
        if not caps.orders:
            pytest.skip("the plugin does not take orders (capabilities.orders is false)")
        faults = _faults(pos_backend)
        location = pos_backend.locations[0]
        async with self._host(tmp_path, pos_backend) as harness:
            conn = _connection(harness)
            menu = await self._orderable_menu(harness, caps, location)
            order = Order.model_validate(sample_order(menu, f"lost-{uuid.uuid4().hex[:8]}"))
            with (
                _faulty(faults, commit_then_drop=1.0, methods=("POST",)),
                pytest.raises(AmbiguousError),
            ):
                await conn.plugin.submit_order(conn.ctx, order, idempotency_key(order.id))
            assert await pos_backend.count_orders(order.id) == 1

    async def test_ambiguous_submission_is_reconciled_without_a_second_order(
        self, tmp_path: Path, pos_backend: PosBackend
    ) -> None:
        """The host, told the outcome of a submission is unknown, settles it through the
        plugin (lookup, or a resend the POS deduplicates) and the POS ends up with one order;
        a plugin with neither parks the order for a person instead of sending it again."""
        caps = self._capabilities()
        if not caps.orders:
            pytest.skip("the plugin does not take orders (capabilities.orders is false)")
        faults = _faults(pos_backend)
        location = pos_backend.locations[0]
        async with self._host(tmp_path, pos_backend) as harness:
            menu = await self._orderable_menu(harness, caps, location)
            order = sample_order(menu, f"ambiguous-{uuid.uuid4().hex[:8]}")
            with _faulty(faults, commit_then_drop=1.0, methods=("POST",)):
                status, body = await harness.post_order(order)
                assert status == 202, body
                await _eventually(lambda: _has(pos_backend, order["id"]), self.status_timeout)
            assert faults.counts["commit_then_drop"] >= 1
            wanted = (
                IN_POS
                if caps.order_lookup or caps.idempotent_submit
                else {OrderStatus.NEEDS_ATTENTION}
            )
            await harness.wait_for_status(order["id"], wanted, self.status_timeout)
            assert await pos_backend.count_orders(order["id"]) == 1

    async def test_no_secret_in_any_log_line(self, tmp_path: Path, pos_backend: PosBackend) -> None:
        """Nothing the host or the plugin logs, at any level and through failures, holds a
        secret of the connection's settings."""
        caps = self._capabilities()
        model = self._plugins().pos(self.plugin_name).settings_model()
        secrets = _secrets(model, pos_backend)
        if not secrets:
            pytest.skip("the plugin's settings hold no secret (no SecretStr field is set)")
        lines: list[str] = []
        sink = logger.add(lines.append, level=0, format="{level} {message} {extra}")
        try:
            await self._exercise(tmp_path, pos_backend, caps)
        finally:
            logger.remove(sink)
        assert lines, "nothing was logged: the sink saw no line to check"
        leaked = [line for line in lines if any(secret in line for secret in secrets)]
        assert not leaked, leaked[:3]

    async def _exercise(self, tmp_path: Path, backend: PosBackend, caps: Capabilities) -> None:
        """Run the plugin through its paths, failures included, for the log check."""
        location = backend.locations[0]
        (tmp_path / "good").mkdir()
        async with self._host(tmp_path / "good", backend) as harness:
            menu = await self._orderable_menu(harness, caps, location)
            if caps.orders:
                order = sample_order(menu, f"logs-{uuid.uuid4().hex[:8]}")
                status, body = await harness.post_order(order)
                assert status == 202, body
                await harness.wait_for_status(order["id"], IN_POS, self.status_timeout)
            conn = _connection(harness)
            if caps.status_webhooks and backend.webhooks is not None:
                signing = backend.webhooks
                forged = signing.sign(conn.ctx.webhook_url, signing.body, "forged")
                status, _ = await _post_webhook(harness, conn, forged, signing.body)
                assert status >= 400
            if backend.faults is not None:
                with (
                    _faulty(backend.faults, fail_5xx=1.0, methods=("GET", "POST")),
                    pytest.raises(RetryableError),
                ):
                    await _read_call(conn, caps, location)()
        if backend.wrong_credentials:
            settings = {**backend.settings, **backend.wrong_credentials}
            (tmp_path / "refused").mkdir()
            async with self._host(tmp_path / "refused", backend, settings=settings) as harness:
                with pytest.raises(AuthError):
                    await _read_call(_connection(harness), caps, location)()

    async def _orderable_menu(
        self, harness: HostHarness, caps: Capabilities, location: str
    ) -> Menu:
        """The live menu to order from (a one-product menu for a plugin without menus)."""
        if caps.menu:
            return await self._menu(harness, location)
        return one_product_menu(location)


def _connection(harness: HostHarness) -> Connection:
    return harness.host.connections[CONNECTION].connection


def _faults(backend: PosBackend) -> FaultInjector:
    if backend.faults is None:
        pytest.skip("the test POS has no fault injector in front of it (PosBackend.faults)")
    return backend.faults


@contextmanager
def _faulty(faults: FaultInjector, **plan: Any) -> Iterator[None]:
    """Apply a fault plan for the block, then restore the one before."""
    before = asdict(faults.plan)
    faults.plan.update({**asdict(FaultPlan()), **plan})
    try:
        yield
    finally:
        faults.plan.update(before)


def _read_call(conn: Connection, caps: Capabilities, location: str) -> Callable[[], Awaitable[Any]]:
    """A request to the POS that changes nothing, through the plugin's promised hooks."""
    if caps.menu:
        return lambda: conn.plugin.fetch_menu(conn.ctx, location)
    if caps.order_lookup:
        return lambda: conn.plugin.find_order(conn.ctx, f"kit-{uuid.uuid4().hex}", location)
    if caps.status_polling:
        tracked = TrackedOrder(
            order_id="kit-probe", pos_order_id=None, location=location, status=OrderStatus.ACCEPTED
        )
        return lambda: conn.plugin.poll_status(conn.ctx, [tracked])
    pytest.skip("the plugin has no hook that reads from the POS (menu, lookup or polling)")


def _secrets(model: type[BaseModel], backend: PosBackend) -> list[str]:
    """The secret values in the backend's settings (and the refused credentials)."""
    values = model.model_validate(backend.settings)
    found = [
        value.get_secret_value()
        for value in (getattr(values, name) for name in type(values).model_fields)
        if isinstance(value, SecretStr)
    ]
    found += [str(v) for v in backend.wrong_credentials.values()]
    return [secret for secret in found if len(secret) >= SHORTEST_SECRET]


async def _has(backend: PosBackend, order_id: str) -> bool:
    return await backend.count_orders(order_id) >= 1


async def _eventually(condition: Callable[[], Awaitable[bool]], timeout: float) -> None:
    """Wait until ``condition()`` holds; fail after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.05)


async def _post_webhook(
    harness: HostHarness, conn: Connection, headers: Any, body: bytes
) -> tuple[int, bytes]:
    """POST a webhook to the host's route for the connection, as the POS would."""
    async with harness.client.post(conn.ctx.webhook_url, data=body, headers=headers) as response:
        return response.status, await response.read()
