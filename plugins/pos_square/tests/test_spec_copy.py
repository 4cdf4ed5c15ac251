"""The spec these tests validate against is Square's, unchanged from the project's reference."""

from __future__ import annotations

import json

import pytest
from spec import REPO_ROOT, SPEC_COPY

#: The project's reference material, beside the checkout on developer machines and in CI.
REFERENCE = REPO_ROOT.parent / "shared" / "specs" / "square" / "api.json"


@pytest.mark.skipif(
    not REFERENCE.exists(),
    reason="the project's shared/ reference material is not beside this checkout: nothing to "
    "compare the copy with (the copy alone is enough to run the tests)",
)
def test_the_copy_is_the_reference_spec_byte_for_byte() -> None:
    assert SPEC_COPY.read_bytes() == REFERENCE.read_bytes()


def test_the_copy_is_an_openapi_3_spec_of_the_apis_the_plugin_calls() -> None:
    spec = json.loads(SPEC_COPY.read_bytes())
    assert spec["openapi"].startswith("3.0")
    for path in ("/v2/catalog/list", "/v2/orders", "/v2/orders/search", "/v2/payments"):
        assert path in spec["paths"], path
