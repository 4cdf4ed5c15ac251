"""posintegrator: keeps restaurant POS systems and a cloud ordering platform in sync.

Plugin authors need :data:`hookimpl` and the universal model; see docs/plugin-guide.md.
"""

from posintegrator.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl"]
