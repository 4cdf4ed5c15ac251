"""Schemathesis hooks for the API fuzz run (loaded by the CLI through ``SCHEMATHESIS_HOOKS``).

Random orders never match a real menu, so without help every POST /v1/orders would be refused
and the links from an accepted order (GET it, retry it, cancel it) never followed. Here each
generated order body that conforms to the document's schema may be swapped for a valid order of
the demo menu carrying the generated id: the fuzzer then reaches acceptance, replays, conflicts
and the operator actions. Bodies that break the schema stay as they are: the fuzzer expects
those refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import schemathesis
from hypothesis import strategies as st
from pydantic import ValidationError

from posintegrator.model import Order

#: Valid orders for the demo menu, written by the test that starts the run.
VALID_ORDERS: list[dict[str, Any]] = orjson.loads(
    Path(os.environ["POSINTEGRATOR_FUZZ_ORDERS"]).read_bytes()
)
_SCHEMA = jsonschema.Draft202012Validator(Order.model_json_schema(mode="validation"))


def _with_id(order: dict[str, Any], order_id: str) -> dict[str, Any] | None:
    candidate = {**order, "id": order_id}
    try:
        Order.model_validate(candidate)
    except ValidationError:
        return None
    return candidate


@schemathesis.hook.apply_to(path="/v1/orders", method="POST")
def flatmap_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
    """A body that conforms to the schema, or a valid order carrying its id."""
    if not _SCHEMA.is_valid(body):
        return st.just(body)
    valid = [order for known in VALID_ORDERS if (order := _with_id(known, body["id"]))]
    return st.sampled_from([body, *valid])
