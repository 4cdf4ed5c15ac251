"""Per-connection settings of the DemoPOS plugin."""

from __future__ import annotations

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, PositiveFloat, SecretStr, model_validator


class DemoPosSettings(BaseModel):
    """How to reach one DemoPOS installation and how to trust its webhooks.

    Unknown keys are refused so a misspelt setting is reported instead of silently ignored;
    errors never repeat the input, which holds credentials.
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)  # input has secrets

    base_url: AnyHttpUrl
    """Root URL of the DemoPOS API, e.g. ``http://127.0.0.1:8765``."""
    api_key: SecretStr | None = None
    """Sent as ``X-Api-Key`` when set; leave unset for a POS that does not require one."""
    webhook_secret: SecretStr | None = None
    """HMAC key of ``X-DemoPOS-Signature``; without it every inbound webhook is refused."""
    webhook_secret_next: SecretStr | None = None
    """A second accepted key while the webhook secret is rotated: a webhook signed with either
    passes. Put the new secret here, switch DemoPOS to it, then make it ``webhook_secret``."""
    request_timeout_seconds: PositiveFloat = 10.0
    """Total time allowed for one request to the POS, connection included."""

    @model_validator(mode="after")
    def _next_needs_current(self) -> DemoPosSettings:
        if self.webhook_secret_next is not None and self.webhook_secret is None:
            raise ValueError(
                "webhook_secret_next is the secret being rotated in: set webhook_secret too "
                "(or put the only secret in webhook_secret)"
            )
        return self

    def webhook_secrets(self) -> list[bytes]:
        """Every key a webhook may be signed with: the current one, then the next one."""
        return [
            secret.get_secret_value().encode()
            for secret in (self.webhook_secret, self.webhook_secret_next)
            if secret is not None
        ]
