"""JSON Schemas of the documents the cloud exchanges with the host, generated from the models.

They are committed under ``docs/schemas/`` for people and tools that do not read Python; a test
fails when a committed file no longer matches the models.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter

from posintegrator.cloud.events import CloudEvent
from posintegrator.model import Menu, Order

SCHEMAS: dict[str, str] = {
    "menu": "The universal menu of one location (GET /v1/locations/{location}/menu).",
    "order": "An order from the cloud (POST /v1/orders).",
    "event": "A webhook event the host sends to the cloud.",
}


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``kind``: one of :data:`SCHEMAS`."""
    schema: dict[str, Any]
    if kind == "event":
        schema = TypeAdapter(CloudEvent).json_schema(mode="serialization")
        schema["title"] = "CloudEvent"
    else:
        models: dict[str, type[BaseModel]] = {"menu": Menu, "order": Order}
        # An order is what the cloud sends (validated); a menu is what the host serves.
        if kind == "order":
            schema = models[kind].model_json_schema(mode="validation")
        else:
            schema = models[kind].model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://posintegrator.dev/schemas/{kind}.schema.json",
        "description": SCHEMAS[kind],
        **schema,
    }
