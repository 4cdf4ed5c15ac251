"""What the browser tests share: the system's Chromium, the operators, and the site under test
(see conftest.py for how it is put together)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from fakepos import ScriptedPos
from playwright.async_api import Page

from pos_demo.simulator import RunningSimulator
from posintegrator.hooktypes import Capabilities
from posintegrator.testing import HostHarness

ROOT = Path(__file__).resolve().parents[2]

#: Where the screenshots of each page are kept (a CI artifact; docs/img/dashboard has copies).
SCREENSHOTS = Path(
    os.environ.get("POSINTEGRATOR_SCREENSHOTS", Path(__file__).parent / "screenshots")
)

#: Chromium as Debian packages it, started so it reaches nothing but the host under test.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

PASSWORDS = {"ops": "ops-password-123", "viewer": "viewer-password-123"}

BLIND = Capabilities(
    menu=True,
    orders=True,
    order_lookup=False,
    idempotent_submit=False,
    status_webhooks=False,
    status_polling=True,
)


def chromium_path() -> str:
    """The system's Chromium; a clear failure (not a skip) when it is not installed."""
    path = os.environ.get("POSINTEGRATOR_CHROMIUM") or shutil.which("chromium") or ""
    if not path or not Path(path).exists():
        pytest.fail(
            "Chromium is not installed: apt-get install chromium (tox -e browser does it), "
            "or set POSINTEGRATOR_CHROMIUM to its path"
        )
    return path


@dataclass
class Site:
    """The host under test, its two POSes and the browser page that looks at it."""

    harness: HostHarness
    simulator: RunningSimulator
    fake: ScriptedPos
    page: Page

    @property
    def base(self) -> str:
        return self.harness.url + "/ui"

    async def sign_in(self, name: str) -> None:
        """Sign in through the form, as a person would."""
        await self.page.goto(self.base + "/")
        await self.page.get_by_label("Name").fill(name)
        await self.page.get_by_label("Password").fill(PASSWORDS[name])
        await self.page.get_by_role("button", name="Sign in").click()
        await self.page.get_by_role("button", name="Sign out").wait_for()

    async def sign_out(self) -> None:
        """Sign out with the button in the page header."""
        await self.page.get_by_role("button", name="Sign out").click()
        await self.page.get_by_role("button", name="Sign in").wait_for()

    async def screenshot(self, name: str) -> None:
        """Keep a screenshot of the page as it is now."""
        await self.page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=False)
