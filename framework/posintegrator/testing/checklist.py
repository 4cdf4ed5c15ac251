"""The conformance kit's static part: what can be checked of an installed plugin without a POS.

``posintegrator plugins check NAME`` prints this checklist, and the kit's
``test_static_checklist_passes`` fails on any item that does not pass. Each item says what was
checked and, when it fails, what to change. Nothing here needs pytest.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from importlib.metadata import Distribution, PackageNotFoundError, distribution, entry_points

from packaging.requirements import InvalidRequirement, Requirement
from pydantic import SecretStr

from posintegrator.errors import RetryableError, StartupError
from posintegrator.plugin_api import (
    PLUGIN_API_VERSION,
    RANGE_ATTRIBUTE,
    declared_range,
    incompatibility,
)
from posintegrator.plugins import ENTRY_POINT_GROUP, PluginHost, PosPlugin

#: Words in a settings field's name that mean it holds a credential (then it must be SecretStr).
SECRET_WORDS = ("key", "secret", "token", "password", "credential")


class Outcome(StrEnum):
    """How one checklist item came out."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Item:
    """One checklist item: what was checked, how it came out, and the detail or the fix."""

    title: str
    outcome: Outcome
    detail: str = ""


def check_plugin(name: str) -> list[Item]:
    """Run every static check against the installed plugin ``name``."""
    found = list(entry_points(group=ENTRY_POINT_GROUP, name=name))
    if not found:
        return [
            Item(
                "entry point",
                Outcome.FAILED,
                f"no {ENTRY_POINT_GROUP!r} entry point named {name!r}: declare it in the "
                f'plugin\'s pyproject.toml ([project.entry-points."{ENTRY_POINT_GROUP}"])',
            )
        ]
    entry_point = found[0]
    dist = entry_point.dist
    items = [
        Item(
            "entry point",
            Outcome.PASSED,
            f"{name} = {entry_point.value}"
            + (f" (from {dist.name} {dist.version})" if dist is not None else ""),
        ),
        _requirement_item(dist),
    ]
    try:
        module = entry_point.load()
    except Exception as exc:  # any import failure is the finding
        items.append(Item("imports", Outcome.FAILED, f"{type(exc).__name__}: {exc}"))
        return items
    items.append(_api_range_item(name, module, dist))
    try:
        host = PluginHost.load([name])
    except StartupError as exc:
        items.append(Item("hooks match their specifications", Outcome.FAILED, str(exc)))
        return items
    items.append(Item("hooks match their specifications", Outcome.PASSED))
    pos = host.pos(name)
    items.append(_settings_item(pos))
    items.extend(_capability_items(pos))
    return items


def _requirement_item(dist: Distribution | None) -> Item:
    """The plugin's package requires posintegrator within a version range."""
    title = "requires posintegrator with a version range"
    if dist is None:
        return Item(title, Outcome.SKIPPED, "the entry point's distribution is not known")
    for line in dist.requires or []:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if requirement.name.lower() != "posintegrator" or requirement.marker is not None:
            continue
        if any(spec.operator in ("<", "<=", "==", "~=") for spec in requirement.specifier):
            return Item(title, Outcome.PASSED, str(requirement))
        return Item(
            title,
            Outcome.FAILED,
            f"{dist.name} requires {requirement}: add an upper bound, e.g. "
            f"'posintegrator>={_installed_host()},<1'",
        )
    return Item(title, Outcome.FAILED, f"{dist.name} does not list posintegrator as a dependency")


def _installed_host() -> str:
    try:
        return distribution("posintegrator").version
    except PackageNotFoundError:  # pragma: no cover - the host is running this very code
        return "0.1"


def _api_range_item(name: str, module: object, dist: Distribution | None) -> Item:
    """The plugin declares a plugin API range, and it holds this host's version."""
    title = f"plugin API range holds {PLUGIN_API_VERSION}"
    declared = declared_range(module)
    if declared is None:
        return Item(
            title,
            Outcome.FAILED,
            f"declare it in the entry-point module: {RANGE_ATTRIBUTE} = "
            f'">={PLUGIN_API_VERSION},<{int(PLUGIN_API_VERSION.split(".")[0]) + 1}"',
        )
    refusal = incompatibility(
        name,
        declared,
        dist.name if dist is not None else None,
        dist.version if dist is not None else "unknown",
    )
    if refusal is not None:
        return Item(title, Outcome.FAILED, refusal)
    return Item(title, Outcome.PASSED, declared)


def _settings_item(pos: PosPlugin) -> Item:
    """The settings model is a pydantic model that refuses unknown keys and hides secrets."""
    title = "settings model refuses unknown keys and keeps credentials in SecretStr"
    try:
        model = pos.settings_model()
    except StartupError as exc:
        return Item(title, Outcome.FAILED, str(exc))
    problems = []
    if model.model_config.get("extra") != "forbid":
        problems.append('set model_config = ConfigDict(extra="forbid") so typos are reported')
    for field_name, info in model.model_fields.items():
        credential = any(word in field_name.lower() for word in SECRET_WORDS)
        if credential and _holds(info.annotation, str) and not _holds(info.annotation, SecretStr):
            problems.append(f"{field_name} looks like a credential: make it SecretStr")
    if problems:
        return Item(title, Outcome.FAILED, "; ".join(problems))
    return Item(title, Outcome.PASSED, model.__name__)


def _holds(annotation: object, kind: type) -> bool:
    """Whether a field annotation is ``kind`` (possibly optional, in a list, or annotated):
    a text field named like a credential must be SecretStr; a time or a number is not one."""
    if annotation is kind:
        return True
    parts = (*getattr(annotation, "__args__", ()), getattr(annotation, "__origin__", None))
    return any(part is not None and _holds(part, kind) for part in parts)


def _capability_items(pos: PosPlugin) -> list[Item]:
    """The capabilities are declared, consistent, and every promised hook is implemented."""
    try:
        caps = pos.capabilities()
    except (StartupError, RetryableError) as exc:
        return [Item("capabilities declared", Outcome.FAILED, str(exc))]
    flags = [k for k, v in caps.model_dump().items() if v is True]
    items = [Item("capabilities declared", Outcome.PASSED, ", ".join(flags) or "none")]
    promised = pos.promised_hooks(caps)
    missing = [hook for hook, declared in promised.items() if declared and not pos.implements(hook)]
    unused = [hook for hook, declared in promised.items() if not declared and pos.implements(hook)]
    if missing:
        items.append(
            Item(
                "every promised hook is implemented",
                Outcome.FAILED,
                f"capabilities promise {', '.join(missing)}, which the plugin does not implement",
            )
        )
    else:
        detail = ", ".join(h for h, declared in promised.items() if declared)
        if unused:
            detail += f" (implemented but not declared, so never called: {', '.join(unused)})"
        items.append(Item("every promised hook is implemented", Outcome.PASSED, detail))
    if caps.orders and not (caps.status_polling or caps.status_webhooks):
        items.append(
            Item(
                "order status has a way back",
                Outcome.FAILED,
                "a plugin that takes orders must report status by webhook or by polling",
            )
        )
    elif caps.orders:
        ways = {"webhooks": caps.status_webhooks, "polling": caps.status_polling}
        detail = " and ".join(way for way, on in ways.items() if on)
        items.append(Item("order status has a way back", Outcome.PASSED, detail))
    if not caps.deployments:
        items.append(Item("deployments declared", Outcome.FAILED, "declare at least one"))
    else:
        items.append(
            Item(
                "deployments declared",
                Outcome.PASSED,
                ", ".join(d.value for d in caps.deployments),
            )
        )
    return items


def render(name: str, items: list[Item]) -> str:
    """The checklist as text: one line per item, ``[x]`` passed, ``[ ]`` failed, ``[-]``
    skipped, with its detail."""
    marks = {Outcome.PASSED: "[x]", Outcome.FAILED: "[ ]", Outcome.SKIPPED: "[-]"}
    lines = [f"plugin {name!r}: static checks of the conformance kit"]
    for item in items:
        line = f"{marks[item.outcome]} {item.title}"
        if item.detail:
            line += f": {item.detail}"
        lines.append(line)
    failed = sum(1 for item in items if item.outcome is Outcome.FAILED)
    lines.append(
        f"{failed} item(s) to fix"
        if failed
        else "all static checks pass; now run the kit (pytest) against the plugin's test POS"
    )
    return "\n".join(lines)


__all__ = ["Item", "Outcome", "check_plugin", "render"]
