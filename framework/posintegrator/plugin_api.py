"""The plugin API version the host offers, and the check of the range a plugin was built for.

The plugin API is the contract in :mod:`posintegrator.hookspecs` and the values it exchanges
(:mod:`posintegrator.hooktypes`, :mod:`posintegrator.model`, :mod:`posintegrator.errors`,
:class:`~posintegrator.context.ConnectionContext`). Its version moves on its own, not with the
package's: the minor part grows when something is added that older plugins can ignore (a new
optional hook, a new optional field), the major part when an existing plugin could break (a hook
renamed, an argument added, a meaning changed).

A plugin declares the range it was built for as a module attribute of its entry-point module::

    POSINTEGRATOR_PLUGIN_API = ">=1.0,<2"

and the host refuses, at start-up, a plugin whose range does not hold its version, with one line
naming the plugin, both versions and what to do.
"""

from __future__ import annotations

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

#: The plugin API this host offers.
PLUGIN_API_VERSION = "1.0"

#: The module attribute in which a plugin declares the plugin API range it was built for.
RANGE_ATTRIBUTE = "POSINTEGRATOR_PLUGIN_API"


def declared_range(plugin: object) -> str | None:
    """The plugin API range a plugin object (its module) declares, or None."""
    value = getattr(plugin, RANGE_ATTRIBUTE, None)
    return value if isinstance(value, str) else None


def incompatibility(
    name: str, declared: str | None, distribution: str | None, version: str
) -> str | None:
    """Why plugin ``name`` cannot be loaded by this host, in one line; None when it can.

    :param declared: the range the plugin declares (``None``: it declares none, which is
        allowed: such a plugin predates versioning and is loaded, with a warning elsewhere).
    :param distribution: the package that provides the plugin, for the advice.
    :param version: that package's version.
    """
    if declared is None:
        return None
    package = distribution or f"the package providing {name!r}"
    try:
        accepted = SpecifierSet(declared)
    except InvalidSpecifier:
        return (
            f"plugin {name!r} ({package} {version}) declares {RANGE_ATTRIBUTE} = {declared!r}, "
            f"which is not a version range: write one such as '>=1.0,<2' in its module"
        )
    if accepted.contains(Version(PLUGIN_API_VERSION), prereleases=True):
        return None
    return (
        f"plugin {name!r} ({package} {version}) is built for plugin API {declared} but this "
        f"posintegrator offers plugin API {PLUGIN_API_VERSION}: install a release of {package} "
        f"built for plugin API {PLUGIN_API_VERSION}, or a posintegrator whose plugin API is "
        f"in {declared}"
    )


__all__ = ["PLUGIN_API_VERSION", "RANGE_ATTRIBUTE", "declared_range", "incompatibility"]
