"""The committed JSON Schemas are the models' current schemas, and they validate real documents."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from posintegrator.schemas import SCHEMAS, json_schema

DOCS = Path(__file__).resolve().parents[1] / "docs" / "schemas"


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
def test_committed_schema_is_current(kind: str) -> None:
    committed = orjson.loads((DOCS / f"{kind}.schema.json").read_bytes())
    assert committed == json_schema(kind), (
        f"docs/schemas/{kind}.schema.json is stale: regenerate it with "
        f"`posintegrator schema {kind} > docs/schemas/{kind}.schema.json`"
    )


def test_cli_prints_the_schema() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "posintegrator.cli", "schema", "order"],
        capture_output=True,
        check=True,
    )
    assert orjson.loads(run.stdout) == json_schema("order")


def test_schemas_validate_real_documents_and_refuse_bad_ones(
    example_order: dict[str, Any],
) -> None:
    order_schema = json_schema("order")
    jsonschema.Draft202012Validator.check_schema(order_schema)
    jsonschema.validate(example_order, order_schema)
    delivery = orjson.loads((DOCS.parents[1] / "examples" / "delivery-order.json").read_bytes())
    jsonschema.validate(delivery, order_schema)
    bad = {**example_order, "total": -5}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, order_schema)
    event = {
        "type": "menu.published",
        "event_id": "e1",
        "sequence": 2,
        "location": "downtown",
        "version": 2,
        "content_hash": "abc",
        "published_at": "2026-11-29T03:00:00Z",
        "menu_url": "/v1/locations/downtown/menu",
        "diff_url": "/v1/locations/downtown/menu?since=1",
        "notice": {"previous_version": 1, "changes": {"added": 1, "removed": 0, "changed": 2}},
    }
    jsonschema.validate(event, json_schema("event"))
