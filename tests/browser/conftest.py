"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against a real host.

The host serves two connections: ``demo`` (the demo POS simulator, whose faults the tests switch
on and off) and ``fake`` (a scripted POS that can neither look orders up nor deduplicate them,
so an unknown outcome parks the order as NEEDS_ATTENTION). Two operators can sign in: ``ops``
(who acts) and ``viewer`` (who only looks).

Chromium is the system's (``/usr/bin/chromium``, or ``$POSINTEGRATOR_CHROMIUM``): Playwright's
own browser download is never used. ``tox -e browser`` installs Chromium with apt-get when it is
missing (see tox.ini).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from dashsite import BLIND, CHROMIUM_ARGS, PASSWORDS, SCREENSHOTS, Site, chromium_path
from fakepos import ScriptedPos, commit_then
from helpers import POS_API_KEY, POS_WEBHOOK_SECRET, demo_connection
from playwright.async_api import Browser, async_playwright
from pydantic import SecretStr

import pos_demo.plugin
from pos_demo.simulator import SimulatorConfig, start_simulator
from posintegrator.errors import AmbiguousError
from posintegrator.plugins import PluginHost
from posintegrator.runtime.host import Host
from posintegrator.settings import ConnectionSettings, UiSettings, UiUser
from posintegrator.testing import running_host
from posintegrator.ui.passwords import hash_password


@pytest.fixture(scope="session", autouse=True)
def screenshots_folder() -> None:
    """The folder the screenshots are kept in exists."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="session")
def ui_settings() -> UiSettings:
    """The dashboard's operators (hashed once: scrypt is slow on purpose)."""
    return UiSettings(
        users=[
            UiUser(name="ops", password_hash=SecretStr(hash_password(PASSWORDS["ops"]))),
            UiUser(
                name="viewer",
                password_hash=SecretStr(hash_password(PASSWORDS["viewer"])),
                role="viewer",
            ),
        ],
        refresh_seconds=1.0,
    )


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Chromium with a fresh profile."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def site(tmp_path: Path, browser: Browser, ui_settings: UiSettings) -> AsyncIterator[Site]:
    """A host with the demo POS and the scripted one, and a browser page on a laptop screen."""
    simulator = await start_simulator(
        SimulatorConfig(data_dir=tmp_path / "pos", api_key=POS_API_KEY, stage_seconds=0.3)
    )
    fake = ScriptedPos(capabilities=BLIND, outcomes=[commit_then(AmbiguousError("timed out"))])
    plugins = PluginHost.from_objects({"demo": pos_demo.plugin, "fake": fake})
    connections = [
        # No pause after failed calls in a row: the retry test makes the POS fail on purpose,
        # and the operator's retry must reach it at once rather than wait out a pause.
        demo_connection(simulator, failure_threshold=1000),
        ConnectionSettings(
            name="fake", plugin="fake", locations=["kiosk"], status_source="polling"
        ),
    ]

    async def connect(host: Host) -> None:
        simulator.set_webhook(
            host.connections["demo"].connection.ctx.webhook_url, POS_WEBHOOK_SECRET
        )

    try:
        async with running_host(
            tmp_path, connections, plugins=plugins, after_start=connect, ui=ui_settings
        ) as harness:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            page = await context.new_page()
            page.set_default_timeout(30_000)
            try:
                yield Site(harness, simulator, fake, page)
            finally:
                await context.close()
    finally:
        await simulator.close()
