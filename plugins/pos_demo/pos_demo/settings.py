"""Per-connection settings of the DemoPOS plugin."""

from __future__ import annotations

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, PositiveFloat, SecretStr


class DemoPosSettings(BaseModel):
    """How to reach one DemoPOS installation and how to trust its webhooks.

    Unknown keys are refused so a misspelt setting is reported instead of silently ignored.
    """

    model_config = ConfigDict(extra="forbid")

    base_url: AnyHttpUrl
    """Root URL of the DemoPOS API, e.g. ``http://127.0.0.1:8765``."""
    api_key: SecretStr | None = None
    """Sent as ``X-Api-Key`` when set; leave unset for a POS that does not require one."""
    webhook_secret: SecretStr | None = None
    """HMAC key of ``X-DemoPOS-Signature``; without it every inbound webhook is refused."""
    request_timeout_seconds: PositiveFloat = 10.0
    """Total time allowed for one request to the POS, connection included."""
