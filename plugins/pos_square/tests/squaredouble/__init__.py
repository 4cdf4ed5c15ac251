"""A test double of Square's API for one merchant, following Square's OpenAPI spec."""

from .app import DEFAULT_TOKEN, RunningDouble, SquareDouble, Violation, start_double
from .catalog import (
    DEFAULT_LOCATIONS,
    CatalogCounts,
    GeneratedCatalog,
    generate_catalog,
    present_at,
)
from .errors import SquareError
from .oauth import TokenAuthority
from .state import MerchantState
from .webhooks import SIGNATURE_HEADER, SUBSCRIPTION_ID, sign

__all__ = [
    "DEFAULT_LOCATIONS",
    "DEFAULT_TOKEN",
    "SIGNATURE_HEADER",
    "SUBSCRIPTION_ID",
    "CatalogCounts",
    "GeneratedCatalog",
    "MerchantState",
    "RunningDouble",
    "SquareDouble",
    "SquareError",
    "TokenAuthority",
    "Violation",
    "generate_catalog",
    "present_at",
    "sign",
    "start_double",
]
