"""Per-connection settings of the Square plugin."""

from __future__ import annotations

from datetime import timedelta

from pydantic import (
    AnyHttpUrl,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    model_validator,
)


class SquareSettings(BaseModel):
    """How to reach one Square seller account and how to trust its webhooks.

    Unknown keys are refused so a misspelt setting is reported instead of silently ignored;
    errors never repeat the input, which holds credentials.
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    base_url: AnyHttpUrl = AnyHttpUrl("https://connect.squareup.com")
    """Root of the Square API: production, ``https://connect.squareupsandbox.com`` for the
    sandbox, or a test double."""
    access_token: SecretStr
    """OAuth access token (or a personal access token) of the seller, sent as ``Bearer``.
    With ``refresh_token`` set it is only the first one: the plugin refreshes it."""
    refresh_token: SecretStr | None = None
    """The seller's OAuth refresh token (from ObtainToken with the authorization code). With
    ``application_id`` and ``application_secret`` it lets the plugin renew the access token."""
    application_id: str | None = None
    """The Square application's id (Developer Console, OAuth page); sent as ``client_id``."""
    application_secret: SecretStr | None = None
    """The Square application's secret (Developer Console, OAuth page); sent as
    ``client_secret``, and the key under which refreshed tokens are kept encrypted."""
    access_token_expires_at: AwareDatetime | None = None
    """When the configured ``access_token`` expires, if known (ObtainToken's ``expires_at``);
    unknown with a refresh token: the plugin refreshes before its first call."""
    token_refresh_margin: timedelta = Field(default=timedelta(days=23), gt=timedelta(0))
    """Refresh an OAuth access token once it has less than this left (Square's tokens last 30
    days and Square advises refreshing at least weekly: 23 days does that)."""
    square_version: str = "2025-08-20"
    """Sent as ``Square-Version``: the API version this plugin was written against."""
    webhook_signature_key: SecretStr | None = None
    """The subscription's signature key from the Developer Dashboard; without it every inbound
    webhook is refused (401)."""
    webhook_signature_key_next: SecretStr | None = None
    """A second accepted signature key while the key is rotated: a notification signed with
    either passes. See the README for Square's rotation and the steps."""
    webhook_notification_url: AnyHttpUrl | None = None
    """The notification URL exactly as registered with Square (signatures are computed over it).
    Default: the host's webhook URL of the connection; set it when a proxy rewrites the URL."""
    location_ids: dict[str, str] = Field(default_factory=dict)
    """Our location id -> Square location id; a location not listed is its own Square id."""
    request_timeout_seconds: PositiveFloat = 10.0
    """Total time allowed for one request to Square, connection included."""
    record_prepaid_as_external_payment: bool = True
    """Record PREPAID payments in Square (each an ``EXTERNAL`` payment, with its share of the
    tip), so the kitchen does not charge the customer again. Needs ``PAYMENTS_WRITE``."""
    delivery_prep_minutes: PositiveInt = 20
    """How long Square is told an ASAP delivery takes to prepare (Square requires a time)."""
    full_catalog_read_hours: PositiveFloat = 24.0
    """How often the whole catalog is read again; in between, a menu sync reads only the
    objects changed since the last read and applies them to the catalog kept from it."""

    @model_validator(mode="after")
    def _next_needs_current(self) -> SquareSettings:
        if self.webhook_signature_key_next is not None and self.webhook_signature_key is None:
            raise ValueError(
                "webhook_signature_key_next is the key being rotated in: set "
                "webhook_signature_key too (or put the only key in webhook_signature_key)"
            )
        return self

    @model_validator(mode="after")
    def _oauth_complete(self) -> SquareSettings:
        oauth = {
            "refresh_token": self.refresh_token,
            "application_id": self.application_id,
            "application_secret": self.application_secret,
        }
        missing = [name for name, value in oauth.items() if value is None]
        if missing and len(missing) < len(oauth):
            raise ValueError(
                "refreshing the OAuth access token needs refresh_token, application_id and "
                f"application_secret together: {', '.join(missing)} missing"
            )
        return self

    def webhook_signature_keys(self) -> list[bytes]:
        """Every key a notification may be signed with: the current one, then the next one."""
        return [
            key.get_secret_value().encode()
            for key in (self.webhook_signature_key, self.webhook_signature_key_next)
            if key is not None
        ]

    def square_location(self, location: str) -> str:
        """The Square location id of our ``location``."""
        return self.location_ids.get(location, location)

    def our_location(self, square_location_id: str) -> str | None:
        """Our location id of a Square location id, if it is mapped (identity otherwise)."""
        for ours, theirs in self.location_ids.items():
            if theirs == square_location_id:
                return ours
        return None if square_location_id in self.location_ids else square_location_id
