"""Per-connection settings of the Square plugin."""

from __future__ import annotations

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, PositiveFloat, SecretStr


class SquareSettings(BaseModel):
    """How to reach one Square seller account and how to trust its webhooks.

    Unknown keys are refused so a misspelt setting is reported instead of silently ignored.
    """

    model_config = ConfigDict(extra="forbid")

    base_url: AnyHttpUrl = AnyHttpUrl("https://connect.squareup.com")
    """Root of the Square API: production, ``https://connect.squareupsandbox.com`` for the
    sandbox, or a test double."""
    access_token: SecretStr
    """OAuth access token (or a personal access token) of the seller, sent as ``Bearer``."""
    square_version: str = "2025-08-20"
    """Sent as ``Square-Version``: the API version this plugin was written against."""
    webhook_signature_key: SecretStr | None = None
    """The subscription's signature key from the Developer Dashboard; without it every inbound
    webhook is refused (401)."""
    webhook_notification_url: AnyHttpUrl | None = None
    """The notification URL exactly as registered with Square (signatures are computed over it).
    Default: the host's webhook URL of the connection; set it when a proxy rewrites the URL."""
    location_ids: dict[str, str] = Field(default_factory=dict)
    """Our location id -> Square location id; a location not listed is its own Square id."""
    request_timeout_seconds: PositiveFloat = 10.0
    """Total time allowed for one request to Square, connection included."""
    record_prepaid_as_external_payment: bool = True
    """Record PREPAID orders as paid in Square (an ``EXTERNAL`` payment), so the kitchen does not
    charge the customer again. Needs the ``PAYMENTS_WRITE`` permission."""

    def square_location(self, location: str) -> str:
        """The Square location id of our ``location``."""
        return self.location_ids.get(location, location)

    def our_location(self, square_location_id: str) -> str | None:
        """Our location id of a Square location id, if it is mapped (identity otherwise)."""
        for ours, theirs in self.location_ids.items():
            if theirs == square_location_id:
                return ours
        return None if square_location_id in self.location_ids else square_location_id
