"""The documentation stays true to the code: hooks, routes, settings, the webhook signature.

Each test compares a page in docs/ with the code it describes, so adding a hook, a route or a
setting without documenting it, or changing the signature scheme, fails here.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import subprocess
import sys
import types
import typing
from pathlib import Path
from typing import Any

import orjson
import pytest
from helpers import SignedDelivery
from pydantic import BaseModel

from posintegrator import hookspecs
from posintegrator.api.routes import ROUTES
from posintegrator.cloud import signatures
from posintegrator.cloud.notifier import delivery_headers
from posintegrator.settings import (
    ApiSettings,
    CloudSettings,
    ConnectionSettings,
    HostSettings,
    StoreSettings,
)

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _sections(text: str) -> dict[str, str]:
    """Level-2 sections of a page: heading text -> the section's text up to the next one."""
    sections: dict[str, str] = {}
    current: str | None = None
    lines: list[str] = []
    in_code = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if not in_code and line.startswith("## "):
            if current is not None:
                sections[current] = "\n".join(lines)
            current, lines = line[3:].strip(), []
        elif current is not None:
            lines.append(line)
    if current is not None:
        sections[current] = "\n".join(lines)
    return sections


def _hookspec_names() -> set[str]:
    marker = f"{hookspecs.PROJECT}_spec"
    names = {
        name
        for name, func in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(func, marker) and name.startswith(("pos_", "posintegrator_"))
    }
    assert names, "no hookspecs found in posintegrator.hookspecs"
    return names


# --- (1) every hook has its section in docs/hooks.md, and every section is a hook ------------


def test_every_hookspec_has_a_section_in_hooks_md() -> None:
    sections = _sections(_page("hooks.md"))
    missing = sorted(_hookspec_names() - set(sections))
    assert not missing, f"docs/hooks.md lacks a '## <name>' section for: {missing}"


def test_every_section_of_hooks_md_names_a_hookspec() -> None:
    stale = sorted(set(_sections(_page("hooks.md"))) - _hookspec_names())
    assert not stale, f"docs/hooks.md has '## ' sections for hooks that do not exist: {stale}"


def test_each_hook_section_shows_its_signature() -> None:
    sections = _sections(_page("hooks.md"))
    for name in sorted(_hookspec_names() & set(sections)):
        spec = inspect.signature(getattr(hookspecs, name))
        body = sections[name]
        assert re.search(rf"def {name}\(", body), f"section {name} does not show its signature"
        for parameter in spec.parameters:
            assert re.search(rf"\b{parameter}\b", body), (
                f"section {name} does not mention its parameter {parameter!r}"
            )


# --- (2) every route is documented in docs/api.md ---------------------------------------------


def test_every_route_is_in_api_md() -> None:
    assert ROUTES, "posintegrator.api.routes.ROUTES is empty"
    headings = set(_sections(_page("api.md")))
    missing = [f"{r.method} {r.path}" for r in ROUTES if f"{r.method} {r.path}" not in headings]
    assert not missing, f"docs/api.md lacks a '## METHOD path' section for: {missing}"


def test_api_md_documents_no_route_that_does_not_exist() -> None:
    routes = {f"{r.method} {r.path}" for r in ROUTES}
    route_like = re.compile(r"^(GET|POST|PUT|PATCH|DELETE) /")
    stale = [h for h in _sections(_page("api.md")) if route_like.match(h) and h not in routes]
    assert not stale, f"docs/api.md documents routes that do not exist: {stale}"


# --- (3) every settings field is in docs/deployer-guide.md ------------------------------------


def _section_model(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The settings model of a HostSettings field, and whether the field is a list of them."""
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return annotation, False
    if isinstance(annotation, types.UnionType):  # a section in some files only ([agent])
        optional = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(optional) == 1 and issubclass(optional[0], BaseModel):
            return optional[0], False
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        if inspect.isclass(item) and issubclass(item, BaseModel):
            return item, True
    return None, False


def _documented_setting_names() -> tuple[list[str], set[type[BaseModel]]]:
    names: list[str] = []
    sections: set[type[BaseModel]] = set()
    for field_name, info in HostSettings.model_fields.items():
        model, is_list = _section_model(info.annotation)
        if model is None:
            names.append(field_name)
            continue
        sections.add(model)
        prefix = f"{field_name}[]" if is_list else field_name
        names.extend(f"{prefix}.{name}" for name in model.model_fields)
    return names, sections


def test_every_setting_is_in_the_deployer_guide() -> None:
    names, sections = _documented_setting_names()
    assert {ApiSettings, StoreSettings, CloudSettings, ConnectionSettings} <= sections
    guide = _page("deployer-guide.md")
    missing = [name for name in names if f"`{name}`" not in guide]
    assert not missing, f"docs/deployer-guide.md does not document: {missing}"


def test_the_annotated_settings_file_sets_every_field() -> None:
    guide = _page("deployer-guide.md")
    toml = next(
        (
            block
            for block in re.findall(r"```toml\n(.*?)```", guide, re.S)
            if "[[connections]]" in block
        ),
        None,
    )
    assert toml is not None, "docs/deployer-guide.md has no annotated settings file"
    names, _ = _documented_setting_names()
    for name in names:
        key = re.escape(name.rsplit(".", 1)[-1])
        assert re.search(rf"^(#? ?{key} =|\[\w+\.{key}\])", toml, re.M), (
            f"the annotated settings file in docs/deployer-guide.md does not show {name}"
        )


# --- (4) the webhook signature in docs/cloud-webhooks.md matches posintegrator.cloud ----------

EXAMPLE_SECRETS = (
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "whsec_R9JQ+OOEVrZoPwt/E5ec5Tk5gY37VQBjEKM2Q1LpTGk=",
)
EXAMPLE_ID = "3b3f7ff4-3614-4df9-9edf-76561b7d5a65"
EXAMPLE_TIMESTAMP = 1764386881
EXAMPLE_BODY = b'{"type":"menu.published"}'


def _python_block(defining: str) -> tuple[str, dict[str, Any]]:
    """The one python block of docs/cloud-webhooks.md defining ``defining``, executed."""
    page = _page("cloud-webhooks.md")
    blocks = [b for b in re.findall(r"```python\n(.*?)```", page, re.S) if f"def {defining}(" in b]
    assert len(blocks) == 1, f"docs/cloud-webhooks.md needs one python block defining {defining}"
    namespace: dict[str, Any] = {"__name__": "cloud_webhooks_snippet"}
    exec(compile(blocks[0], "docs/cloud-webhooks.md", "exec"), namespace)  # noqa: S102
    return blocks[0], namespace


def test_header_names_are_documented() -> None:
    page = _page("cloud-webhooks.md")
    for header in (signatures.ID_HEADER, signatures.TIMESTAMP_HEADER, signatures.SIGNATURE_HEADER):
        assert f"`{header}`" in page, f"docs/cloud-webhooks.md does not name {header}"


def test_documented_example_is_what_the_host_sends() -> None:
    page = _page("cloud-webhooks.md")
    for value in (*EXAMPLE_SECRETS, EXAMPLE_ID, str(EXAMPLE_TIMESTAMP), EXAMPLE_BODY.decode()):
        assert f"`{value}`" in page, f"the example's input {value} is not on the page"
    keys = [signatures.secret_key(secret) for secret in EXAMPLE_SECRETS]
    sent = delivery_headers(keys, EXAMPLE_ID, EXAMPLE_TIMESTAMP, EXAMPLE_BODY)
    [example] = [b for b in re.findall(r"```http\n(.*?)```", page, re.S) if "webhook-id" in b]
    shown = dict(line.split(": ", 1) for line in example.strip().splitlines())
    assert shown == {name: value for name, value in sent.items() if name.startswith("webhook-")}


def test_documented_snippets_verify_a_delivery_the_host_sent(
    signed_delivery: SignedDelivery,
) -> None:
    """Both documented verifiers accept what the host really sent, holding either of its two
    secrets alone, and refuse everything else."""
    verify_signature = _python_block("verify_signature")[1]["verify_signature"]
    verify_with_library = _python_block("verify_with_library")[1]["verify_with_library"]
    headers, body = signed_delivery.delivery.headers, signed_delivery.delivery.body
    stranger = signatures.generate_secret()
    stamp = int(headers["webhook-timestamp"])
    for secret in signed_delivery.secrets:
        assert verify_signature(secret, headers, body) is True
        assert verify_with_library(secret, headers, body) == orjson.loads(body)
        assert verify_signature(secret, headers, body + b" ") is False
        assert verify_with_library(secret, headers, body + b" ") is None
        assert verify_signature(secret, {**headers, "webhook-id": "other"}, body) is False
        assert verify_signature(secret, headers, body, now=stamp + 3600) is False, "a replay"
        assert verify_signature(secret, headers, body, now=stamp + 299) is True
        assert verify_signature(secret, {}, body) is False
    assert verify_signature(stranger, headers, body) is False
    assert verify_with_library(stranger, headers, body) is None


def test_documented_tolerance_matches_the_host() -> None:
    _, namespace = _python_block("verify_signature")
    assert namespace["TOLERANCE_SECONDS"] == signatures.TOLERANCE_SECONDS


def test_snippet_compares_in_constant_time() -> None:
    source, _ = _python_block("verify_signature")
    assert "hmac.compare_digest(" in source
    assert "==" not in source, "compare signatures with hmac.compare_digest, not =="


def test_documented_secret_one_liner_makes_a_secret_the_host_accepts() -> None:
    page = _page("cloud-webhooks.md")
    [line] = [ln for ln in page.splitlines() if ln.startswith("python3 -c ")]
    code = line.removeprefix("python3 -c ").strip("'")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert len(signatures.secret_key(result.stdout.strip())) == 32


# --- (5) the site builds cleanly ------------------------------------------------------------


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs not installed (tox -e docs installs it)")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(tmp_path / "site"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
