"""The contract tests every POS plugin must pass.

A plugin opts in with one subclass in its own tests::

    class TestMyPosContract(PluginContract):
        plugin_name = "mypos"

        @pytest.fixture
        async def pos_backend(self, tmp_path):
            server = await start_my_test_pos(tmp_path)
            yield PosBackend(settings={"base_url": server.url}, locations=["store-1"],
                             count_orders=server.count_orders)
            await server.close()

Each test runs the real host (``posintegrator.testing.running_host``) with the plugin against
its test POS, over loopback HTTP. A test that does not apply to a plugin (no lookup capability),
or needs a part of :class:`PosBackend` the test POS does not give (a fault injector, credentials
it refuses, its webhook signing), is skipped with the reason.

This module holds the order and status flows; :mod:`posintegrator.testing.contract_robustness`
adds the static checklist, every promised hook, the error kinds under injected faults, the
reconciliation of an ambiguous submission, webhook verification, settings errors and the
secrets check; :mod:`posintegrator.testing.backend` describes the test POS.

Orders using each optional part of the model (discounts, charges, a tip, several payments,
delivery details, a table, a fiscal document) are posted too: a plugin that declares the part
in its ``order_features`` must get the order into its POS, and the host must refuse one that
uses a part the plugin does not declare, with a 422 naming the field, rather than let the part
be dropped on the way.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from pathlib import Path
from typing import Any

import pytest

from posintegrator.hooktypes import OrderFeature, features_of
from posintegrator.model import Menu, Order, OrderStatus, OrderType, can_transition
from posintegrator.model.menu_check import check_menu, errors_in
from posintegrator.orders.intake import idempotency_key
from posintegrator.testing.backend import CONNECTION, PosBackend, WebhookSigning
from posintegrator.testing.contract_robustness import RobustnessContract
from posintegrator.testing.sample_orders import sample_order, sample_order_with


class PluginContract(RobustnessContract):
    """Subclass in a plugin's tests, set :attr:`plugin_name`, and provide ``pos_backend``."""

    # --- the contract -------------------------------------------------------------------------

    async def test_menu_validates(self, tmp_path: Path, pos_backend: PosBackend) -> None:
        """Each location's menu translates into a universal menu without validation errors."""
        if not self._capabilities().menu:
            pytest.skip("the plugin does not provide menus (capabilities.menu is false)")
        async with self._host(tmp_path, pos_backend) as harness:
            for location in pos_backend.locations:
                jobs = harness.host.connections[CONNECTION]
                await jobs.menusync.sync(location)
                menu = await harness.wait_for_menu(location)
                assert menu.location == location
                assert menu.products, f"menu of {location} has no products"
                assert not errors_in(check_menu(menu))
                assert not _without_pos_id(menu), (
                    f"menu parts of {location} lack their POS id: {_without_pos_id(menu)}"
                )

    async def test_menus_of_all_locations_at_once(
        self, tmp_path: Path, pos_backend: PosBackend
    ) -> None:
        """``pos_fetch_menus`` gives every location asked for its menu, the same one
        ``pos_fetch_menu`` gives it, and the same again on the next call (when the plugin
        keeps what it read to read only the changes)."""
        async with self._host(tmp_path, pos_backend) as harness:
            conn = harness.host.connections[CONNECTION].connection
            if not conn.plugin.implements("pos_fetch_menus"):
                pytest.skip("the plugin fetches menus one location at a time (no pos_fetch_menus)")
            locations = list(pos_backend.locations)
            first = await conn.plugin.fetch_menus(conn.ctx, locations)  # checks the coverage
            by_location = {
                location: shared.menu.model_copy(update={"location": location})
                for shared in first
                for location in shared.locations
            }
            again = await conn.plugin.fetch_menus(conn.ctx, locations)
            for shared in again:
                for location in shared.locations:
                    menu = shared.menu.model_copy(update={"location": location})
                    assert menu == by_location[location], f"{location}: differs when read again"
            if conn.plugin.implements("pos_fetch_menu"):
                for location in locations:
                    single = await conn.plugin.fetch_menu(conn.ctx, location)
                    assert single.model_dump(mode="json") == by_location[location].model_dump(
                        mode="json"
                    ), f"{location}: pos_fetch_menus and pos_fetch_menu disagree"

    async def test_submit_is_idempotent(self, tmp_path: Path, pos_backend: PosBackend) -> None:
        """Submitting one order twice with its key creates it once; so does posting it twice."""
        caps = self._capabilities()
        if not caps.orders:
            pytest.skip("the plugin does not take orders (capabilities.orders is false)")
        location = pos_backend.locations[0]
        async with self._host(tmp_path, pos_backend) as harness:
            menu = await self._menu(harness, location)
            conn = harness.host.connections[CONNECTION].connection
            if caps.idempotent_submit:
                direct = Order.model_validate(sample_order(menu, f"direct-{uuid.uuid4().hex[:8]}"))
                key = idempotency_key(direct.id)
                first = await conn.plugin.submit_order(conn.ctx, direct, key)
                second = await conn.plugin.submit_order(conn.ctx, direct, key)
                assert first.pos_order_id == second.pos_order_id
                assert await pos_backend.count_orders(direct.id) == 1
            order = sample_order(menu, f"api-{uuid.uuid4().hex[:8]}")
            statuses = await asyncio.gather(harness.post_order(order), harness.post_order(order))
            assert [s for s, _ in statuses] == [202, 202]
            await harness.wait_for_status(
                order["id"],
                {
                    OrderStatus.ACCEPTED,
                    OrderStatus.IN_PREPARATION,
                    OrderStatus.READY,
                    OrderStatus.COMPLETED,
                },
                self.status_timeout,
            )
            assert await pos_backend.count_orders(order["id"]) == 1

    async def test_lookup_finds_orders(self, tmp_path: Path, pos_backend: PosBackend) -> None:
        """``pos_find_order`` finds a submitted order by our id, and answers None for others."""
        if not self._capabilities().order_lookup:
            pytest.skip("the plugin cannot look orders up (capabilities.order_lookup is false)")
        location = pos_backend.locations[0]
        async with self._host(tmp_path, pos_backend) as harness:
            menu = await self._menu(harness, location)
            conn = harness.host.connections[CONNECTION].connection
            order = Order.model_validate(sample_order(menu, f"lookup-{uuid.uuid4().hex[:8]}"))
            submitted = await conn.plugin.submit_order(conn.ctx, order, idempotency_key(order.id))
            found = await conn.plugin.find_order(conn.ctx, order.id, location)
            assert found is not None and found.pos_order_id == submitted.pos_order_id
            assert (
                await conn.plugin.find_order(conn.ctx, f"missing-{uuid.uuid4().hex}", location)
                is None
            )

    @pytest.mark.parametrize("status_source", ["webhook", "polling"])
    async def test_status_maps_and_never_regresses(
        self, tmp_path: Path, pos_backend: PosBackend, status_source: str
    ) -> None:
        """Status reaches the cloud in the vocabulary, in sequence, and only ever forward."""
        caps = self._capabilities()
        if not caps.orders:
            pytest.skip("the plugin does not take orders (capabilities.orders is false)")
        if status_source == "webhook" and not caps.status_webhooks:
            pytest.skip("the plugin has no status webhooks (capabilities.status_webhooks is false)")
        if status_source == "polling" and not caps.status_polling:
            pytest.skip("the plugin cannot poll status (capabilities.status_polling is false)")
        location = pos_backend.locations[0]
        async with self._host(tmp_path, pos_backend, status_source) as harness:
            menu = await self._menu(harness, location)
            order = sample_order(menu, f"status-{status_source}-{uuid.uuid4().hex[:8]}")
            status, body = await harness.post_order(order)
            assert status == 202, body
            await harness.wait_for_status(order["id"], {OrderStatus.COMPLETED}, self.status_timeout)
            order_id = order["id"]

            def completed(events: list[dict[str, Any]]) -> bool:
                return any(
                    e.get("order_id") == order_id and e["status"] == "COMPLETED" for e in events
                )

            events = await harness.wait_for_events(completed)
            mine = [e for e in events if e.get("order_id") == order["id"]]
            assert [e["sequence"] for e in mine] == list(range(1, len(mine) + 1))
            seen = [OrderStatus(e["status"]) for e in mine]
            assert seen[0] == OrderStatus.RECEIVED
            for before, after in itertools.pairwise(seen):
                assert can_transition(before, after), f"{before} -> {after} goes backwards"
            assert OrderStatus.ACCEPTED in seen or OrderStatus.IN_PREPARATION in seen

    @pytest.mark.parametrize("feature", list(OrderFeature), ids=lambda f: f.value)
    async def test_order_parts_reach_the_pos_or_are_refused(
        self, tmp_path: Path, pos_backend: PosBackend, feature: OrderFeature
    ) -> None:
        """An order using ``feature`` reaches the POS when the plugin declares it, and is
        refused with a 422 naming the field when it does not (never silently dropped)."""
        caps = self._capabilities()
        if not caps.orders:
            pytest.skip("the plugin does not take orders (capabilities.orders is false)")
        location = pos_backend.locations[0]
        async with self._host(tmp_path, pos_backend) as harness:
            menu = await self._menu(harness, location)
            order = sample_order_with(menu, f"{feature.value}-{uuid.uuid4().hex[:8]}", feature)
            status, body = await harness.post_order(order)
            refused_for = [field for _, field in _uses(order, feature)]
            if OrderType(order["type"]) not in caps.order_types:
                refused_for = ["type"]
            elif feature in caps.order_features:
                refused_for = []
            if refused_for:
                assert status == 422, body
                named = [e["field"] for e in body["errors"]]
                assert set(refused_for) & set(named), (refused_for, body)
                assert await pos_backend.count_orders(order["id"]) == 0
                return
            assert status == 202, body
            await harness.wait_for_status(
                order["id"],
                {
                    OrderStatus.ACCEPTED,
                    OrderStatus.IN_PREPARATION,
                    OrderStatus.READY,
                    OrderStatus.COMPLETED,
                },
                self.status_timeout,
            )
            assert await pos_backend.count_orders(order["id"]) == 1

    async def test_cancellation_is_answered_honestly(
        self, tmp_path: Path, pos_backend: PosBackend
    ) -> None:
        """A cancellation of an order the POS has ends in CANCELLED (with the refund of what
        was prepaid) or in an ``order.cancel_refused`` event, next in the order's sequence; an
        order the kitchen has not started must be cancelled."""
        caps = self._capabilities()
        if not caps.orders or not caps.order_cancel:
            pytest.skip("the plugin cannot cancel orders (capabilities.order_cancel is false)")
        location = pos_backend.locations[0]
        async with self._host(tmp_path, pos_backend) as harness:
            menu = await self._menu(harness, location)
            if pos_backend.hold_orders is not None:
                await pos_backend.hold_orders(True)
            try:
                order = sample_order(menu, f"cancel-{uuid.uuid4().hex[:8]}")
                status, body = await harness.post_order(order)
                assert status == 202, body
                await harness.wait_for_status(
                    order["id"],
                    {OrderStatus.ACCEPTED, OrderStatus.IN_PREPARATION, OrderStatus.READY},
                    self.status_timeout,
                )
                status, body = await harness.request(
                    "POST",
                    f"/v1/orders/{order['id']}/cancel",
                    {"requested_by": "platform", "reason": "conformance kit"},
                )
                if status == 409 and pos_backend.hold_orders is None:
                    return  # the order was completed first: nothing left to cancel
                assert status == 202, body

                def answered(_events: list[dict[str, Any]]) -> bool:
                    mine = harness.receiver.order_events(order["id"])
                    return bool(mine) and (
                        mine[-1]["type"] == "order.cancel_refused"
                        or mine[-1]["status"] == OrderStatus.CANCELLED
                    )

                await harness.wait_for_events(answered, self.status_timeout)
            finally:
                if pos_backend.hold_orders is not None:
                    await pos_backend.hold_orders(False)
            mine = harness.receiver.order_events(order["id"])
            assert [e["sequence"] for e in mine] == list(range(1, len(mine) + 1))
            last = mine[-1]
            if pos_backend.hold_orders is not None:
                assert last["type"] == "order.status_changed", "an unstarted order is cancelled"
            if last["type"] == "order.status_changed":
                assert last["refund"] == {"amount": order["total"], "currency": menu.currency}
            else:
                assert last["reason"], "a refusal says why"
            assert await pos_backend.count_orders(order["id"]) == 1


def _without_pos_id(menu: Menu) -> list[str]:
    """The parts of ``menu`` an order would name to the POS that carry no POS id."""
    missing = [f"product {p.id}" for p in menu.products if not p.pos_id]
    missing += [f"category {c.id}" for c in menu.categories if not c.pos_id]
    missing += [f"modifier group {g.id}" for g in menu.modifier_groups if not g.pos_id]
    missing += [
        f"option {o.id} of {g.id}" for g in menu.modifier_groups for o in g.options if not o.pos_id
    ]
    return missing


def _uses(order: dict[str, Any], feature: OrderFeature) -> list[tuple[OrderFeature, str]]:
    """The fields of ``order`` that use ``feature``, as the host names them in a refusal."""
    return [(f, field) for f, field in features_of(Order.model_validate(order)) if f == feature]


__all__ = ["PluginContract", "PosBackend", "WebhookSigning"]
