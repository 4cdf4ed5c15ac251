"""The runtime needs no test tools: everything but the conformance kit imports without pytest."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import builtins, sys
real_import = builtins.__import__
def no_test_tools(name, *args, **kwargs):
    if name.split(".")[0] in ("pytest", "hypothesis", "_pytest"):
        raise ImportError(f"runtime code imported {name}")
    return real_import(name, *args, **kwargs)
builtins.__import__ = no_test_tools
import posintegrator.cli, posintegrator.runtime.host, posintegrator.demo, posintegrator.testing
import posintegrator.testing.faults, pos_demo.simulator, pos_demo.plugin
print("ok")
"""


def test_runtime_and_demo_import_without_pytest() -> None:
    run = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr
