"""The demo as a user runs it: start, paste the printed curl, follow the order, stop, resume."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import aiohttp
import orjson
import pytest
from demoprocess import Demo, cli, run

pytestmark = pytest.mark.skipif(
    shutil.which("curl") is None, reason="the demo prints curl commands; curl is not installed"
)


async def sign_in_to_the_printed_dashboard(demo: Demo) -> None:
    """Sign in to the dashboard with the printed name and password, and see the order."""
    line = await demo.wait_for_line(r"Dashboard")
    found = re.search(r"(http://\S+/ui/)\s+\(sign in as (\S+), password (\S+)\)", line)
    assert found, line
    url, name, password = found.groups()
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        async with session.get(url) as response:  # leads to the sign-in form
            page = await response.text()
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf, page
        form = {"csrf": csrf.group(1), "name": name, "password": password, "next": "/ui/"}
        async with session.post(url + "login", data=form) as response:
            assert response.status == 200 and "Connections and venues" in await response.text()
        async with session.get(url + "orders/demo-order-0001") as response:
            page = await response.text()
            assert response.status == 200 and "COMPLETED" in page and "Burger Menu" in page


async def test_demo_end_to_end_and_resume(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo-data"
    demo = Demo(data_dir)
    await demo.start()
    try:
        token = (await demo.wait_for_line(r"API token")).split()[-1]
        post = next(line.strip() for line in demo.lines if "-X POST" in line)
        answer = orjson.loads(await run(post))
        assert answer == {"id": "demo-order-0001", "status": "RECEIVED"}
        await demo.wait_for_line(r"cloud <- order demo-order-0001 #\d+: READY")
        await demo.wait_for_line(r"cloud <- order demo-order-0001 #\d+: COMPLETED")
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            url = (await demo.wait_for_line(r"Integrator API")).split()[-1]
            async with session.get(f"{url}/v1/orders/demo-order-0001") as response:
                view = await response.json()
            assert view["status"] == "COMPLETED" and view["pos_order_id"].startswith("D-")
            async with session.get(f"{url}/v1/locations/downtown/menu") as response:
                assert response.status == 200
                assert len((await response.json())["products"]) >= 40
        await sign_in_to_the_printed_dashboard(demo)
        config = str(data_dir / "demo.toml")
        code, out = await cli("orders", "show", "demo-order-0001", "--config", config)
        assert code == 0 and "COMPLETED" in out and "READY" in out
        code, out = await cli("menu", "show", "downtown", "--config", config, "--json")
        assert code == 0 and orjson.loads(out)["location"] == "downtown"
        code, out = await cli("orders", "show", "nope", "--config", config)
        assert code == 1 and "no order with id 'nope'" in out
        delivery = next(line.strip() for line in demo.lines if "delivery-order.json" in line)
        answer = orjson.loads(await run(delivery))
        assert answer == {"id": "demo-delivery-0001", "status": "RECEIVED"}
        await demo.wait_for_line(r"cloud <- order demo-delivery-0001 #\d+: COMPLETED")
        code, out = await cli("orders", "show", "demo-delivery-0001", "--config", config)
        assert code == 0 and "16.73 EUR" in out and "GIFT_CARD" in out
    finally:
        assert await demo.stop() == 0

    again = Demo(data_dir)
    await again.start()
    try:
        assert any("(resumed)" in line for line in again.lines)
        new_token = (await again.wait_for_line(r"API token")).split()[-1]
        assert new_token == token
        code, out = await cli(
            "orders", "show", "demo-order-0001", "--config", str(data_dir / "demo.toml"), "--json"
        )
        assert code == 0 and orjson.loads(out)["status"] == "COMPLETED"
        # The printed look into the POS works as pasted.
        look = next(line.strip() for line in again.lines if "/orders; echo" in line)
        held = orjson.loads(await run(look))["orders"]
        assert [o["reference"] for o in held] == ["demo-order-0001", "demo-delivery-0001"], (
            "the POS kept its orders"
        )
        # Pasting the same curl again gives the same answer and no second POS order.
        post = next(line.strip() for line in again.lines if "-X POST" in line)
        assert orjson.loads(await run(post)) == {"id": "demo-order-0001", "status": "RECEIVED"}
    finally:
        assert await again.stop() == 0
