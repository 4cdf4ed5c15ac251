"""The operator dashboard over HTTP (its browser tests are in tests/browser): who may see and do
what, sessions and forms that cannot be forged, and the pages' content against a real host."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from fakepos import ScriptedPos, commit_then
from helpers import eventually, fake_host_plugins
from pydantic import SecretStr
from test_streams import refuse_submitting_of

from pos_demo.simulator import RunningSimulator
from posintegrator.errors import AmbiguousError
from posintegrator.hooktypes import Capabilities
from posintegrator.model import OrderStatus
from posintegrator.settings import (
    ConnectionSettings,
    SettingsError,
    UiSettings,
    UiUser,
    load_settings,
)
from posintegrator.testing import HostHarness, one_product_menu, running_host, sample_order
from posintegrator.ui.auth import COOKIE, Authenticator, Session, TooManyAttempts
from posintegrator.ui.passwords import hash_password, parse_hash, verify_password

PASSWORD = "a-long-enough-password"
BLIND = Capabilities(
    menu=True,
    orders=True,
    order_lookup=False,
    idempotent_submit=False,
    status_webhooks=False,
    status_polling=True,
)


@pytest.fixture(scope="module")
def password_hash() -> str:
    return hash_password(PASSWORD)


def users(password_hash: str) -> list[UiUser]:
    return [
        UiUser(name="dana", password_hash=SecretStr(password_hash)),
        UiUser(name="vic", password_hash=SecretStr(password_hash), role="viewer"),
    ]


@asynccontextmanager
async def parked_host(tmp_path: Path, ui: UiSettings) -> AsyncIterator[HostHarness]:
    """A host whose scripted POS parks order ``p-1`` as NEEDS_ATTENTION."""
    fake = ScriptedPos(capabilities=BLIND, outcomes=[commit_then(AmbiguousError("timeout"))])
    connection = ConnectionSettings(
        name="fake", plugin="fake", locations=["loc"], status_source="polling"
    )
    async with running_host(
        tmp_path, [connection], plugins=fake_host_plugins(fake), ui=ui
    ) as harness:
        assert (await harness.post_order(sample_order(one_product_menu("loc"), "p-1")))[0] == 202
        await harness.wait_for_status("p-1", {OrderStatus.NEEDS_ATTENTION})
        yield harness


class Browser:
    """A cookie-keeping client that fills the dashboard's forms as a browser would."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def get(self, path: str) -> tuple[int, str]:
        async with self.session.get(self.base + path, allow_redirects=False) as response:
            return response.status, await response.text()

    async def csrf(self, path: str = "/ui/login") -> str:
        _, page = await self.get(path)
        found = re.search(r'name="csrf" value="([^"]+)"', page)
        assert found, page
        return found.group(1)

    async def post(
        self, path: str, form: dict[str, str], headers: dict[str, str] | None = None
    ) -> aiohttp.ClientResponse:
        response = await self.session.post(
            self.base + path, data=form, headers=headers, allow_redirects=False
        )
        await response.read()
        return response

    async def sign_in(self, name: str, password: str = PASSWORD) -> aiohttp.ClientResponse:
        token = await self.csrf()
        form = {"csrf": token, "name": name, "password": password, "next": "/ui/attention"}
        return await self.post("/ui/login", form)

    async def close(self) -> None:
        await self.session.close()


@asynccontextmanager
async def browser(harness: HostHarness) -> AsyncIterator[Browser]:
    client = Browser(harness.url)
    try:
        yield client
    finally:
        await client.close()


async def test_pages_need_a_sign_in_and_the_api_token_opens_none(
    tmp_path: Path, password_hash: str
) -> None:
    async with parked_host(tmp_path, UiSettings(users=users(password_hash))) as harness:
        # The cloud's token is not an operator's sign-in.
        async with harness.client.get(harness.url + "/ui/", allow_redirects=False) as response:
            assert response.status == 303
            assert response.headers["Location"] == "/ui/login?next=/ui/"
        async with browser(harness) as client:
            assert (await client.get("/ui"))[0] == 302  # /ui leads to /ui/
            status, _ = await client.get("/ui/orders/p-1")
            assert status == 303
            wrong = await client.sign_in("dana", "not-the-password")
            assert wrong.status == 401
            unknown = await client.sign_in("nobody")
            assert unknown.status == 401
            right = await client.sign_in("dana")
            assert right.status == 303 and right.headers["Location"] == "/ui/attention"
            cookie = right.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui" in cookie
            assert "Secure" not in cookie, "plain HTTP here: a Secure cookie would not come back"
            assert "Max-Age=28800" in cookie
            status, page = await client.get("/ui/orders/p-1")
            assert status == 200 and "NEEDS_ATTENTION" in page and "dana" in page
            # The operator's session is no API credential.
            async with client.session.get(harness.url + "/v1/orders") as response:
                assert response.status == 401
            # Signing out ends it.
            out = await client.post("/ui/logout", {"csrf": await client.csrf("/ui/")})
            assert out.status == 303
            assert (await client.get("/ui/orders/p-1"))[0] == 303


async def test_a_forged_or_foreign_form_is_refused_and_changes_nothing(
    tmp_path: Path, password_hash: str
) -> None:
    ui = UiSettings(users=users(password_hash))
    async with parked_host(tmp_path, ui) as harness, browser(harness) as client:
        await client.sign_in("dana")
        token = await client.csrf("/ui/orders/p-1")
        form = {"note": "checked the POS"}
        for refused in (
            await client.post("/ui/orders/p-1/missing", form),
            await client.post("/ui/orders/p-1/missing", {**form, "csrf": "guessed"}),
            await client.post(
                "/ui/orders/p-1/missing",
                {**form, "csrf": token},
                headers={"Origin": "http://evil.example"},
            ),
        ):
            assert refused.status == 403
        assert (await harness.order("p-1"))["status"] == "NEEDS_ATTENTION"
        # Without a note the action is not taken either, and the page says why.
        no_note = await client.post("/ui/orders/p-1/missing", {"csrf": token, "note": " "})
        assert no_note.status == 422
        view = await harness.order("p-1")
        assert view["status"] == "NEEDS_ATTENTION"
        assert not [h for h in view["history"] if h["source"].startswith("operator:")]
        # The genuine form works, and is recorded with the signed-in name.
        done = await client.post("/ui/orders/p-1/missing", {**form, "csrf": token})
        assert done.status == 303
        assert done.headers["Location"] == "/ui/orders/p-1?done=missing"
        view = await harness.order("p-1")
        action = [h for h in view["history"] if h["source"] == "operator:dana"]
        assert action[0]["note"] == "action: not in the POS"
        assert action[0]["reason"] == "checked the POS"


async def test_a_refused_action_says_why(tmp_path: Path, password_hash: str) -> None:
    ui = UiSettings(users=users(password_hash))
    async with parked_host(tmp_path, ui) as harness, browser(harness) as client:
        await client.sign_in("dana")
        token = await client.csrf("/ui/orders/p-1")
        # The order may be in the POS: cancelling it is refused until someone checked.
        refused = await client.post(
            "/ui/orders/p-1/cancel", {"csrf": token, "note": "customer called"}
        )
        assert refused.status == 409
        assert "The POS may have this order" not in (await refused.text())
        assert "check the POS" in await refused.text()
        assert (await harness.order("p-1"))["status"] == "NEEDS_ATTENTION"
        status, _ = await client.get("/ui/orders/nope")
        assert status == 404


async def test_a_viewer_can_look_but_not_act(tmp_path: Path, password_hash: str) -> None:
    ui = UiSettings(users=users(password_hash))
    async with parked_host(tmp_path, ui) as harness, browser(harness) as client:
        await client.sign_in("vic")
        for path in ("/ui/", "/ui/attention", "/ui/orders/p-1", "/ui/orders", "/ui/menus"):
            status, page = await client.get(path)
            assert status == 200, path
            assert 'class="action"' not in page, path
        token = await client.csrf("/ui/orders/p-1")
        refused = await client.post("/ui/orders/p-1/retry", {"csrf": token, "note": "x"})
        assert refused.status == 403
        assert (await harness.order("p-1"))["status"] == "NEEDS_ATTENTION"


async def test_a_trusted_proxy_names_the_operator(tmp_path: Path) -> None:
    ui = UiSettings(
        proxy_user_header="X-Forwarded-User",
        users=[UiUser(name="dana", role="operator")],  # no password: sign-on only
    )
    async with parked_host(tmp_path, ui) as harness, browser(harness) as client:
        client.session.headers["X-Forwarded-User"] = "sam"
        status, page = await client.get("/ui/attention")
        assert status == 200 and "sam" in page and "(viewer)" in page
        assert 'class="action"' not in page
        client.session.headers["X-Forwarded-User"] = "Dana"
        status, page = await client.get("/ui/attention")
        assert status == 200 and "(operator)" in page and 'class="action"' in page
        # Without the proxy, nobody signs in with a password that is not there.
        del client.session.headers["X-Forwarded-User"]
        assert (await client.sign_in("dana")).status == 401


async def test_a_proxy_header_from_elsewhere_is_ignored(tmp_path: Path) -> None:
    ui = UiSettings(proxy_user_header="X-Forwarded-User", proxy_addresses=["192.0.2.1"])
    async with parked_host(tmp_path, ui) as harness, browser(harness) as client:
        client.session.headers["X-Forwarded-User"] = "mallory"
        status, _ = await client.get("/ui/attention")
        assert status == 303, "the header came from 127.0.0.1, not from the proxy"


async def test_pages_show_orders_menus_and_searches(tmp_path: Path, password_hash: str) -> None:
    ui = UiSettings(users=users(password_hash))
    async with parked_host(tmp_path, ui) as harness, browser(harness) as client:
        await client.sign_in("dana")
        status, page = await client.get("/ui/")
        assert status == 200 and "fake" in page and "version 1" in page
        status, page = await client.get("/ui/orders?q=p-&status=NEEDS_ATTENTION")
        assert status == 200 and "/ui/orders/p-1" in page
        status, page = await client.get("/ui/orders?status=COMPLETED")
        assert status == 200 and "No order matches." in page
        status, page = await client.get("/ui/orders?from=yesterday")
        assert status == 400 and "from: a date and time" in page
        status, page = await client.get("/ui/orders?location=elsewhere")
        assert status == 400 and "location: not a location this host serves" in page
        status, page = await client.get("/ui/orders/p-1")
        assert status == 200
        assert "5.00 EUR" in page, "the line priced in major units"
        assert "delivery attempt 1" in page and "to the cloud #1: RECEIVED" in page
        status, page = await client.get("/ui/menus/loc")
        assert status == 200 and "Burger" in page
        status, page = await client.get("/ui/menus/loc/diff")
        assert status == 200 and "Nothing changed" in page
        assert (await client.get("/ui/menus/loc?version=9"))[0] == 400
        assert (await client.get("/ui/menus/elsewhere"))[0] == 404
        async with client.session.get(harness.url + "/ui/static/dashboard.css") as response:
            assert response.status == 200
        # The pages allow nothing but this host's own files.
        async with client.session.get(harness.url + "/ui/") as response:
            policy = response.headers["Content-Security-Policy"]
            assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy


# --- sign-in, sessions and hashes, without a host -----------------------------------------------


def test_a_password_hash_verifies_only_its_password(password_hash: str) -> None:
    assert verify_password(PASSWORD, password_hash)
    assert not verify_password(PASSWORD + "x", password_hash)
    log2_n, r, p, salt, digest = parse_hash(password_hash)
    assert (log2_n, r, p, len(salt), len(digest)) == (15, 8, 1, 16, 32)
    assert hash_password(PASSWORD) != password_hash, "a new salt every time"
    for bad in ("plain", "scrypt$15$8$1$salt", "scrypt$40$8$1$c2FsdHNhbHQ$ZGlnZXN0ZGlnZXN0ZGln"):
        with pytest.raises(ValueError):
            parse_hash(bad)


def test_a_bad_hash_in_the_settings_is_named_without_its_value(tmp_path: Path) -> None:
    config = tmp_path / "settings.toml"
    config.write_text('[[ui.users]]\nname = "dana"\npassword_hash = "hunter2-in-clear"\n')
    with pytest.raises(SettingsError) as caught:
        load_settings(config)
    (problem,) = caught.value.problems
    assert problem.path == "ui.users[0].password_hash"
    assert "posintegrator ui hash-password" in problem.message
    assert "hunter2" not in str(caught.value)


async def test_wrong_passwords_are_budgeted_per_address(password_hash: str) -> None:
    auth = Authenticator(UiSettings(users=users(password_hash)), failures_per_minute=2)
    assert await auth.sign_in("dana", "wrong", "10.0.0.1") is None
    assert await auth.sign_in("nobody", "wrong", "10.0.0.1") is None
    with pytest.raises(TooManyAttempts):
        await auth.sign_in("dana", PASSWORD, "10.0.0.1")
    operator = await auth.sign_in("DANA", PASSWORD, "10.0.0.2")
    assert operator is not None and operator.name == "dana" and operator.can_act


def test_a_session_expires_and_a_tampered_one_is_refused(
    monkeypatch: pytest.MonkeyPatch, password_hash: str
) -> None:
    from aiohttp.test_utils import make_mocked_request

    settings = UiSettings(users=users(password_hash), session_seconds=60)
    auth = Authenticator(settings, failures_per_minute=10)

    def cookie_of(session: Session) -> str:
        from aiohttp import web

        response = web.Response()
        auth.write(response, session, secure=True)
        morsel = response.cookies[COOKIE]
        assert morsel["secure"] and morsel["httponly"] and morsel["samesite"] == "Strict"
        return morsel.value

    def read(value: str) -> Session | None:
        request = make_mocked_request("GET", "/ui/", headers={"Cookie": f"{COOKIE}={value}"})
        return auth.read(request)

    fresh = cookie_of(Session.new("dana"))
    session = read(fresh)
    assert session is not None and session.user == "dana"
    assert read(fresh[:-2] + ("AA" if not fresh.endswith("AA") else "BB")) is None
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() - 120)
    old = cookie_of(Session.new("dana"))
    monkeypatch.setattr(time, "time", real_time)
    assert read(old) is None, "issued two minutes ago, valid for one"
    other = Authenticator(settings, failures_per_minute=10)  # another random key
    request = make_mocked_request("GET", "/ui/", headers={"Cookie": f"{COOKIE}={fresh}"})
    assert other.read(request) is None


async def test_order_search_matches_literally_and_by_time(
    tmp_path: Path, password_hash: str
) -> None:
    from datetime import timedelta

    from posintegrator.model import utcnow
    from posintegrator.store import OrderQuery

    ui = UiSettings(users=users(password_hash))
    async with parked_host(tmp_path, ui) as harness:
        for order_id in ("x_1", "x%2", "xy3"):
            order = sample_order(one_product_menu("loc"), order_id)
            assert (await harness.post_order(order))[0] == 202
        store = harness.host.store

        async def ids(**query: object) -> list[str]:
            return [r.order.id for r in await store.search_orders(OrderQuery(**query))]  # type: ignore[arg-type]

        assert await ids(text="x_") == ["x_1"], "_ is not a wildcard"
        assert await ids(text="x%") == ["x%2"], "% is not a wildcard"
        assert await ids(text="x") == ["xy3", "x%2", "x_1"], "newest first"
        assert await ids(text="x", limit=2) == ["xy3", "x%2"]
        assert await ids(statuses=(OrderStatus.NEEDS_ATTENTION,)) == ["p-1"]
        assert await ids(location="elsewhere") == []
        now = utcnow()
        assert len(await ids(created_from=now - timedelta(minutes=5))) == 4
        assert await ids(created_to=now - timedelta(minutes=5)) == []


def test_the_operator_guide_shows_every_page_the_browser_tests_capture() -> None:
    root = Path(__file__).resolve().parents[1]
    guide = (root / "docs" / "operator-guide.md").read_text()
    shown = set(re.findall(r"\(img/dashboard/([\w-]+)\.png\)", guide))
    browser_tests = (root / "tests" / "browser" / "test_dashboard_browser.py").read_text()
    captured = set(re.findall(r'site\.screenshot\("([\w-]+)"\)', browser_tests))
    assert captured and captured == shown, (captured, shown)
    for name in shown:
        assert (root / "docs" / "img" / "dashboard" / f"{name}.png").is_file(), name


async def test_the_overview_shows_venue_agents_and_their_links(
    tmp_path: Path, password_hash: str, simulator: RunningSimulator
) -> None:
    import secrets

    from linkharness import agent_settings, hub_settings, pair, running_agent

    from posintegrator.cloud.receiver import CloudReceiver
    from posintegrator.cloud.signatures import generate_secret
    from posintegrator.runtime.host import Host

    secret, token = generate_secret(), secrets.token_urlsafe(16)
    receiver = CloudReceiver([secret])
    await receiver.start()
    settings = hub_settings(tmp_path / "hub", receiver, secret, token, {"venue": "downtown"})
    hub = Host(settings.model_copy(update={"ui": UiSettings(users=users(password_hash))}))
    await hub.start()
    client = Browser(hub.url)
    try:
        await client.sign_in("dana")
        status, page = await client.get("/ui/")
        assert status == 200 and "No venue agent is approved yet" in page
        await pair(hub.url, token, tmp_path / "agent", "downtown-agent", ["downtown"])
        agent = agent_settings(tmp_path / "agent", hub.url, simulator, "downtown")

        async def agent_row_says(word: str) -> bool:
            status, page = await client.get("/ui/")
            assert status == 200
            anchor = '<th scope="row">downtown-agent'  # its row in the agents' table
            row = page[page.index(anchor) :][:400] if anchor in page else ""
            return word in row and "downtown" in row

        async with running_agent(agent):
            await eventually(lambda: agent_row_says("connected"), timeout=20)
        await eventually(lambda: agent_row_says("offline"), timeout=20)
    finally:
        await client.close()
        await hub.stop(grace_seconds=2.0)
        await receiver.stop()


async def test_a_stuck_stream_is_retried_and_skipped_from_the_page(
    tmp_path: Path, password_hash: str
) -> None:
    """The cloud refuses one order's SUBMITTING event: its stream shows on the page of what
    needs a person, with the cloud's answer; an operator retries it, then skips the event, each
    with a note, recorded with their name. Refused forms change nothing and say why."""
    fake = ScriptedPos()
    connection = ConnectionSettings(name="fake", plugin="fake", locations=["loc"])
    ui = UiSettings(users=users(password_hash))
    async with (
        running_host(tmp_path, [connection], plugins=fake_host_plugins(fake), ui=ui) as harness,
        browser(harness) as client,
    ):
        harness.receiver.refuse = refuse_submitting_of("s-1")
        await harness.post_order(sample_order(one_product_menu("loc"), "s-1"))
        await client.sign_in("dana")

        async def listed() -> bool:
            _, page = await client.get("/ui/attention")
            return "order:s-1" in page and "unknown table 12" in page

        await eventually(listed, timeout=20)
        [head] = await harness.host.store.stream_heads(failing=True, made_before=None, limit=10)
        token = await client.csrf("/ui/attention")
        path = "/ui/streams/order:s-1"
        no_note = await client.post(f"{path}/retry", {"csrf": token, "note": ""})
        assert no_note.status == 422 and "write a note" in await no_note.text()
        wrong = {"csrf": token, "note": "never", "event_id": "not-the-head"}
        refused = await client.post(f"{path}/skip", wrong)
        assert refused.status == 409 and "not-the-head" in await refused.text()
        assert await harness.host.store.stream_actions("order:s-1") == []

        retried = await client.post(f"{path}/retry", {"csrf": token, "note": "cloud fixed?"})
        assert retried.status == 303
        assert retried.headers["Location"] == "/ui/attention?done=stream-retry"
        skip = {"csrf": token, "note": "the cloud will never take it", "event_id": head.event_id}

        async def skipped() -> bool:
            answer = await client.post(f"{path}/skip", skip)
            if answer.status == 409:  # the retry's delivery is under way: the page says so
                assert "being sent to the cloud right now" in await answer.text()
                return False
            assert answer.status == 303
            return True

        await eventually(skipped, timeout=20)
        actions = await harness.host.store.stream_actions("order:s-1")
        assert [(a.action, a.operator, a.note) for a in actions] == [
            ("retry", "dana", "cloud fixed?"),
            ("skip", "dana", "the cloud will never take it"),
        ]
        await harness.wait_for_events(lambda _: "ACCEPTED" in harness.receiver.statuses("s-1"))
        _, page = await client.get("/ui/attention?done=stream-skip")
        assert "The head event was skipped" in page and "order:s-1" not in page
