"""Fixtures for the Square plugin tests: the spec validator and a running Square double."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from spec import SquareSpec
from squaredouble import RunningDouble, start_double


@pytest.fixture(scope="session")
def square_spec() -> SquareSpec:
    """Square's OpenAPI spec (parsed once)."""
    return SquareSpec.load()


@pytest.fixture
async def square_double() -> AsyncIterator[RunningDouble]:
    """A running Square double (default catalog: 240 variations, two locations)."""
    double = await start_double()
    try:
        yield double
    finally:
        await double.close()
