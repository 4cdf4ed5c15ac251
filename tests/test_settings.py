"""``load_settings``: a real TOML file, the environment and a secrets directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from posintegrator.cloud.signatures import generate_secret
from posintegrator.plugins import PluginHost
from posintegrator.settings import SettingsError, load_settings

GOOD_TOML = """\
[api]
host = "10.1.2.3"
port = 8123
token = "file-token"

[store]
path = "data/host.db"
synchronous = "NORMAL"

[cloud]
webhook_url = "https://cloud.example.com/hooks"
webhook_secrets = ["whsec_ZmlsZS13ZWJob29rLXNlY3JldCwgMzIgYnl0ZXMgbG9uZw=="]

[[connections]]
name = "main"
plugin = "demo"
locations = ["loc-1", "loc-2"]
status_source = "polling"

[connections.settings]
base_url = "http://127.0.0.1:8765"
api_key = "file-api-key"

[[connections]]
name = "side-eu"
plugin = "demo"
locations = ["loc-3"]

[connections.settings]
base_url = "http://127.0.0.1:9765"
"""


FILE_CLOUD_SECRET = "whsec_ZmlsZS13ZWJob29rLXNlY3JldCwgMzIgYnl0ZXMgbG9uZw=="
NEW_CLOUD_SECRET = generate_secret()
NEXT_CLOUD_SECRET = generate_secret()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No POSINTEGRATOR_* variable of the developer's shell may leak into these tests."""
    for key in list(os.environ):
        if key.upper().startswith("POSINTEGRATOR_"):
            monkeypatch.delenv(key)


@pytest.fixture
def good_file(tmp_path: Path) -> Path:
    path = tmp_path / "posintegrator.toml"
    path.write_text(GOOD_TOML, encoding="utf-8")
    return path


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(text, encoding="utf-8")
    return path


def secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


def problems_by_path(error: SettingsError) -> dict[str, str]:
    return {p.path: p.message for p in error.problems}


# --- values from the file -----------------------------------------------------------------------


def test_values_are_read_from_the_file(good_file: Path) -> None:
    settings = load_settings(good_file)

    assert settings.api.host == "10.1.2.3"
    assert settings.api.port == 8123
    assert secret(settings.api.token) == "file-token"
    assert settings.store.path == Path("data/host.db")
    assert settings.store.synchronous == "NORMAL"
    assert str(settings.cloud.webhook_url) == "https://cloud.example.com/hooks"
    assert [secret(s) for s in settings.cloud.webhook_secrets] == [FILE_CLOUD_SECRET]
    assert [c.name for c in settings.connections] == ["main", "side-eu"]
    main = settings.connection("main")
    assert main.plugin == "demo"
    assert main.locations == ["loc-1", "loc-2"]
    assert main.status_source == "polling"
    assert main.settings == {"base_url": "http://127.0.0.1:8765", "api_key": "file-api-key"}
    assert settings.connection_for_location("loc-3") is settings.connection("side-eu")


def test_defaults_apply_without_a_file() -> None:
    settings = load_settings(None)

    assert settings.api.port == 8080
    assert settings.api.token is None
    assert settings.connections == []


# --- the environment ------------------------------------------------------------------------------


def test_environment_overrides_the_file(good_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSINTEGRATOR_API__PORT", "9001")
    monkeypatch.setenv("POSINTEGRATOR_STORE__SYNCHRONOUS", "FULL")

    settings = load_settings(good_file)

    assert settings.api.port == 9001
    assert settings.store.synchronous == "FULL"
    assert settings.api.host == "10.1.2.3"  # untouched values still come from the file


def test_api_token_variable_fills_the_token(
    good_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSINTEGRATOR_API_TOKEN", "env-token")
    settings = load_settings(good_file)

    assert secret(settings.api.token) == "env-token"


def test_api_token_variable_fills_the_token_without_a_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POSINTEGRATOR_API_TOKEN", "env-token")
    settings = load_settings(None)

    assert secret(settings.api.token) == "env-token"


# --- the secrets directory ------------------------------------------------------------------------


def test_secrets_file_fills_the_token(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "api__token").write_text("secret-token\n", encoding="utf-8")

    settings = load_settings(None, secrets_dir=secrets)

    assert secret(settings.api.token) == "secret-token"


def token_secrets_dir(tmp_path: Path) -> Path:
    """A secrets dir holding the token under its documented name."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "api__token").write_text("secret-token\n", encoding="utf-8")
    return secrets


def test_secrets_file_beats_the_file(tmp_path: Path, good_file: Path) -> None:
    settings = load_settings(good_file, secrets_dir=token_secrets_dir(tmp_path))

    assert secret(settings.api.token) == "secret-token"


def test_nested_environment_variable_beats_secrets(
    tmp_path: Path, good_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSINTEGRATOR_API__TOKEN", "env-token")

    settings = load_settings(good_file, secrets_dir=token_secrets_dir(tmp_path))

    assert secret(settings.api.token) == "env-token"


def test_api_token_variable_beats_secrets(
    tmp_path: Path, good_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSINTEGRATOR_API_TOKEN", "env-token")
    settings = load_settings(good_file, secrets_dir=token_secrets_dir(tmp_path))

    assert secret(settings.api.token) == "env-token"


# --- per-connection credentials -----------------------------------------------------------------


def test_connection_secrets_files_fill_that_connections_settings(
    tmp_path: Path, good_file: Path
) -> None:
    secrets = tmp_path / "secrets"
    (secrets / "side-eu").mkdir(parents=True)
    (secrets / "side-eu" / "api_key").write_text("side-key\n", encoding="utf-8")
    (secrets / "side-eu" / "webhook_secret").write_text("side-hook\n", encoding="utf-8")

    settings = load_settings(good_file, secrets_dir=secrets)

    assert settings.connection("side-eu").settings == {
        "base_url": "http://127.0.0.1:9765",
        "api_key": "side-key",
        "webhook_secret": "side-hook",
    }
    assert settings.connection("main").settings["api_key"] == "file-api-key"


def test_connection_environment_fills_that_connections_settings(
    good_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSINTEGRATOR_CONNECTION__SIDE_EU__API_KEY", "env-side-key")
    monkeypatch.setenv("POSINTEGRATOR_CONNECTION__MAIN__WEBHOOK_SECRET", "env-main-hook")

    settings = load_settings(good_file)

    assert settings.connection("side-eu").settings["api_key"] == "env-side-key"
    assert "webhook_secret" not in settings.connection("side-eu").settings
    assert settings.connection("main").settings == {
        "base_url": "http://127.0.0.1:8765",
        "api_key": "file-api-key",
        "webhook_secret": "env-main-hook",
    }


def test_connection_environment_beats_connection_secrets(
    tmp_path: Path, good_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = tmp_path / "secrets"
    (secrets / "main").mkdir(parents=True)
    (secrets / "main" / "api_key").write_text("secret-main-key\n", encoding="utf-8")

    from_secrets = load_settings(good_file, secrets_dir=secrets)
    monkeypatch.setenv("POSINTEGRATOR_CONNECTION__MAIN__API_KEY", "env-main-key")
    from_env = load_settings(good_file, secrets_dir=secrets)

    assert from_secrets.connection("main").settings["api_key"] == "secret-main-key"
    assert from_env.connection("main").settings["api_key"] == "env-main-key"


def test_connection_credentials_reach_the_plugin_model(
    tmp_path: Path, good_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = tmp_path / "secrets"
    (secrets / "main").mkdir(parents=True)
    (secrets / "main" / "webhook_secret").write_text("hook-from-file\n", encoding="utf-8")
    monkeypatch.setenv("POSINTEGRATOR_CONNECTION__MAIN__API_KEY", "key-from-env")
    settings = load_settings(good_file, secrets_dir=secrets)

    validated = PluginHost.load(["demo"]).validate_connections(settings)

    main = validated["main"]
    assert main.api_key.get_secret_value() == "key-from-env"  # type: ignore[attr-defined]
    assert main.webhook_secret.get_secret_value() == "hook-from-file"  # type: ignore[attr-defined]


# --- problems -----------------------------------------------------------------------------------


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[api]\nport = \n token = "x"\n')

    with pytest.raises(SettingsError) as info:
        load_settings(path)

    [problem] = info.value.problems
    assert str(path) in problem.message
    assert "not valid TOML" in problem.message
    assert str(path) in str(info.value)


def test_missing_file_is_a_settings_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"

    with pytest.raises(SettingsError) as info:
        load_settings(path)

    assert str(path) in str(info.value)


def test_every_problem_is_reported_with_its_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
[api]
port = 70000

[cloud]
timeout_seconds = -1

[[connections]]
name = "first"
plugin = "demo"
locations = ["loc-1"]

[[connections]]
name = "second"
plugin = "demo"
""",
    )

    with pytest.raises(SettingsError) as info:
        load_settings(path)

    problems = problems_by_path(info.value)
    assert set(problems) == {"api.port", "cloud.timeout_seconds", "connections[1].locations"}
    assert "65535" in problems["api.port"]
    assert problems["connections[1].locations"] == "required setting is missing"
    text = str(info.value)
    assert "api.port: " in text
    assert "connections[1].locations: required setting is missing" in text


def test_unknown_keys_are_reported_as_unknown_settings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
colour = "blue"

[api]
prot = 8080

[[connections]]
name = "main"
plugin = "demo"
locations = ["loc-1"]
menu_sync_secs = 60
""",
    )

    with pytest.raises(SettingsError) as info:
        load_settings(path)

    problems = problems_by_path(info.value)
    assert set(problems) == {"colour", "api.prot", "connections[0].menu_sync_secs"}
    assert all(message.startswith("unknown setting") for message in problems.values())


def test_unknown_plugin_settings_are_reported_with_their_path(good_file: Path) -> None:
    text = good_file.read_text(encoding="utf-8").replace("api_key =", "api_kee =")
    good_file.write_text(text, encoding="utf-8")
    settings = load_settings(good_file)

    with pytest.raises(SettingsError) as info:
        PluginHost.load(["demo"]).validate_connections(settings)

    problems = problems_by_path(info.value)
    assert problems["connections[0].settings.api_kee"].startswith("unknown setting")


# --- secrets stay secret ------------------------------------------------------------------------


def test_secrets_do_not_appear_in_repr_or_str(
    good_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSINTEGRATOR_API_TOKEN", "env-token-7f3a")
    settings = load_settings(good_file)

    assert secret(settings.api.token) == "env-token-7f3a"
    for text in (repr(settings), str(settings), repr(settings.api), str(settings.cloud)):
        assert "env-token-7f3a" not in text
        assert "file-webhook-secret" not in text


def test_plugin_secrets_do_not_appear_in_validated_settings(good_file: Path) -> None:
    settings = load_settings(good_file)

    validated = PluginHost.load(["demo"]).validate_connections(settings)

    assert "file-api-key" not in repr(validated["main"])
    assert "file-api-key" not in str(validated)


def test_connection_credentials_do_not_appear_in_repr(good_file: Path) -> None:
    settings = load_settings(good_file)

    assert "file-api-key" not in repr(settings)


def test_secrets_do_not_appear_in_error_messages(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
[api]
port = "eighty"
token = "tok-SECRET-91"

[cloud]
webhook_secrets = ["hook-SECRET-92"]
timeout_seconds = 0

[[connections]]
name = "main"
plugin = "demo"
locations = ["loc-1"]
settings = { base_url = "http://127.0.0.1:1", api_key = "key-SECRET-93" }
""",
    )
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    assert {p.path for p in info.value.problems} == {
        "api.port",
        "cloud.webhook_secrets[0]",
        "cloud.timeout_seconds",
    }

    # The same credentials, now with a problem in the plugin's own settings.
    path.write_text(
        path.read_text(encoding="utf-8")
        .replace('"eighty"', "8080")
        .replace("timeout_seconds = 0", "timeout_seconds = 5")
        .replace('"hook-SECRET-92"', f'"{NEW_CLOUD_SECRET}"')
        .replace("http://127.0.0.1:1", "not a url"),
        encoding="utf-8",
    )
    settings = load_settings(path)
    with pytest.raises(SettingsError) as plugin_info:
        PluginHost.load(["demo"]).validate_connections(settings)
    assert [p.path for p in plugin_info.value.problems] == ["connections[0].settings.base_url"]

    for error in (info.value, plugin_info.value):
        text = str(error) + repr(error) + repr(error.problems)
        for value in ("tok-SECRET-91", "hook-SECRET-92", "key-SECRET-93", NEW_CLOUD_SECRET):
            assert value not in text


def test_cloud_webhooks_must_be_signed(tmp_path: Path) -> None:
    path = tmp_path / "unsigned.toml"
    path.write_text('[cloud]\nwebhook_url = "https://cloud.example/hooks"\n', encoding="utf-8")
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    [problem] = info.value.problems
    assert problem.path == "cloud"
    assert "cloud.webhook_secrets needs at least one secret" in problem.message
    assert "posintegrator webhook-secret" in problem.message


# --- the cloud's webhook secrets ----------------------------------------------------------------


def test_several_cloud_secrets_are_read_in_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f'[cloud]\nwebhook_url = "https://cloud.example/hooks"\n'
        f'webhook_secrets = ["{NEW_CLOUD_SECRET}", "{NEXT_CLOUD_SECRET}"]\n',
    )
    settings = load_settings(path)
    assert [secret(s) for s in settings.cloud.webhook_secrets] == [
        NEW_CLOUD_SECRET,
        NEXT_CLOUD_SECRET,
    ]
    assert NEW_CLOUD_SECRET not in repr(settings) and NEXT_CLOUD_SECRET not in repr(settings)


@pytest.mark.parametrize(
    "written",
    [
        f"{NEW_CLOUD_SECRET} {NEXT_CLOUD_SECRET}",
        f"{NEW_CLOUD_SECRET},{NEXT_CLOUD_SECRET}",
        f"{NEW_CLOUD_SECRET}\n{NEXT_CLOUD_SECRET}\n",
        f'["{NEW_CLOUD_SECRET}", "{NEXT_CLOUD_SECRET}"]',
    ],
    ids=["spaces", "commas", "lines", "json"],
)
def test_cloud_secrets_from_the_environment_or_a_secrets_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, written: str
) -> None:
    monkeypatch.setenv("POSINTEGRATOR_CLOUD__WEBHOOK_SECRETS", written)
    from_env = load_settings(None)
    monkeypatch.delenv("POSINTEGRATOR_CLOUD__WEBHOOK_SECRETS")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "cloud__webhook_secrets").write_text(written, encoding="utf-8")
    from_file = load_settings(None, secrets_dir=secrets)

    for settings in (from_env, from_file):
        assert [secret(s) for s in settings.cloud.webhook_secrets] == [
            NEW_CLOUD_SECRET,
            NEXT_CLOUD_SECRET,
        ]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("plain-SECRET-value-without-prefix", "must start with whsec_"),
        ("whsec_not*base64!", "standard base64"),
        ("whsec_c2hvcnQ=", "5 bytes"),  # b"short"
    ],
)
def test_a_cloud_secret_not_in_the_standard_form_is_refused_by_index(
    tmp_path: Path, value: str, reason: str
) -> None:
    path = write(
        tmp_path,
        f'[cloud]\nwebhook_url = "https://cloud.example/hooks"\n'
        f'webhook_secrets = ["{NEW_CLOUD_SECRET}", "{value}"]\n',
    )
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    [problem] = info.value.problems
    assert problem.path == "cloud.webhook_secrets[1]"
    assert reason in problem.message
    assert value not in str(info.value) + repr(info.value.problems)


def test_the_same_cloud_secret_twice_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f'[cloud]\nwebhook_url = "https://cloud.example/hooks"\n'
        f'webhook_secrets = ["{NEW_CLOUD_SECRET}", "{NEXT_CLOUD_SECRET}", "{NEW_CLOUD_SECRET}"]\n',
    )
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    [problem] = info.value.problems
    assert problem.path == "cloud"
    assert "same secret twice (entries 0 and 2)" in problem.message
    assert NEW_CLOUD_SECRET not in str(info.value)


def test_the_old_single_secret_setting_says_what_replaced_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path,
        '[cloud]\nwebhook_url = "https://cloud.example/hooks"\n'
        'webhook_secret = "old-SECRET-plain"\n',
    )
    with pytest.raises(SettingsError) as from_file:
        load_settings(path)
    monkeypatch.setenv("POSINTEGRATOR_CLOUD__WEBHOOK_SECRET", "old-SECRET-plain")
    monkeypatch.setenv("POSINTEGRATOR_CLOUD__WEBHOOK_SECRETS", NEW_CLOUD_SECRET)
    with pytest.raises(SettingsError) as from_env:
        load_settings(None)
    for error in (from_file.value, from_env.value):
        problems = problems_by_path(error)
        assert "replaced by cloud.webhook_secrets" in problems["cloud.webhook_secret"]
        assert "old-SECRET-plain" not in str(error)


def test_connection_names_differing_only_by_dash_and_underscore_conflict() -> None:
    from posintegrator.plugins import connection_conflicts
    from posintegrator.settings import ConnectionSettings

    connections = [
        ConnectionSettings(name="brand-a", plugin="demo", locations=["a"]),
        ConnectionSettings(name="brand_a", plugin="demo", locations=["b"]),
    ]
    [problem] = connection_conflicts(connections)
    assert problem.path == "connections[1].name"
