"""Deployment settings: a TOML file, overridden by environment variables and a secrets directory.

Precedence, highest first: environment variables (prefix ``POSINTEGRATOR_``, ``__`` between
nested names, e.g. ``POSINTEGRATOR_API__PORT``), files in the secrets directory (one file per
value, named the same way without the prefix, e.g. ``api__token``), then the TOML file.

A connection's own plugin settings (its ``settings`` table) are validated by the plugin's model
once the plugin is loaded; their credentials can also come from the environment
(``POSINTEGRATOR_CONNECTION__<NAME>__<FIELD>``) or from ``<secrets dir>/<connection>/<field>``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from posintegrator.cloud.signatures import secret_key
from posintegrator.model.base import DEFAULT_CHANNELS, ChannelId, Id

ENV_PREFIX = "POSINTEGRATOR_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApiSettings(_Section):
    """The Integrator API server."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    token: SecretStr | None = Field(
        default=None,
        description="Bearer token the cloud must send. Also read from POSINTEGRATOR_API_TOKEN.",
    )
    public_url: AnyHttpUrl | None = Field(
        default=None,
        description="How POS webhooks reach this host; defaults to http://host:port.",
    )
    tls_certificate: Path | None = Field(
        default=None,
        description="PEM certificate chain to serve HTTPS with (with tls_key); none: plain HTTP, "
        "e.g. behind a TLS-terminating proxy.",
    )
    tls_key: Path | None = Field(default=None, description="PEM private key of tls_certificate.")
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Largest request body the API reads (an order of 500 lines fits in 1 MiB); "
        "larger ones are answered 413 without being read.",
    )
    max_webhook_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Largest POS webhook body read; larger ones are answered 413.",
    )
    max_json_depth: int = Field(
        default=32,
        ge=4,
        le=256,
        description="Deepest nesting of arrays and objects accepted in a JSON body (400 beyond).",
    )
    requests_per_second: PositiveInt | None = Field(
        default=None,
        description="Most requests per second from one client address to the authenticated "
        "routes (429 with Retry-After beyond); none: unlimited.",
    )
    auth_failures_per_minute: PositiveInt = Field(
        default=30,
        description="Requests with a missing or wrong token one client address may make per "
        "minute before further wrong ones get 429 instead of 401 (a valid token always passes).",
    )

    @model_validator(mode="after")
    def _tls_pair(self) -> ApiSettings:
        if (self.tls_certificate is None) != (self.tls_key is None):
            raise PydanticCustomError(
                "tls_pair", "api.tls_certificate and api.tls_key are set together or not at all"
            )
        return self


class StoreSettings(_Section):
    """The durable store."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    path: Path = Field(default=Path("posintegrator.db"), description="SQLite database file.")
    synchronous: Literal["NORMAL", "FULL"] = Field(
        default="FULL",
        description="SQLite commit durability: FULL also survives a power cut, NORMAL only a "
        "crash of the process.",
    )
    url: SecretStr | None = Field(
        default=None,
        description="A PostgreSQL database shared by several workers instead of the SQLite "
        "file (postgresql://user:password@host:port/db; docs/scaling.md). A secret: it may hold "
        "a password.",
    )

    @field_validator("url")
    @classmethod
    def _postgresql_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(
            ("postgresql://", "postgres://")
        ):
            raise PydanticCustomError(
                "store_url", "must be a PostgreSQL URL starting with postgresql://"
            )
        return value


def _split_secrets(value: Any) -> Any:
    """Secrets written as one string (an environment variable, a secrets file) are a JSON list
    or separated by whitespace or commas, e.g. one per line; a list is taken as it is."""
    if not isinstance(value, str):
        return value
    if value.lstrip().startswith("["):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            raise ValueError("starts like a JSON list but is not valid JSON") from None
    return value.replace(",", " ").split()


def _standard_secret(value: SecretStr) -> SecretStr:
    """Refuse a secret that is not in the Standard Webhooks form (the reason, never the value)."""
    try:
        secret_key(value.get_secret_value())
    except ValueError as exc:
        raise PydanticCustomError("webhook_secret", str(exc)) from None
    return value


WebhookSecret = Annotated[SecretStr, AfterValidator(_standard_secret)]


class CloudSettings(_Section):
    """Where status changes and menu versions are sent, and the secrets that sign them."""

    # A rejected secret is never echoed, not even by a ValidationError built outside
    # load_settings (whose problems carry no input values anyway).
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    webhook_url: AnyHttpUrl | None = Field(
        default=None, description="The cloud's webhook endpoint; None keeps events in the outbox."
    )
    webhook_secrets: Annotated[list[WebhookSecret], NoDecode, BeforeValidator(_split_secrets)] = (
        Field(
            default_factory=list,
            description="Standard Webhooks secrets (whsec_...); every delivery is signed with "
            "each of them, so a secret can be rotated without downtime.",
        )
    )
    timeout_seconds: PositiveFloat = 10.0
    stuck_after_seconds: PositiveFloat = Field(
        default=900.0,
        description="A stream whose oldest waiting event is older than this is stuck: the "
        "connection alert hook hears it (kind stream_stuck) and it counts in the metrics.",
    )

    @model_validator(mode="after")
    def _signing_secrets(self) -> CloudSettings:
        if self.webhook_url is not None and not self.webhook_secrets:
            raise PydanticCustomError(
                "missing_secret",
                "cloud.webhook_secrets needs at least one secret when cloud.webhook_url is set: "
                "the cloud must be able to verify that events come from this host "
                "(generate one with `posintegrator webhook-secret`)",
            )
        values = [secret.get_secret_value() for secret in self.webhook_secrets]
        for index, value in enumerate(values):
            if value in values[:index]:
                raise PydanticCustomError(
                    "duplicate_secret",
                    "cloud.webhook_secrets lists the same secret twice (entries {first} and "
                    "{second})",
                    {"first": values.index(value), "second": index},
                )
        return self


class RetentionSettings(_Section):
    """How long finished work is kept before it is deleted (docs/deployer-guide.md#retention).

    Nothing unfinished or undelivered is ever deleted, whatever its age. Ages are in days and
    may be fractions.
    """

    finished_orders_days: PositiveFloat = Field(
        default=30.0,
        description="Orders in a final status (COMPLETED, REJECTED, FAILED, CANCELLED), with their "
        "history, attempts and events, are deleted this long after their last change, once the "
        "cloud has all their events. A replay of a deleted order's id is taken as a new order.",
    )
    delivered_events_days: PositiveFloat = Field(
        default=7.0,
        description="Events the cloud acknowledged (or an operator skipped) are deleted this "
        "long after; records of operator actions on streams after finished_orders_days.",
    )
    menu_versions_days: PositiveFloat = Field(
        default=7.0,
        description="Menu versions older than this are deleted, except the latest "
        "menu_versions_kept of each location; GET menu?since= an older one answers 404.",
    )
    menu_versions_kept: PositiveInt = Field(
        default=10, description="The newest menu versions of each location kept whatever their age."
    )
    interval_seconds: PositiveFloat = Field(
        default=300.0, description="How often the pruning runs (each run works until done)."
    )
    batch_size: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Orders (each with its history, attempts and events), events or pairing "
        "requests deleted per transaction; menu versions, which hold a whole menu each, go one "
        "per transaction.",
    )
    pause_seconds: NonNegativeFloat = Field(
        default=0.05,
        description="Pause between two batches, so orders are written in between without delay.",
    )


class OrderSettings(_Section):
    """How strictly incoming orders are checked against the live menu."""

    price_tolerance: int = Field(
        default=0,
        ge=0,
        description="Largest accepted difference, in minor units, between an order's line or "
        "total price and what the price list says (0: prices must match exactly).",
    )
    max_delivery_seconds: PositiveFloat = Field(
        default=1800.0,
        description="How long an order without a pickup time may take to reach the POS before "
        "it is FAILED (an order with a pickup time must reach it by then).",
    )
    max_lines: int = Field(
        default=200, ge=1, le=500, description="Most lines one order may have (422 beyond)."
    )
    max_modifiers_per_line: int = Field(
        default=100,
        ge=1,
        le=1000,
        description="Most modifiers one line may carry, counting nested ones and those of combo "
        "components (422 beyond).",
    )
    max_modifier_depth: int = Field(
        default=4,
        ge=1,
        le=16,
        description="Deepest nesting of modifiers inside modifiers (422 beyond).",
    )


Placement = Literal["central", "local", "hybrid"]


def streams_here(placement: Placement, *, agent: bool) -> frozenset[str]:
    """The streams of a connection (``menu``, ``orders``, ``statuses``) that run in this
    process: a hub (or central host) when ``agent`` is false, a venue agent when true.

    At a hub, a local or hybrid connection's orders are handed to its agent rather than sent
    to the POS, and its statuses come from the agent.
    """
    if agent:
        return frozenset({"orders", "statuses"} | ({"menu"} if placement == "local" else set()))
    if placement == "central":
        return frozenset({"menu", "orders", "statuses"})
    return frozenset({"menu"} if placement == "hybrid" else set())


class ChannelSettings(_Section):
    """A sales channel of the deployment: where orders come from (a kiosk, the web shop, an
    aggregator). Menus name channels by ``id`` in their price lists and availability, and an
    order names its channel by ``id``."""

    id: ChannelId
    name: str | None = Field(default=None, max_length=100, description="For people.")


def _default_channels() -> list[ChannelSettings]:
    return [ChannelSettings(id=channel) for channel in DEFAULT_CHANNELS]


class ConnectionSettings(_Section):
    """One POS connection: which plugin serves which locations, and how."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    plugin: str = Field(min_length=1)
    locations: list[Id] = Field(min_length=1)
    placement: Placement = Field(
        default="central",
        description="Where the streams run. central: the host talks to the POS for all of them. "
        "local: the POS is in the venue; menus, orders and statuses go through the venue's "
        "agent. hybrid: the menu at the hub through the POS's central API, orders and statuses "
        "through the agent.",
    )
    settings: dict[str, Any] = Field(
        default_factory=dict,
        repr=False,  # may hold credentials until the plugin's model turns them into SecretStr
        description="The plugin's own settings, validated by its settings model.",
    )
    menu_sync_seconds: PositiveFloat = Field(default=300.0, description="Full menu sync period.")
    menu_resync_debounce_seconds: NonNegativeFloat = Field(
        default=2.0,
        description="After the POS says its menu changed, wait this long for further notices "
        "before syncing, so a burst of notices costs one sync.",
    )
    status_poll_seconds: PositiveFloat = Field(default=10.0, description="Status polling period.")
    status_source: Literal["auto", "webhook", "polling"] = Field(
        default="auto",
        description="auto: webhooks when the plugin supports them, else polling.",
    )
    max_concurrency: PositiveInt = Field(default=4, description="POS calls in flight at once.")
    rate_limit_per_second: PositiveFloat | None = Field(
        default=None, description="Most calls per second to this POS (none: unlimited)."
    )
    failure_threshold: PositiveInt = Field(
        default=5, description="Failed calls in a row that pause calls to this POS."
    )
    call_timeout_seconds: PositiveFloat = Field(
        default=120.0,
        description="Longest a plugin may take over one call to its POS (a whole menu fetch, "
        "one submission); it is then cut off and counted as a failed call (a cut-off "
        "submission as one whose outcome is unknown).",
    )
    webhook_timeout_seconds: PositiveFloat = Field(
        default=10.0,
        description="Longest a plugin may take to verify and read one POS webhook (503 after).",
    )
    max_response_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024,
        description="Largest answer read from this POS (a whole menu page included); a larger "
        "one is cut off unread and the call fails with that reason.",
    )


class LogSettings(_Section):
    """What the host logs, and how."""

    level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO",
        description="The least important level logged; POSINTEGRATOR_LOG_LEVEL overrides it.",
    )
    format: Literal["text", "json"] = Field(
        default="text",
        description="text for people; json: one JSON object per line (time, level, message, "
        "component, connection, plugin, order_id) for a log pipeline.",
    )
    access_log: bool = Field(
        default=False, description="Log every HTTP request the API answers (one line each)."
    )


class LinkSettings(_Section):
    """The link between a hub and its venue agents (both ends read their own)."""

    heartbeat_seconds: PositiveFloat = Field(
        default=5.0,
        description="How often each end proves it is alive; a link silent for twice this long is "
        "taken as dead and closed.",
    )
    window: int = Field(
        default=256, ge=1, le=10_000, description="Most messages sent and not yet acknowledged."
    )
    pairing_seconds: PositiveFloat = Field(
        default=600.0, description="How long a pairing code waits for an operator's approval."
    )


class AgentSettings(_Section):
    """This process is a venue agent: it serves its local POS and links out to a hub."""

    hub_url: AnyHttpUrl = Field(description="The hub's base URL (https:// for a TLS link).")
    ca_file: Path | None = Field(
        default=None,
        description="PEM file of certificate authorities to trust for an https:// hub, besides "
        "the system's (a private CA).",
    )
    reconnect_max_seconds: PositiveFloat = Field(
        default=30.0, description="Longest wait between two attempts to reach the hub."
    )


def _password_hash(value: SecretStr) -> SecretStr:
    """Refuse a value that is not a hash ``posintegrator ui hash-password`` makes (the reason,
    never the value)."""
    from posintegrator.ui.passwords import parse_hash

    try:
        parse_hash(value.get_secret_value())
    except ValueError as exc:
        raise PydanticCustomError("password_hash", str(exc)) from None
    return value


PasswordHash = Annotated[SecretStr, AfterValidator(_password_hash)]
Role = Literal["operator", "viewer"]


class UiUser(_Section):
    """An operator who may sign in to the dashboard."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$",
        description="Sign-in name, recorded with every action the operator takes.",
    )
    password_hash: PasswordHash | None = Field(
        default=None,
        description="scrypt hash of the password (posintegrator ui hash-password); none: the "
        "user signs in only through the trusted proxy.",
    )
    role: Role = Field(
        default="operator", description="operator (acts on orders) or viewer (read-only)."
    )


class UiSettings(_Section):
    """The operator dashboard at /ui and who may sign in to it."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    users: list[UiUser] = Field(default_factory=list)
    session_seconds: PositiveInt = Field(
        default=8 * 3600,
        le=7 * 24 * 3600,
        description="How long a sign-in lasts; then the operator signs in again.",
    )
    session_secret: SecretStr | None = Field(
        default=None,
        min_length=32,
        description="Key that signs session cookies; none: a new random key at every start "
        "(everyone signs in again after a restart). Change it to end every session.",
    )
    proxy_user_header: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9-]{1,100}$",
        description="Header in which a trusted single sign-on proxy names the signed-in "
        "operator (e.g. X-Forwarded-User); none: password sign-in only.",
    )
    proxy_addresses: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"],
        description="Peer addresses whose proxy_user_header is believed; from any other "
        "address the header is ignored.",
    )
    proxy_role: Role = Field(
        default="viewer",
        description="Role of a proxy-signed-in operator not listed in users.",
    )
    refresh_seconds: PositiveFloat = Field(
        default=5.0, description="How often an open dashboard page refreshes itself."
    )

    @model_validator(mode="after")
    def _unique_names(self) -> UiSettings:
        names = [user.name.lower() for user in self.users]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise PydanticCustomError(
                    "duplicate_user", "ui.users names '{name}' twice", {"name": name}
                )
        return self


class HostSettings(BaseSettings):
    """A whole deployment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        secrets_prefix="",
        secrets_nested_delimiter="__",
        extra="forbid",
        hide_input_in_errors=True,  # the input holds secrets
    )

    api: ApiSettings = Field(default_factory=ApiSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    cloud: CloudSettings = Field(default_factory=CloudSettings)
    orders: OrderSettings = Field(default_factory=OrderSettings)
    channels: list[ChannelSettings] = Field(
        default_factory=_default_channels,
        min_length=1,
        max_length=100,
        description="The deployment's sales channels; an order from any other is refused.",
    )
    log: LogSettings = Field(default_factory=LogSettings)
    link: LinkSettings = Field(default_factory=LinkSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    ui: UiSettings = Field(default_factory=UiSettings)
    agent: AgentSettings | None = Field(
        default=None,
        description="Present only in a venue agent's settings: where its hub is.",
    )
    connections: list[ConnectionSettings] = Field(default_factory=list)
    extensions: list[str] = Field(
        default_factory=list,
        description="Plugins loaded for their broadcast hooks only (menu transforms, observers).",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file arrives as init arguments and has the lowest precedence.
        return env_settings, NestedSecretsSettingsSource(file_secret_settings), init_settings

    @field_validator("channels")
    @classmethod
    def _distinct_channels(cls, channels: list[ChannelSettings]) -> list[ChannelSettings]:
        seen: set[str] = set()
        for channel in channels:
            if channel.id in seen:
                raise ValueError(f"channel {channel.id!r} is listed twice")
            seen.add(channel.id)
        return channels

    @property
    def channel_ids(self) -> frozenset[str]:
        """The ids of the deployment's channels."""
        return frozenset(channel.id for channel in self.channels)

    def connection(self, name: str) -> ConnectionSettings:
        """The connection called ``name``."""
        for connection in self.connections:
            if connection.name == name:
                return connection
        raise KeyError(name)

    def connection_for_location(self, location: str) -> ConnectionSettings | None:
        """The connection that serves ``location``, if any."""
        for connection in self.connections:
            if location in connection.locations:
                return connection
        return None


class SettingsProblem(BaseModel):
    """One thing wrong with the settings, located by its path in the file."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SettingsError(Exception):
    """The settings cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems: list[SettingsProblem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def error_path(loc: tuple[int | str, ...], prefix: str = "") -> str:
    """Render a pydantic error location as ``connections[1].settings.base_url``."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


def problems_from(error: ValidationError, prefix: str = "") -> list[SettingsProblem]:
    """One problem per pydantic error, with its path and a short reason."""
    return [
        SettingsProblem(path=error_path(tuple(item["loc"]), prefix), message=_reason(item))
        for item in error.errors(include_url=False)
    ]


#: Settings that existed once, with what replaced them: a file written for an older version
#: gets told what to do instead of "unknown setting".
REMOVED_SETTINGS = {
    ("cloud", "webhook_secret"): "replaced by cloud.webhook_secrets, a list of Standard Webhooks "
    "secrets (whsec_...), when the webhooks to the cloud moved to the Standard Webhooks format; "
    "generate one with `posintegrator webhook-secret` and see the changelog for the migration",
}


def _reason(item: Mapping[str, Any]) -> str:
    if item["type"] == "url_parsing":
        return f"invalid URL ({item['msg']})"
    if item["type"] == "extra_forbidden":
        removed = REMOVED_SETTINGS.get(tuple(item["loc"]))
        return removed or "unknown setting (check its spelling)"
    if item["type"] == "missing":
        return "required setting is missing"
    return str(item["msg"])


def read_settings_file(path: Path) -> dict[str, Any]:
    """The raw tables of a TOML settings file.

    :raises SettingsError: the file is missing or not valid TOML.
    """
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError([SettingsProblem(path="", message=f"{path}: no such file")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(
            [SettingsProblem(path="", message=f"{path}: not valid TOML: {exc}")]
        ) from None


def load_settings(path: Path | None, *, secrets_dir: Path | None = None) -> HostSettings:
    """Read the deployment's settings from ``path`` (if any), the environment and secrets.

    :raises SettingsError: with every problem found, each with its path in the file.
    """
    data = read_settings_file(path) if path is not None else {}
    merge_connection_secrets(data, secrets_dir)
    try:
        settings = HostSettings(**data, _secrets_dir=secrets_dir)
    except ValidationError as exc:
        raise SettingsError(problems_from(exc)) from None
    # POSINTEGRATOR_API_TOKEN is the documented short name of POSINTEGRATOR_API__TOKEN: an
    # environment variable, so it beats the secrets directory and the file (not its long name).
    token = os.environ.get(f"{ENV_PREFIX}API_TOKEN")
    if token and not os.environ.get(f"{ENV_PREFIX}API__TOKEN"):
        api = settings.api.model_copy(update={"token": SecretStr(token)})
        settings = settings.model_copy(update={"api": api})
    return settings


def merge_connection_secrets(data: dict[str, Any], secrets_dir: Path | None) -> None:
    """Fill connections' plugin settings from env variables and per-connection secret files."""
    connections = data.get("connections")
    if not isinstance(connections, list):
        return
    for connection in connections:
        if not isinstance(connection, dict) or not isinstance(connection.get("name"), str):
            continue
        name = connection["name"]
        values = connection.setdefault("settings", {})
        if not isinstance(values, dict):
            continue
        if secrets_dir is not None and (secrets_dir / name).is_dir():
            for secret_file in sorted((secrets_dir / name).iterdir()):
                if secret_file.is_file():
                    values[secret_file.name] = secret_file.read_text(encoding="utf-8").strip()
        env_prefix = f"{ENV_PREFIX}CONNECTION__{name.upper().replace('-', '_')}__"
        for key, value in os.environ.items():
            if key.upper().startswith(env_prefix):
                values[key[len(env_prefix) :].lower()] = value
