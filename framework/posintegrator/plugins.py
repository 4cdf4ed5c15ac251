"""Plugin discovery and the typed facade over pluggy.

Plugins are found through the entry-point group ``posintegrator.plugins`` (stevedore); only the
ones the settings name are loaded. Each is registered with one pluggy ``PluginManager`` under its
entry-point name. Host code calls plugins only through :class:`PluginHost` and :class:`PosPlugin`,
never through ``pm.hook``, so every call is typed, awaited when async, and guarded.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import pluggy
from loguru import logger
from pydantic import BaseModel, ValidationError
from stevedore import NamedExtensionManager
from stevedore.extension import Extension

from posintegrator import hookspecs
from posintegrator.context import ConnectionContext
from posintegrator.errors import (
    PluginBugError,
    PosError,
    RetryableError,
    StartupError,
    WebhookRejected,
)
from posintegrator.hooktypes import (
    CancelResult,
    Capabilities,
    FoundOrder,
    InboundWebhook,
    SharedMenu,
    SubmitResult,
    TrackedOrder,
    WebhookResult,
)
from posintegrator.model import Menu, Order, OrderStatus, StatusEvent
from posintegrator.plugin_api import RANGE_ATTRIBUTE, declared_range, incompatibility
from posintegrator.settings import (
    ConnectionSettings,
    HostSettings,
    SettingsError,
    SettingsProblem,
    problems_from,
)

ENTRY_POINT_GROUP = "posintegrator.plugins"

T = TypeVar("T")


@dataclass(frozen=True)
class PluginInfo:
    """What is known of a loaded plugin."""

    name: str
    version: str
    distribution: str | None


def installed_plugins() -> list[str]:
    """Names of every plugin installed in this environment, loaded or not."""
    from importlib.metadata import entry_points

    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


class PosPlugin:
    """The per-POS hooks of one plugin, typed and awaited.

    Calls reach only this plugin (``pm.subset_hook_caller``), so two POS plugins loaded side by
    side never answer for each other. A plugin exception that is not a
    :class:`~posintegrator.errors.PosError` is logged with the plugin's name and re-raised as a
    :class:`~posintegrator.errors.RetryableError`: a bug must not lose an order.
    """

    def __init__(self, pm: pluggy.PluginManager, info: PluginInfo) -> None:
        self._pm = pm
        self.info = info
        self.name = info.name
        self.bug_count = 0
        #: Calls cut off because the plugin did not answer in time (counted by the runtime).
        self.timeouts = 0
        self._capabilities: Capabilities | None = None
        self._callers: dict[str, Any] = {}

    def promised_hooks(self, caps: Capabilities) -> dict[str, bool]:
        """Each per-POS hook, and whether ``caps`` promise that this plugin implements it."""
        return {
            # A plugin fetching many locations at once needs no per-location fetch.
            "pos_fetch_menu": caps.menu and not self.implements("pos_fetch_menus"),
            "pos_submit_order": caps.orders,
            "pos_find_order": caps.order_lookup,
            "pos_cancel_order": caps.order_cancel,
            "pos_poll_status": caps.status_polling,
            "pos_parse_webhook": caps.status_webhooks,
        }

    def implements(self, hook_name: str) -> bool:
        """Whether this plugin has an implementation of ``hook_name``."""
        plugin = self._pm.get_plugin(self.name)
        return any(
            impl.plugin is plugin for impl in getattr(self._pm.hook, hook_name).get_hookimpls()
        )

    def _caller(self, hook_name: str) -> Any:
        caller = self._callers.get(hook_name)
        if caller is None:
            others = [p for n, p in self._pm.list_name_plugin() if n != self.name]
            caller = self._pm.subset_hook_caller(hook_name, remove_plugins=others)
            self._callers[hook_name] = caller
        return caller

    def _call_sync(self, hook_name: str, expected: type[T] | tuple[type, ...], **kwargs: Any) -> T:
        results = self._caller(hook_name)(**kwargs)
        if not results:
            raise StartupError(f"plugin {self.name!r} does not implement {hook_name}")
        return self._check(hook_name, results[0], expected)

    async def _call(self, hook_name: str, expected: type[T] | tuple[type, ...], **kwargs: Any) -> T:
        if not self.implements(hook_name):
            raise RetryableError(f"plugin {self.name!r} does not implement {hook_name}")
        try:
            results = self._caller(hook_name)(**kwargs)
            result = results[0]
            if inspect.isawaitable(result):
                result = await result
        except (PosError, WebhookRejected):
            raise
        except Exception as exc:
            self.bug_count += 1
            logger.opt(exception=exc).error(
                "plugin {} raised {} in {}: treated as retryable (a bug in the plugin)",
                self.name,
                type(exc).__name__,
                hook_name,
            )
            raise PluginBugError(
                f"plugin {self.name!r} failed in {hook_name}: {type(exc).__name__}: {exc}"
            ) from exc
        return self._check(hook_name, result, expected)

    def _check(self, hook_name: str, result: Any, expected: type[T] | tuple[type, ...]) -> T:
        if not isinstance(result, expected):
            self.bug_count += 1
            raise PluginBugError(
                f"plugin {self.name!r} returned {type(result).__name__} from {hook_name}, "
                f"expected {expected}"
            )
        return result  # type: ignore[return-value]

    def settings_model(self) -> type[BaseModel]:
        """The plugin's per-connection settings model."""
        model = self._caller("pos_settings_model")()
        if not model or not (isinstance(model[0], type) and issubclass(model[0], BaseModel)):
            raise StartupError(
                f"plugin {self.name!r}: pos_settings_model must return a pydantic model class"
            )
        return model[0]

    def capabilities(self) -> Capabilities:
        """The plugin's declared capabilities (asked once, then remembered)."""
        if self._capabilities is None:
            self._capabilities = self._call_sync("pos_capabilities", Capabilities)
        return self._capabilities

    async def fetch_menu(self, ctx: ConnectionContext, location: str) -> Menu:
        """See :func:`posintegrator.hookspecs.pos_fetch_menu`."""
        return await self._call("pos_fetch_menu", Menu, ctx=ctx, location=location)

    async def fetch_menus(self, ctx: ConnectionContext, locations: list[str]) -> list[SharedMenu]:
        """See :func:`posintegrator.hookspecs.pos_fetch_menus`; every location asked for is
        checked to be in exactly one of the menus returned."""
        menus = await self._call("pos_fetch_menus", list, ctx=ctx, locations=locations)
        covered: list[str] = []
        for shared in menus:
            if not isinstance(shared, SharedMenu) or not isinstance(shared.menu, Menu):
                self.bug_count += 1
                raise PluginBugError(
                    f"plugin {self.name!r} returned {type(shared).__name__} in the list from "
                    "pos_fetch_menus, expected SharedMenu"
                )
            covered.extend(shared.locations)
        if sorted(covered) != sorted(locations):
            self.bug_count += 1
            raise PluginBugError(
                f"plugin {self.name!r}: pos_fetch_menus returned menus for {sorted(covered)}, "
                f"asked for {sorted(locations)} (each exactly once)"
            )
        return menus

    async def submit_order(
        self, ctx: ConnectionContext, order: Order, idempotency_key: str
    ) -> SubmitResult:
        """See :func:`posintegrator.hookspecs.pos_submit_order`."""
        return await self._call(
            "pos_submit_order", SubmitResult, ctx=ctx, order=order, idempotency_key=idempotency_key
        )

    async def find_order(
        self, ctx: ConnectionContext, order_id: str, location: str
    ) -> FoundOrder | None:
        """See :func:`posintegrator.hookspecs.pos_find_order`."""
        return await self._call(
            "pos_find_order",
            (FoundOrder, type(None)),
            ctx=ctx,
            order_id=order_id,
            location=location,
        )

    async def cancel_order(
        self,
        ctx: ConnectionContext,
        order_id: str,
        pos_order_id: str | None,
        location: str,
        reason: str,
    ) -> CancelResult:
        """See :func:`posintegrator.hookspecs.pos_cancel_order`."""
        return await self._call(
            "pos_cancel_order",
            CancelResult,
            ctx=ctx,
            order_id=order_id,
            pos_order_id=pos_order_id,
            location=location,
            reason=reason,
        )

    async def poll_status(
        self, ctx: ConnectionContext, orders: list[TrackedOrder]
    ) -> list[StatusEvent]:
        """See :func:`posintegrator.hookspecs.pos_poll_status`."""
        return await self._call("pos_poll_status", list, ctx=ctx, orders=orders)

    async def parse_webhook(self, ctx: ConnectionContext, request: InboundWebhook) -> WebhookResult:
        """See :func:`posintegrator.hookspecs.pos_parse_webhook`."""
        return await self._call("pos_parse_webhook", WebhookResult, ctx=ctx, request=request)


class PluginHost:
    """The loaded plugins, and the broadcast hooks called on all of them."""

    def __init__(self, pm: pluggy.PluginManager, infos: Iterable[PluginInfo]) -> None:
        self._pm = pm
        self._infos = {info.name: info for info in infos}
        self._pos = {name: PosPlugin(pm, info) for name, info in self._infos.items()}

    @classmethod
    def load(cls, names: Iterable[str]) -> PluginHost:
        """Load and register the named plugins.

        :raises StartupError: naming the plugin and the cause, if one is not installed, fails to
            import, is built for a plugin API range that excludes this host's
            (:mod:`posintegrator.plugin_api`), or has a hook implementation that does not match
            its specification.
        """
        wanted = sorted(set(names))
        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        if not wanted:
            return cls(pm, [])
        failures: list[str] = []

        def on_failure(_manager: Any, entry_point: Any, exc: BaseException) -> None:
            failures.append(
                f"plugin {entry_point.name!r} ({entry_point.value}) failed to import: "
                f"{type(exc).__name__}: {exc}"
            )

        missing: list[str] = []
        manager = NamedExtensionManager(
            ENTRY_POINT_GROUP,
            names=wanted,
            invoke_on_load=False,
            name_order=True,
            on_load_failure_callback=on_failure,
            on_missing_entrypoints_callback=lambda names: missing.extend(sorted(names)),
        )
        if failures:
            raise StartupError(failures[0])
        if missing:
            installed = ", ".join(installed_plugins()) or "none"
            raise StartupError(
                f"plugin {missing[0]!r} is not installed (installed plugins: {installed}); "
                f"install its package, e.g. pip install posintegrator-pos-{missing[0]}"
            )
        infos = []
        for extension in manager.extensions:
            infos.append(_register(pm, extension))
        try:
            pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise StartupError(f"plugin {pm.get_name(exc.plugin)!r}: {exc}") from None
        return cls(pm, infos)

    @classmethod
    def from_objects(cls, plugins: dict[str, object], version: str = "0") -> PluginHost:
        """Register plugin objects directly, without entry points (embedding, tests).

        :raises StartupError: as :meth:`load` does for a hookimpl that does not match its spec.
        """
        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        for name, plugin in plugins.items():
            try:
                pm.register(plugin, name=name)
            except pluggy.PluginValidationError as exc:
                raise StartupError(f"plugin {name!r}: {exc}") from None
        try:
            pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise StartupError(f"plugin {pm.get_name(exc.plugin)!r}: {exc}") from None
        return cls(pm, [PluginInfo(name, version, None) for name in plugins])

    def plugins(self) -> list[PluginInfo]:
        """The loaded plugins."""
        return list(self._infos.values())

    def pos(self, name: str) -> PosPlugin:
        """The per-POS facade of plugin ``name``."""
        return self._pos[name]

    def transforms_menus(self) -> bool:
        """Whether any plugin implements ``posintegrator_transform_menu``: if none does, a menu
        several locations share is checked once for all of them."""
        return bool(self._pm.hook.posintegrator_transform_menu.get_hookimpls())

    async def transform_menu(self, menu: Menu, location: str, connection: str) -> None:
        """Let every plugin adjust ``menu`` in place, one after the other."""
        for result in self._pm.hook.posintegrator_transform_menu(
            menu=menu, location=location, connection=connection
        ):
            if inspect.isawaitable(result):
                await result

    async def order_status_changed(
        self, order_id: str, old: OrderStatus, new: OrderStatus, event: StatusEvent
    ) -> None:
        """Tell every observer about a status change; an observer's error is only logged."""
        try:
            results = self._pm.hook.posintegrator_order_status_changed(
                order_id=order_id, old=old, new=new, event=event
            )
        except Exception:
            logger.exception("a posintegrator_order_status_changed observer failed")
            return
        for result in results:
            if inspect.isawaitable(result):
                try:
                    await result
                except Exception:
                    logger.exception("a posintegrator_order_status_changed observer failed")

    async def connection_alert(self, connection: str, kind: str, message: str) -> None:
        """Tell every observer a person should look at a connection; errors are only logged."""
        try:
            results = self._pm.hook.posintegrator_connection_alert(
                connection=connection, kind=kind, message=message
            )
            for result in results:
                if inspect.isawaitable(result):
                    await result
        except Exception:
            logger.exception("a posintegrator_connection_alert observer failed")

    def validate_connections(self, settings: HostSettings) -> dict[str, BaseModel]:
        """Validate each connection's plugin settings and capabilities against its plugin.

        :returns: each connection's validated plugin settings, by connection name.
        :raises SettingsError: listing every problem with its path in the settings file.
        """
        problems = connection_conflicts(settings.connections)
        agent = settings.agent is not None
        validated: dict[str, BaseModel] = {}
        for index, connection in enumerate(settings.connections):
            model, found = self.validate_connection(index, connection, agent=agent)
            problems.extend(found)
            if model is not None:
                validated[connection.name] = model
        if problems:
            raise SettingsError(problems)
        return validated

    def validate_connection(
        self, index: int, connection: ConnectionSettings, *, agent: bool = False
    ) -> tuple[BaseModel | None, list[SettingsProblem]]:
        """Check one connection (``connections[index]`` in the file) against its plugin.

        :param agent: whether the settings are a venue agent's (else a hub's or a central
            host's): it decides which streams of the connection run here.
        :returns: the validated plugin settings (None if invalid) and the problems found.
        """
        where = f"connections[{index}]"
        plugin = self._pos.get(connection.plugin)
        if plugin is None:
            message = f"plugin {connection.plugin!r} not loaded"
            return None, [SettingsProblem(path=f"{where}.plugin", message=message)]
        placement = _placement_problems(plugin, connection, where, agent=agent)
        if placement:
            return None, placement
        if not agent and connection.placement == "local":
            # The hub never calls a local POS: its settings belong in the agent's file.
            if connection.settings:
                return None, [
                    SettingsProblem(
                        path=f"{where}.settings",
                        message="a local connection's POS settings belong in its venue "
                        "agent's settings file, not the hub's",
                    )
                ]
            return NoSettings(), _capability_problems(plugin, "webhook", where, local=True)
        try:
            model = plugin.settings_model().model_validate(connection.settings)
        except ValidationError as exc:
            return None, problems_from(exc, prefix=f"{where}.settings")
        except StartupError as exc:
            return None, [SettingsProblem(path=f"{where}.plugin", message=str(exc))]
        return model, _capability_problems(plugin, connection.status_source, where)


class NoSettings(BaseModel):
    """The plugin settings of a connection whose POS this process never calls (a hub's local
    connection: its venue agent holds them)."""


def connection_conflicts(connections: list[ConnectionSettings]) -> list[SettingsProblem]:
    """Connections that share a name, or a location served twice."""
    problems: list[SettingsProblem] = []
    names: set[str] = set()
    served_by: dict[str, str] = {}
    for index, connection in enumerate(connections):
        # '-' and '_' read the same in environment variable names, so they must differ otherwise.
        key = connection.name.replace("-", "_")
        if key in names:
            problems.append(
                SettingsProblem(
                    path=f"connections[{index}].name",
                    message="duplicate name ('-' and '_' count as the same character)",
                )
            )
        names.add(key)
        for location in connection.locations:
            if location in served_by:
                problems.append(
                    SettingsProblem(
                        path=f"connections[{index}].locations",
                        message=f"location {location!r} is already served by connection "
                        f"{served_by[location]!r}",
                    )
                )
            served_by.setdefault(location, connection.name)
    return problems


def _placement_problems(
    plugin: PosPlugin, connection: ConnectionSettings, where: str, *, agent: bool
) -> list[SettingsProblem]:
    """A placement the plugin cannot serve, or that this role cannot run."""
    path = f"{where}.placement"
    if agent and connection.placement == "central":
        return [
            SettingsProblem(
                path=path,
                message="a venue agent serves local or hybrid connections; a central one "
                "belongs in the hub's settings",
            )
        ]
    try:
        deployments = plugin.capabilities().deployments
    except (StartupError, RetryableError) as exc:
        return [SettingsProblem(path=f"{where}.plugin", message=str(exc))]
    if connection.placement not in deployments:
        served = ", ".join(d.value for d in deployments) or "none"
        return [
            SettingsProblem(
                path=path,
                message=f"plugin {plugin.name!r} cannot serve a {connection.placement} "
                f"deployment (it serves: {served})",
            )
        ]
    return []


def _capability_problems(
    plugin: PosPlugin, status_source: str, where: str, *, local: bool = False
) -> list[SettingsProblem]:
    """Capabilities a connection needs that the plugin lacks; ``local`` when the hub does not
    call the POS itself (only that the plugin takes orders matters then)."""
    try:
        caps = plugin.capabilities()
    except (StartupError, RetryableError) as exc:
        return [SettingsProblem(path=f"{where}.plugin", message=str(exc))]
    if local:
        return []
    problems = []
    if status_source == "polling" and not caps.status_polling:
        problems.append(
            SettingsProblem(
                path=f"{where}.status_source",
                message=f"plugin {plugin.name!r} cannot poll status; use 'webhook' or 'auto'",
            )
        )
    if status_source == "webhook" and not caps.status_webhooks:
        problems.append(
            SettingsProblem(
                path=f"{where}.status_source",
                message=f"plugin {plugin.name!r} cannot receive status webhooks; use 'polling'",
            )
        )
    promised = plugin.promised_hooks(caps)
    for hook_name, declared in promised.items():
        if declared and not plugin.implements(hook_name):
            problems.append(
                SettingsProblem(
                    path=f"{where}.plugin",
                    message=f"plugin {plugin.name!r} declares a capability but does not "
                    f"implement {hook_name}",
                )
            )
    return problems


def _distribution(name: str) -> Any:
    """The installed distribution that provides plugin ``name``, if known."""
    from importlib.metadata import entry_points

    for entry_point in entry_points(group=ENTRY_POINT_GROUP, name=name):
        return entry_point.dist
    return None


def _register(pm: pluggy.PluginManager, extension: Extension[Any]) -> PluginInfo:
    dist = _distribution(extension.name)
    info = PluginInfo(
        name=extension.name,
        version=dist.version if dist is not None else "unknown",
        distribution=dist.name if dist is not None else None,
    )
    declared = declared_range(extension.plugin)
    refusal = incompatibility(info.name, declared, info.distribution, info.version)
    if refusal is not None:
        raise StartupError(refusal)
    if declared is None:
        logger.warning(
            "plugin {!r} declares no plugin API range ({} in its module): it is loaded, but "
            "nothing checks that it fits this host",
            info.name,
            RANGE_ATTRIBUTE,
        )
    try:
        pm.register(extension.plugin, name=extension.name)
    except pluggy.PluginValidationError as exc:
        raise StartupError(f"plugin {extension.name!r}: {exc}") from None
    except ValueError as exc:
        raise StartupError(f"plugin {extension.name!r} cannot be registered: {exc}") from None
    return info


__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginHost",
    "PluginInfo",
    "PosPlugin",
    "SettingsError",
    "installed_plugins",
]
