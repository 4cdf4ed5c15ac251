"""Plugin discovery through real entry points, and the typed ``PosPlugin`` facade.

Discovery tests build fake installed distributions (``*.dist-info`` with ``METADATA`` and
``entry_points.txt``) plus their plugin modules in a temporary directory and put it on
``sys.path``, so stevedore and ``importlib.metadata`` find them exactly as they would find a
pip-installed plugin.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from stevedore import _cache as stevedore_cache
from stevedore.extension import ExtensionManager

from posintegrator.errors import PermanentError, PluginBugError, RetryableError, StartupError
from posintegrator.hookspecs import hookimpl
from posintegrator.hooktypes import Capabilities, SubmitResult
from posintegrator.model import Menu, PriceList
from posintegrator.plugin_api import PLUGIN_API_VERSION as API
from posintegrator.plugins import PluginHost, PluginInfo

# --- fake installed distributions ----------------------------------------------------------------

HOOKS_HEADER = """\
from posintegrator.hookspecs import hookimpl
from posintegrator.hooktypes import Capabilities
from posintegrator.model import Menu, PriceList
"""


def pos_module(tag: str, *, polling: bool = False) -> str:
    """Source of a POS plugin module whose answers carry ``tag``."""
    return HOOKS_HEADER + textwrap.dedent(
        f"""
        @hookimpl
        def pos_capabilities():
            return Capabilities(
                menu=True,
                orders=False,
                order_lookup=False,
                idempotent_submit=False,
                status_webhooks=False,
                status_polling={polling!r},
            )

        @hookimpl
        async def pos_fetch_menu(ctx, location):
            return Menu(
                location=location,
                currency="EUR",
                price_lists=[PriceList(id="{tag}", name="{tag}")],
            )
        """
    )


class FakeSite:
    """A site-packages-like directory of fake distributions, put on ``sys.path`` on demand."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.monkeypatch = monkeypatch
        self.modules: list[str] = []
        self.active = False

    def add(
        self,
        dist: str,
        entry_points: dict[str, str],
        modules: dict[str, str],
        requires: list[str] | None = None,
    ) -> None:
        """Install distribution ``dist`` (version 0.1) declaring ``entry_points``
        (name -> module) in the plugin group, with ``modules`` (module name -> source) and the
        ``requires`` (``Requires-Dist``) lines."""
        assert not self.active, "add every distribution before activate()"
        info = self.root / f"{dist.replace('-', '_')}-0.1.dist-info"
        info.mkdir()
        requirements = "".join(f"Requires-Dist: {line}\n" for line in requires or [])
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n{requirements}",
            encoding="utf-8",
        )
        lines = ["[posintegrator.plugins]"]
        lines += [f"{name} = {module}" for name, module in entry_points.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        for module, source in modules.items():
            (self.root / f"{module}.py").write_text(source, encoding="utf-8")
            self.modules.append(module)

    def activate(self) -> None:
        """Put the directory on ``sys.path`` (after every file is written)."""
        self.monkeypatch.syspath_prepend(str(self.root))
        self.active = True


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSite]:
    # stevedore keeps entry points per group in a class-level dict for the life of the process:
    # without a fresh one, a group scanned by an earlier test would hide the fake plugins.
    monkeypatch.setattr(ExtensionManager, "ENTRY_POINT_CACHE", {})
    # Its on-disk cache is keyed by a hash of sys.path (and the mtimes of its entries), so the
    # new directory forces a fresh scan; keep the files it writes out of the user's home.
    monkeypatch.setattr(stevedore_cache._c, "_dir", str(tmp_path / "stevedore-cache"))
    root = tmp_path / "site"
    root.mkdir()
    fake = FakeSite(root, monkeypatch)
    yield fake
    for module in fake.modules:
        sys.modules.pop(module, None)


CTX: Any = SimpleNamespace(name="conn")
ORDER: Any = SimpleNamespace(id="order-1")


def test_fake_site_is_seen_fresh(site: FakeSite) -> None:
    """The fixture really makes a new distribution visible to stevedore in this process."""
    ExtensionManager("posintegrator.plugins").list_entry_points()  # scan before: no fake one
    site.add("posintegrator-pos-fresh", {"fresh": "fakepos_fresh"}, {"fakepos_fresh": ""})
    site.activate()
    # A new ENTRY_POINT_CACHE would still be stale if the sys.path-keyed cache were reused.
    ExtensionManager.ENTRY_POINT_CACHE.clear()
    names = ExtensionManager("posintegrator.plugins").entry_points_names()
    assert "fresh" in names
    assert "demo" in names


# --- load: failures name the plugin and the cause ------------------------------------------------


def test_plugin_not_installed_lists_installed_ones(site: FakeSite) -> None:
    site.add("posintegrator-pos-alpha", {"alpha": "fakepos_alpha"}, {"fakepos_alpha": ""})
    site.activate()

    with pytest.raises(StartupError) as info:
        PluginHost.load(["ghost"])

    message = str(info.value)
    assert "'ghost'" in message
    assert "not installed" in message
    installed = message.split("installed plugins:")[1]
    assert "alpha" in installed
    assert "demo" in installed


def test_plugin_whose_import_fails(site: FakeSite) -> None:
    site.add(
        "posintegrator-pos-broken",
        {"broken": "fakepos_broken"},
        {"fakepos_broken": "import fakepos_dependency_that_is_absent\n"},
    )
    site.activate()

    with pytest.raises(StartupError) as info:
        PluginHost.load(["broken"])

    message = str(info.value)
    assert "'broken'" in message
    assert "failed to import" in message
    assert "ModuleNotFoundError" in message
    assert "fakepos_dependency_that_is_absent" in message


def test_hookimpl_with_an_argument_the_spec_lacks(site: FakeSite) -> None:
    source = HOOKS_HEADER + textwrap.dedent(
        """
        @hookimpl
        async def pos_fetch_menu(ctx, location, page_size):
            raise AssertionError("never called")
        """
    )
    site.add(
        "posintegrator-pos-wrongsig", {"wrongsig": "fakepos_wrongsig"}, {"fakepos_wrongsig": source}
    )
    site.activate()

    with pytest.raises(StartupError) as info:
        PluginHost.load(["wrongsig"])

    message = str(info.value)
    assert message.startswith("plugin 'wrongsig'")
    assert "pos_fetch_menu" in message
    assert "page_size" in message


def test_hookimpl_with_a_misspelt_hook_name(site: FakeSite) -> None:
    source = HOOKS_HEADER + textwrap.dedent(
        """
        @hookimpl
        async def pos_fetch_manu(ctx, location):
            raise AssertionError("never called")
        """
    )
    site.add("posintegrator-pos-typo", {"typo": "fakepos_typo"}, {"fakepos_typo": source})
    site.activate()

    with pytest.raises(StartupError) as info:
        PluginHost.load(["typo"])

    message = str(info.value)
    assert message.startswith("plugin 'typo'")
    assert "unknown hook" in message
    assert "pos_fetch_manu" in message


def test_only_the_named_plugins_are_loaded(site: FakeSite) -> None:
    site.add(
        "posintegrator-pos-alpha", {"alpha": "fakepos_alpha"}, {"fakepos_alpha": pos_module("A")}
    )
    site.add(
        "posintegrator-pos-broken",
        {"broken": "fakepos_broken"},
        {"fakepos_broken": "raise RuntimeError('must not be imported')\n"},
    )
    site.activate()

    host = PluginHost.load(["alpha"])

    assert [p.name for p in host.plugins()] == ["alpha"]
    assert "fakepos_broken" not in sys.modules
    assert "fakepos_alpha" in sys.modules


# --- load: a good plugin -------------------------------------------------------------------------


def test_good_plugin_loads_with_its_distribution_version(site: FakeSite) -> None:
    site.add(
        "posintegrator-pos-alpha", {"alpha": "fakepos_alpha"}, {"fakepos_alpha": pos_module("A")}
    )
    site.activate()

    host = PluginHost.load(["alpha"])

    assert host.plugins() == [
        PluginInfo(name="alpha", version="0.1", distribution="posintegrator-pos-alpha")
    ]
    assert host.pos("alpha").info.version == "0.1"


async def test_facade_calls_reach_only_their_own_plugin(site: FakeSite) -> None:
    site.add(
        "posintegrator-pos-alpha", {"alpha": "fakepos_alpha"}, {"fakepos_alpha": pos_module("A")}
    )
    site.add(
        "posintegrator-pos-beta",
        {"beta": "fakepos_beta"},
        {"fakepos_beta": pos_module("B", polling=True)},
    )
    site.activate()

    host = PluginHost.load(["alpha", "beta"])
    alpha, beta = host.pos("alpha"), host.pos("beta")

    # Both directions: pluggy calls the last registered plugin first, so an unfiltered call
    # would give one of the two facades the other plugin's answer.
    assert [p.id for p in (await alpha.fetch_menu(CTX, "L1")).price_lists] == ["A"]
    assert [p.id for p in (await beta.fetch_menu(CTX, "L1")).price_lists] == ["B"]
    assert alpha.capabilities().status_polling is False
    assert beta.capabilities().status_polling is True
    assert alpha.bug_count == beta.bug_count == 0


# --- the facade (plugins registered as objects) --------------------------------------------------


def make_menu(tag: str) -> Menu:
    return Menu(location="L1", currency="EUR", price_lists=[PriceList(id=tag, name=tag)])


class AsyncMenuPlugin:
    def __init__(self) -> None:
        self.calls: list[str] = []

    @hookimpl
    async def pos_fetch_menu(self, ctx: Any, location: str) -> Menu:
        self.calls.append(location)
        return make_menu("async")


class SyncMenuPlugin:
    @hookimpl
    def pos_fetch_menu(self, ctx: Any, location: str) -> Menu:
        return make_menu("sync")


async def test_async_hookimpl_is_awaited_and_sync_one_works() -> None:
    async_plugin = AsyncMenuPlugin()
    host = PluginHost.from_objects({"a": async_plugin, "s": SyncMenuPlugin()})

    from_async = await host.pos("a").fetch_menu(CTX, "L7")
    from_sync = await host.pos("s").fetch_menu(CTX, "L7")

    assert isinstance(from_async, Menu)
    assert from_async.price_lists[0].id == "async"
    assert async_plugin.calls == ["L7"]
    assert isinstance(from_sync, Menu)
    assert from_sync.price_lists[0].id == "sync"
    assert host.pos("a").bug_count == host.pos("s").bug_count == 0


class RaisingSubmitPlugin:
    def __init__(self, error: Exception) -> None:
        self.error = error

    @hookimpl
    async def pos_submit_order(self, ctx: Any, order: Any, idempotency_key: str) -> SubmitResult:
        raise self.error


class WrongTypeSubmitPlugin:
    @hookimpl
    def pos_submit_order(self, ctx: Any, order: Any, idempotency_key: str) -> Any:
        return {"pos_order_id": "P1"}


async def test_plain_exception_becomes_plugin_bug_error() -> None:
    host = PluginHost.from_objects({"buggy": RaisingSubmitPlugin(KeyError("line_items"))})
    pos = host.pos("buggy")

    with pytest.raises(PluginBugError) as info:
        await pos.submit_order(CTX, ORDER, "key-1")

    assert isinstance(info.value, RetryableError)
    message = str(info.value)
    assert "'buggy'" in message
    assert "pos_submit_order" in message
    assert "KeyError" in message
    assert isinstance(info.value.__cause__, KeyError)
    assert pos.bug_count == 1

    with pytest.raises(PluginBugError):
        await pos.submit_order(CTX, ORDER, "key-1")
    assert pos.bug_count == 2


async def test_pos_error_passes_through_and_is_not_a_bug() -> None:
    refusal = PermanentError("sold out", reason="sold out")
    host = PluginHost.from_objects({"pos": RaisingSubmitPlugin(refusal)})
    pos = host.pos("pos")

    with pytest.raises(PermanentError) as info:
        await pos.submit_order(CTX, ORDER, "key-1")

    assert info.value is refusal
    assert pos.bug_count == 0


async def test_wrong_return_type_becomes_plugin_bug_error() -> None:
    host = PluginHost.from_objects({"sloppy": WrongTypeSubmitPlugin()})
    pos = host.pos("sloppy")

    with pytest.raises(PluginBugError) as info:
        await pos.submit_order(CTX, ORDER, "key-1")

    message = str(info.value)
    assert "'sloppy'" in message
    assert "returned dict" in message
    assert "pos_submit_order" in message
    assert pos.bug_count == 1


async def test_correct_submit_result_is_returned() -> None:
    class GoodSubmit:
        @hookimpl
        async def pos_submit_order(
            self, ctx: Any, order: Any, idempotency_key: str
        ) -> SubmitResult:
            return SubmitResult(pos_order_id=f"pos-{idempotency_key}")

    host = PluginHost.from_objects({"good": GoodSubmit(), "bad": WrongTypeSubmitPlugin()})

    result = await host.pos("good").submit_order(CTX, ORDER, "key-9")

    assert result == SubmitResult(pos_order_id="pos-key-9")
    assert host.pos("good").bug_count == 0


def test_from_objects_rejects_a_misspelt_hook() -> None:
    class Typo:
        @hookimpl
        def pos_capabilitys(self) -> Capabilities:
            raise AssertionError("never called")

    with pytest.raises(StartupError) as info:
        PluginHost.from_objects({"typo": Typo()})

    assert str(info.value).startswith("plugin 'typo'")
    assert "pos_capabilitys" in str(info.value)


# --- the plugin API version ----------------------------------------------------------------------


def api_module(declared: str) -> str:
    """A plugin module (menus only) declaring the plugin API range ``declared``."""
    return f"POSINTEGRATOR_PLUGIN_API = {declared!r}\n" + pos_module("V")


def test_plugin_built_for_another_api_is_refused_in_one_line(site: FakeSite) -> None:
    site.add(
        "posintegrator-pos-future",
        {"future": "fakepos_future"},
        {"fakepos_future": api_module(">=2.0,<3")},
    )
    site.activate()

    with pytest.raises(StartupError) as info:
        PluginHost.load(["future"])

    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("plugin 'future' (posintegrator-pos-future 0.1)")
    assert f"built for plugin API >=2.0,<3 but this posintegrator offers plugin API {API}" in (
        message
    )
    assert "install a release of posintegrator-pos-future" in message


def test_plugin_with_an_unreadable_range_is_refused(site: FakeSite) -> None:
    site.add(
        "posintegrator-pos-garbled",
        {"garbled": "fakepos_garbled"},
        {"fakepos_garbled": api_module("version one please")},
    )
    site.activate()

    with pytest.raises(StartupError) as info:
        PluginHost.load(["garbled"])

    assert "'garbled'" in str(info.value)
    assert "not a version range" in str(info.value)


def test_plugin_whose_range_holds_the_host_api_loads(site: FakeSite) -> None:
    site.add(
        "posintegrator-pos-current",
        {"current": "fakepos_current"},
        {"fakepos_current": api_module(f">={API},<{int(API.split('.')[0]) + 1}")},
    )
    site.activate()

    host = PluginHost.load(["current"])

    assert [p.name for p in host.plugins()] == ["current"]


def run_cli(site: FakeSite, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real ``posintegrator`` command, seeing the fake site's distributions."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("POSINTEGRATOR_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site.root), *sys.path])
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    env["NO_COLOR"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "posintegrator.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )


SLOPPY_SETTINGS = """
from pydantic import BaseModel
from posintegrator.hooktypes import Capabilities, Deployment

class SloppySettings(BaseModel):
    base_url: str
    api_token: str

@hookimpl
def pos_settings_model():
    return SloppySettings

@hookimpl
def pos_capabilities():
    return Capabilities(
        menu=True, orders=True, order_lookup=False, idempotent_submit=False,
        status_webhooks=False, status_polling=False, deployments=[Deployment.CENTRAL],
    )
"""


def test_plugins_check_lists_what_to_fix(site: FakeSite, tmp_path: Path) -> None:
    """Every static problem of a sloppy plugin is one unticked line saying what to change."""
    sloppy = HOOKS_HEADER + SLOPPY_SETTINGS
    site.add(
        "posintegrator-pos-sloppy",
        {"sloppy": "fakepos_sloppy"},
        {"fakepos_sloppy": sloppy},
        requires=["posintegrator>=0.1"],
    )
    site.activate()

    done = run_cli(site, tmp_path, "plugins", "check", "sloppy")

    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    unticked = [line for line in lines if line.startswith("[ ]")]
    expected = {
        "requires posintegrator with a version range": "add an upper bound",
        "plugin API range holds": "POSINTEGRATOR_PLUGIN_API =",
        "settings model": "api_token looks like a credential: make it SecretStr",
        "every promised hook is implemented": "pos_fetch_menu, pos_submit_order",
        "order status has a way back": "by webhook or by polling",
    }
    for title, advice in expected.items():
        [line] = [line for line in unticked if title in line]
        assert advice in line, line
    assert 'extra="forbid"' in next(line for line in unticked if "settings model" in line)
    assert len(unticked) == len(expected)
    assert lines[-1] == f"{len(expected)} item(s) to fix"
    assert "[x] entry point: sloppy = fakepos_sloppy" in done.stdout


def test_plugins_check_passes_a_good_plugin(site: FakeSite, tmp_path: Path) -> None:
    site.activate()

    done = run_cli(site, tmp_path, "plugins", "check", "demo")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "[ ]" not in done.stdout
    assert "[x] plugin API range holds" in done.stdout
    assert done.stdout.splitlines()[-1].startswith("all static checks pass")


def test_start_up_stops_with_the_one_line(site: FakeSite, tmp_path: Path) -> None:
    """``posintegrator serve`` with a connection to the incompatible plugin exits at start-up,
    its whole error one line on standard error."""
    site.add(
        "posintegrator-pos-future",
        {"future": "fakepos_future"},
        {"fakepos_future": api_module(">=2.0,<3")},
    )
    site.activate()
    config = tmp_path / "settings.toml"
    config.write_text(
        '[api]\nport = 8123\ntoken = "t"\n\n[[connections]]\nname = "main"\nplugin = "future"\n'
        'locations = ["loc-1"]\n',
        encoding="utf-8",
    )
    done = run_cli(site, tmp_path, "serve", "--config", str(config))

    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert "plugin 'future' (posintegrator-pos-future 0.1)" in errors[0]
    assert f"plugin API {API}" in errors[0] and ">=2.0,<3" in errors[0]
