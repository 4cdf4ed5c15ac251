"""An operator's day in the dashboard, in headless Chromium: sign in, find what needs a person,
act on it, watch the order move; browse a menu and what changed; and the refusals (a viewer
cannot act, a forged form is turned away)."""

from __future__ import annotations

import asyncio
import copy
from datetime import timedelta
from typing import Any

import orjson
from dashsite import PASSWORDS, ROOT, Site
from playwright.async_api import expect

from posintegrator.model import OrderStatus, utcnow
from posintegrator.testing import one_product_menu, sample_order


def example_order(order_id: str, **changes: Any) -> dict[str, Any]:
    order: dict[str, Any] = copy.deepcopy(
        orjson.loads((ROOT / "examples" / "order.json").read_bytes())
    )
    order.update(id=order_id, **changes)
    return order


async def wait_until(predicate: Any, what: str, timeout: float = 60.0) -> None:
    """Poll ``predicate`` (an async callable) until it is true."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_a_failing_order_is_retried_from_the_dashboard_and_completes(site: Site) -> None:
    harness = site.harness
    # The POS answers every new order with 503: deliveries fail and are retried with backoff.
    site.simulator.config.faults.update({"fail_5xx": 1.0, "paths": ["/orders"]})
    soon = (utcnow() + timedelta(seconds=3)).isoformat()
    assert (await harness.post_order(example_order("late-1", pickup_time=soon)))[0] == 202
    assert (await harness.post_order(example_order("stuck-1")))[0] == 202
    store = harness.host.store

    async def failed_and_failing() -> bool:
        late, stuck = await store.get_order("late-1"), await store.get_order("stuck-1")
        return (
            late is not None
            and late.status == OrderStatus.FAILED
            and stuck is not None
            and stuck.last_error is not None
        )

    await wait_until(failed_and_failing, "late-1 FAILED at its pickup time, stuck-1 failing")

    await site.sign_in("ops")
    page = site.page
    await page.get_by_role("link", name="Needs a person").click()
    failing = page.locator("section").filter(has=page.locator("#failing-h"))
    failed = page.locator("section").filter(has=page.locator("#failed-h"))
    await expect(failing.get_by_role("link", name="stuck-1")).to_be_visible()
    await expect(failing).to_contain_text("Last error: ")
    await expect(failed.get_by_role("link", name="late-1")).to_be_visible()
    await expect(failed).to_contain_text("could not reach the POS before its deadline")
    # A failed order is final: nothing to act on.
    await expect(failed.get_by_text("Act on late-1")).to_have_count(0)
    await site.screenshot("attention")

    await failing.get_by_text("Act on stuck-1").click()
    retry = failing.locator("form[action$='/retry']")
    await retry.get_by_label("Note").fill("POS restarted by the venue manager")

    async def next_attempt_far_off() -> bool:
        stuck = await store.get_order("stuck-1")
        assert stuck is not None and stuck.next_attempt_at is not None
        return (stuck.next_attempt_at - utcnow()).total_seconds() >= 10

    # Once the backoff has grown, the host will not try again on its own for a while...
    await wait_until(next_attempt_far_off, "a backoff of 10 s or more for stuck-1")
    # ...so when the POS is back, it is the operator's retry that sends the order at once.
    site.simulator.config.faults.update({"fail_5xx": 0.0})
    due = (await store.get_order("stuck-1")).next_attempt_at  # type: ignore[union-attr]
    await retry.get_by_role("button", name="Retry").click()
    await expect(page.get_by_role("status")).to_have_text("Sent to the POS again.")
    # Back on the order page: it refreshes itself until the kitchen has handed it over.
    await page.goto(f"{site.base}/orders/stuck-1")
    status = page.locator("dl.facts .badge").first
    await expect(status).to_have_text("COMPLETED", timeout=60_000)
    timeline = page.locator("ol.timeline")
    await expect(timeline).to_contain_text("retry")
    await expect(timeline).to_contain_text("operator:ops")
    await expect(timeline).to_contain_text("POS restarted by the venue manager")
    await expect(timeline.locator("li.t-attempt.t-bad").first).to_be_visible()
    await expect(timeline).to_contain_text("to the cloud")
    accepted = [a for a in await store.attempts_of("stuck-1") if a.outcome == "ACCEPTED"]
    assert due is not None and accepted and accepted[0].started_at < due, (
        "sent by the operator's retry, before the backoff would have sent it"
    )
    await expect(page.locator("table.lines")).to_contain_text("Burger Menu")
    await expect(page.locator("table.lines tfoot")).to_contain_text("19.90 EUR")
    await site.screenshot("order")


async def test_a_parked_order_is_marked_found_with_its_pos_id(site: Site) -> None:
    harness = site.harness
    order = sample_order(one_product_menu("kiosk"), "parked-1")
    assert (await harness.post_order(order))[0] == 202
    await harness.wait_for_status("parked-1", {OrderStatus.NEEDS_ATTENTION})
    pos_id = site.fake.orders["parked-1"]

    await site.sign_in("ops")
    page = site.page
    await page.goto(f"{site.base}/attention")
    parked = page.locator("section").filter(has=page.locator("#parked-h"))
    await expect(parked.get_by_role("link", name="parked-1")).to_be_visible()
    await parked.get_by_role("link", name="parked-1").click()
    found = page.locator("form[action$='/found']")
    await found.get_by_label("POS order id").fill(pos_id)
    await found.get_by_label("Note").fill("on the kitchen screen")
    await found.get_by_role("button", name="Found").click()
    await expect(page.get_by_role("status")).to_have_text("Marked as found in the POS.")
    await expect(page.locator("dl.facts .badge").first).to_have_text("ACCEPTED")
    await expect(page.locator("dl.facts")).to_contain_text(pos_id)
    view = await harness.order("parked-1")
    actions = [h for h in view["history"] if h["source"] == "operator:ops"]
    assert actions and actions[0]["note"] == "action: found in the POS"
    assert actions[0]["reason"] == "on the kitchen screen"
    assert len(site.fake.submissions) == 1, "found, never sent twice"


async def test_search_orders_then_browse_a_menu_and_its_diff(site: Site) -> None:
    harness = site.harness
    assert (await harness.post_order(example_order("menu-order-1")))[0] == 202
    # The POS 86's the shakes: a new menu version.
    site.simulator.set_availability("downtown", item="vanilla_shake", available=False)

    async def second_version() -> bool:
        live = await harness.host.live_menus.get("downtown")
        return live is not None and live.snapshot.version >= 2

    await wait_until(second_version, "menu version 2 of downtown")

    await site.sign_in("ops")
    page = site.page
    await site.screenshot("overview")
    await expect(page.get_by_role("heading", name="Connections and venues")).to_be_visible()
    await expect(page.locator("#conn-demo")).to_be_visible()

    await page.get_by_role("link", name="Orders", exact=True).click()
    await page.get_by_label("Order id or POS id contains").fill("menu-order")
    await page.get_by_label("Location").select_option("downtown")
    await page.get_by_role("button", name="Search").click()
    await expect(page.get_by_role("link", name="menu-order-1")).to_be_visible()
    await site.screenshot("orders")
    await page.get_by_label("Location").select_option("airport")
    await page.get_by_role("button", name="Search").click()
    await expect(page.get_by_text("No order matches.")).to_be_visible()

    await page.get_by_role("link", name="Menus").click()
    await page.get_by_role("link", name="downtown").click()
    await expect(page.get_by_role("heading", name="Menu of downtown")).to_be_visible()
    unavailable = page.locator("section").filter(has=page.locator("#avail-h"))
    await expect(unavailable).to_contain_text("Vanilla Shake")
    burgers = page.locator("details:has(> summary:has-text('Burgers'))").first
    await burgers.locator("> summary").click()  # open the category
    await expect(
        burgers.locator("li.product strong", has_text="Cheeseburger").first
    ).to_be_visible()
    await site.screenshot("menu")

    await page.get_by_role("button", name="Compare").click()
    await expect(
        page.get_by_role("heading", name="Menu of downtown: version 1 → 2")
    ).to_be_visible()
    changed = page.locator("li.changed").filter(has_text="Vanilla Shake")
    await expect(changed.locator("table.changes")).to_contain_text("availability")
    # Before: available; after: not.
    await expect(changed.locator("table.changes td").nth(0)).to_contain_text(
        "available yes", use_inner_text=True
    )
    await expect(changed.locator("table.changes td").nth(1)).to_contain_text(
        "available no", use_inner_text=True
    )
    await site.screenshot("diff")


async def test_a_viewer_sees_no_actions_and_a_forged_form_is_refused(site: Site) -> None:
    harness = site.harness
    order = sample_order(one_product_menu("kiosk"), "parked-2")
    assert (await harness.post_order(order))[0] == 202
    await harness.wait_for_status("parked-2", {OrderStatus.NEEDS_ATTENTION})

    await site.sign_in("viewer")
    page = site.page
    await page.goto(f"{site.base}/attention")
    await expect(page.get_by_role("link", name="parked-2")).to_be_visible()
    await expect(page.locator("form.action")).to_have_count(0)
    await page.goto(f"{site.base}/orders/parked-2")
    await expect(page.get_by_text("you can look but not act")).to_be_visible()
    await expect(page.locator("form.action")).to_have_count(0)
    # Even with a genuine session and token, a viewer's post is refused.
    csrf = await page.locator("input[name=csrf]").first.input_value()
    answer = await page.request.post(
        f"{site.base}/orders/parked-2/missing", form={"csrf": csrf, "note": "sneaky"}
    )
    assert answer.status == 403

    # A page of another site posts to the dashboard with the signed-in browser: refused, as
    # the cookie does not travel (SameSite=Strict) and no CSRF token comes with it.
    await site.sign_out()
    await site.sign_in("ops")
    forged = (
        f'<form id="f" method="post" action="{site.base}/orders/parked-2/missing">'
        '<input name="note" value="forged"></form>'
        "<script>document.getElementById('f').submit()</script>"
    )
    await page.route(
        "http://evil.example/", lambda route: route.fulfill(body=forged, content_type="text/html")
    )
    async with page.expect_navigation():
        await page.goto("http://evil.example/")
    await expect(page.get_by_role("heading", name="Form refused")).to_be_visible()
    view = await harness.order("parked-2")
    assert view["status"] == "NEEDS_ATTENTION", "the forged form changed nothing"
    assert not [h for h in view["history"] if h["source"].startswith("operator:")]


async def test_on_a_phone_and_with_the_keyboard(site: Site) -> None:
    assert (await site.harness.post_order(example_order("phone-1")))[0] == 202
    await site.harness.wait_for_status("phone-1", {OrderStatus.COMPLETED}, timeout=60)
    page = site.page
    # Signing in with the keyboard alone: the name field has the focus, Tab goes on.
    await page.goto(f"{site.base}/")
    await expect(page.get_by_label("Name")).to_be_focused()
    await page.keyboard.type("ops")
    await page.keyboard.press("Tab")
    await page.keyboard.type(PASSWORDS["ops"])
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    # On every page the first Tab reaches the link that skips the navigation.
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("main")).to_be_focused()

    # An open page updates itself: a new order appears in the list without a reload.
    await page.goto(f"{site.base}/orders")
    await expect(page.get_by_role("link", name="phone-1")).to_be_visible()
    await expect(page.locator("#refresh")).to_be_visible()
    await page.evaluate("window.notReloaded = true")
    assert (await site.harness.post_order(example_order("phone-2")))[0] == 202
    await expect(page.get_by_role("link", name="phone-2")).to_be_visible()
    assert await page.evaluate("window.notReloaded === true"), "the page was reloaded"
    # Pages that do not update do not say they do.
    await page.goto(f"{site.base}/menus/downtown/diff?from=1&to=1")
    await expect(page.locator("#refresh")).to_be_hidden()

    await page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/", "/attention", "/orders", "/orders/phone-1", "/menus/downtown"):
        await page.goto(site.base + path)
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} is wider than a phone's screen by {overflow} px"
    await page.goto(f"{site.base}/orders/phone-1")
    await expect(page.locator("dl.facts .badge").first).to_have_text("COMPLETED")
    await site.screenshot("phone-order")
