"""The plugin template's own tests: render it with several answer sets, install each result
and run its tests (the conformance kit included), as a partner would right after
``copier copy``; and check that ``copier update`` brings a template change into a plugin.

Run by ``tox -e template``. Each rendered plugin is installed (editable, no dependencies: the
host is already in the environment) for its test run and uninstalled after.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from copier import run_copy, run_update

REPOSITORY = Path(__file__).resolve().parents[2]
TEMPLATE = REPOSITORY / "templates" / "pos_plugin"

#: Answer sets whose plugins are installed and tested, with the kit's tests each must skip
#: (and why) and the number of kit tests it must pass at least.
ANSWER_SETS: dict[str, dict[str, Any]] = {
    "webhook-only": {
        "answers": {
            "pos_name": "Hook POS",
            "status_polling": False,
            "idempotent_submit": False,
        },
        "skips": ["capabilities.status_polling is false", "capabilities.order_cancel is false"],
    },
    "polling-only": {
        "answers": {
            "pos_name": "Poll POS",
            "status_webhooks": False,
            "order_lookup": False,
            "deployments": ["central", "local"],
        },
        "skips": [
            "capabilities.status_webhooks is false",
            "capabilities.order_lookup is false",
        ],
    },
    "menu-only": {
        "answers": {"pos_name": "Menu POS", "orders": False},
        "skips": ["capabilities.orders is false"],
    },
}


def render(destination: Path, answers: dict[str, Any], source: Path = TEMPLATE) -> Path:
    """Render the template into ``destination`` with ``answers`` (defaults for the rest)."""
    run_copy(
        str(source),
        destination,
        data=answers,
        defaults=True,
        unsafe=True,
        quiet=True,
    )
    return destination


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), cwd=cwd, capture_output=True, text=True, env=env, timeout=600, check=False
    )


@pytest.fixture
def installed(tmp_path: Path) -> Iterator[list[str]]:
    """Distributions installed by the test, uninstalled after it."""
    names: list[str] = []
    yield names
    if names:
        run(sys.executable, "-m", "pip", "uninstall", "-q", "-y", *names, cwd=tmp_path)


# Installing and running a whole plugin's tests takes a minute or two on a busy machine.
@pytest.mark.timeout(900)
@pytest.mark.parametrize("answer_set", list(ANSWER_SETS))
def test_rendered_plugin_installs_and_passes_its_tests(
    answer_set: str, tmp_path: Path, installed: list[str]
) -> None:
    spec = ANSWER_SETS[answer_set]
    plugin = render(tmp_path / "plugin", spec["answers"])
    answers = (plugin / ".copier-answers.yml").read_text(encoding="utf-8")
    assert "_src_path" in answers, "copier update needs the answers file"

    lint = run(sys.executable, "-m", "ruff", "check", "--no-cache", ".", cwd=plugin)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = run(sys.executable, "-m", "ruff", "format", "--no-cache", "--check", ".", cwd=plugin)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr

    distribution = next(
        line.split("=", 1)[1].strip().strip('"')
        for line in (plugin / "pyproject.toml").read_text(encoding="utf-8").splitlines()
        if line.startswith("name = ")
    )
    install = run(sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", ".", cwd=plugin)
    assert install.returncode == 0, install.stdout + install.stderr
    installed.append(distribution)

    env = {k: v for k, v in os.environ.items() if not k.startswith("POSINTEGRATOR_")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # stevedore's entry-point cache
    report = tmp_path / "report.xml"
    tests = run(
        sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
        f"--junitxml={report}", cwd=plugin, env=env,
    )  # fmt: skip
    assert tests.returncode == 0, tests.stdout[-6000:] + tests.stderr[-2000:]

    # Our own pytest's report, not untrusted input.
    cases = ET.parse(report).getroot().iter("testcase")  # noqa: S314
    outcomes: dict[str, list[str]] = {"passed": [], "skipped": []}
    kit_passed = 0
    for case in cases:
        skipped = case.find("skipped")
        if skipped is not None:
            outcomes["skipped"].append(skipped.get("message", ""))
        else:
            outcomes["passed"].append(case.get("name", ""))
            kit_passed += "test_conformance" in case.get("classname", "")
    for reason in spec["skips"]:
        assert any(reason in message for message in outcomes["skipped"]), (reason, outcomes)
    assert all(message.strip() for message in outcomes["skipped"]), "a skip without a reason"
    assert kit_passed >= 5, outcomes["passed"]
    assert "test_static_checklist_passes" in outcomes["passed"]


def test_defaults_render_every_capability(tmp_path: Path) -> None:
    """``copier copy`` with defaults gives a plugin promising every hook the template knows."""
    plugin = render(tmp_path / "plugin", {})
    source = (plugin / "pos_acme" / "plugin.py").read_text(encoding="utf-8")
    for hook in (
        "pos_fetch_menu",
        "pos_submit_order",
        "pos_find_order",
        "pos_poll_status",
        "pos_parse_webhook",
    ):
        assert f"def {hook}(" in source, hook
    assert 'POSINTEGRATOR_PLUGIN_API = ">=1.0,<2"' in source
    pyproject = (plugin / "pyproject.toml").read_text(encoding="utf-8")
    assert 'acme = "pos_acme.plugin"' in pyproject
    assert '"posintegrator>=0.1,<1"' in pyproject


def test_a_plugin_must_report_status_somehow(tmp_path: Path) -> None:
    """The template refuses answers that would generate a plugin the host refuses."""
    with pytest.raises(ValueError, match="webhook or by polling"):
        render(tmp_path / "plugin", {"status_webhooks": False, "status_polling": False})


def git(*args: str, cwd: Path) -> str:
    done = run(
        "git", "-c", "user.name=kit", "-c", "user.email=kit@example.com", *args, cwd=cwd
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_copier_update_brings_a_template_change_and_keeps_local_edits(tmp_path: Path) -> None:
    """The repository is the versioned template source (its root copier.yml): a plugin made
    from one release gets a later release's change with ``copier update``, and its own edits
    stay."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed: copier update needs it")
    source = tmp_path / "posintegrator"
    (source / "templates").mkdir(parents=True)
    shutil.copy(REPOSITORY / "copier.yml", source / "copier.yml")
    shutil.copytree(TEMPLATE, source / "templates" / "pos_plugin")
    git("init", "-q", cwd=source)
    git("add", "-A", cwd=source)
    git("commit", "-qm", "release 1", cwd=source)
    git("tag", "v1", cwd=source)

    plugin = tmp_path / "pos_acme"
    run_copy(str(source), plugin, defaults=True, unsafe=True, quiet=True, vcs_ref="v1")
    git("init", "-q", cwd=plugin)
    readme = plugin / "README.md"
    readme.write_text(readme.read_text(encoding="utf-8") + "\nOur own note.\n", encoding="utf-8")
    git("add", "-A", cwd=plugin)
    git("commit", "-qm", "generated, with a note", cwd=plugin)

    checklist = source / "templates" / "pos_plugin" / "template" / "CHECKLIST.md.jinja"
    checklist.write_text(
        checklist.read_text(encoding="utf-8") + "- [ ] A check added in release 2.\n",
        encoding="utf-8",
    )
    git("commit", "-qam", "release 2", cwd=source)
    git("tag", "v2", cwd=source)

    run_update(plugin, defaults=True, overwrite=True, unsafe=True, quiet=True, vcs_ref="v2")

    assert "A check added in release 2." in (plugin / "CHECKLIST.md").read_text(encoding="utf-8")
    assert "Our own note." in readme.read_text(encoding="utf-8")
    assert "_commit: v2" in (plugin / ".copier-answers.yml").read_text(encoding="utf-8")
