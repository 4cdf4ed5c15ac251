"""Per-connection settings of the Tryton plugin."""

from __future__ import annotations

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    SecretStr,
)


class TrytonSettings(BaseModel):
    """How to reach one Tryton database and which of its sale points serve which location.

    Unknown keys are refused so a misspelt setting is reported instead of silently ignored.
    """

    model_config = ConfigDict(extra="forbid")

    base_url: AnyHttpUrl
    """Root of the Tryton server, e.g. ``http://tryton.local:8000`` (JSON-RPC is
    ``POST {base_url}/{database}/rpc/``)."""
    database: str = Field(min_length=1)
    """The Tryton database name."""
    username: str = Field(min_length=1)
    """Login of the integration user (a dedicated user: see the README)."""
    password: SecretStr
    """That user's password."""
    sale_points: dict[str, PositiveInt] = Field(min_length=1)
    """Our location id -> the id of its ``sale.point`` record in Tryton."""
    prepaid_payment_method: PositiveInt
    """Id of the ``sale.point.payment.method`` that records PREPAID orders as paid (a non-cash
    method, e.g. "Online"); the sale then becomes done."""
    request_timeout_seconds: PositiveFloat = 10.0
    """Total time allowed for one JSON-RPC call, connection included."""
    clock_skew_seconds: NonNegativeFloat = 300.0
    """How far Tryton's clock may be from ours: a lookup after an unknown outcome considers
    sales created up to this long before the submission started."""

    def sale_point(self, location: str) -> int:
        """The Tryton sale point of our ``location``.

        :raises KeyError: the location has no sale point in ``sale_points``.
        """
        return self.sale_points[location]
