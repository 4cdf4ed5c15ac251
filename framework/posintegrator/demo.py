"""``posintegrator demo``: the simulated POS, the host and a cloud webhook receiver in one process.

Everything lives in one data directory, so a second run with the same directory carries on
where the first stopped (same token, same orders, same POS state).
"""

from __future__ import annotations

import secrets
import shlex
from pathlib import Path
from typing import Any

import click
import orjson

from posintegrator.cloud.receiver import CloudReceiver
from posintegrator.cloud.signatures import SECRET_PREFIX, generate_secret
from posintegrator.errors import PosError
from posintegrator.menus.sync import MenuRejected
from posintegrator.runtime.host import Host
from posintegrator.settings import load_settings
from posintegrator.ui.passwords import hash_password

DEMO_CONNECTION = "demo"
DEMO_LOCATIONS = ("downtown", "airport")
#: The operator the demo's dashboard signs in (its password is in demo-secrets.json).
DEMO_OPERATOR = "demo"


def prepare_data_dir(data_dir: Path) -> tuple[dict[str, str], bool]:
    """Create ``data_dir`` if needed and read (or make, on the first run) the demo's secrets.

    A directory from before the cloud webhooks moved to the Standard Webhooks format holds a
    plain cloud secret: it is replaced by a ``whsec_`` one (both ends are the demo's own).

    :returns: the secrets, and whether this is the first run in this directory.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    first_run = not (data_dir / "posintegrator.db").exists()
    path = data_dir / "demo-secrets.json"
    if path.exists():
        values: dict[str, str] = orjson.loads(path.read_bytes())
        if values.get("cloud_webhook_secret", "").startswith(SECRET_PREFIX) and _has_dashboard(
            values
        ):
            return values, first_run
        if not values.get("cloud_webhook_secret", "").startswith(SECRET_PREFIX):
            values["cloud_webhook_secret"] = generate_secret()
        values.update({k: v for k, v in _dashboard_secrets().items() if k not in values})
    else:
        values = {
            "api_token": secrets.token_urlsafe(24),
            "cloud_webhook_secret": generate_secret(),
            "pos_api_key": secrets.token_urlsafe(16),
            "pos_webhook_secret": secrets.token_urlsafe(24),
            **_dashboard_secrets(),
        }
    path.write_bytes(orjson.dumps(values, option=orjson.OPT_INDENT_2))
    path.chmod(0o600)
    return values, first_run


def _dashboard_secrets() -> dict[str, str]:
    """The demo operator's password (its hash goes into the settings) and the session key."""
    password = secrets.token_urlsafe(12)
    return {
        "ui_password": password,
        "ui_password_hash": hash_password(password),
        "ui_session_secret": secrets.token_urlsafe(32),
    }


def _has_dashboard(values: dict[str, str]) -> bool:
    return all(k in values for k in ("ui_password", "ui_password_hash", "ui_session_secret"))


def write_demo_config(
    data_dir: Path, port: int, values: dict[str, str], pos_url: str, receiver_url: str
) -> Path:
    """Write the host's settings for the demo into ``data_dir/demo.toml``."""
    locations = ", ".join(f'"{loc}"' for loc in DEMO_LOCATIONS)
    return write_host_config(
        data_dir,
        port,
        values,
        receiver_url,
        f"""[[connections]]
name = "{DEMO_CONNECTION}"
plugin = "demo"
locations = [{locations}]
menu_sync_seconds = 60
status_source = "webhook"

[connections.settings]
base_url = "{pos_url}"
api_key = "{values["pos_api_key"]}"
webhook_secret = "{values["pos_webhook_secret"]}"
""",
    )


def write_host_config(
    data_dir: Path, port: int, values: dict[str, str], receiver_url: str, connections: str
) -> Path:
    """Write ``data_dir/demo.toml``: the demo host's API, store and cloud tables, then the
    ``connections`` tables given (the file holds secrets: readable by its owner only)."""
    config = data_dir / "demo.toml"
    config.write_text(
        f"""# Written by `posintegrator demo`; rewritten on every run.
[api]
host = "127.0.0.1"
port = {port}
token = "{values["api_token"]}"

[store]
path = "{data_dir / "posintegrator.db"}"

[ui]
session_secret = "{values["ui_session_secret"]}"

[[ui.users]]
name = "{DEMO_OPERATOR}"
password_hash = "{values["ui_password_hash"]}"

[cloud]
webhook_url = "{receiver_url}"
webhook_secrets = ["{values["cloud_webhook_secret"]}"]

# The chain's sales channels: its own four, and an aggregator with its own price list in the
# demo POS (price level "ubereats").
[[channels]]
id = "kiosk"
[[channels]]
id = "web"
[[channels]]
id = "delivery"
[[channels]]
id = "dine_in"
[[channels]]
id = "ubereats"
name = "Uber Eats"

{connections}""",
        encoding="utf-8",
    )
    config.chmod(0o600)
    return config


#: The two demos, by the kind recorded in their data directory.
DEMO_KINDS = {"central": "posintegrator demo", "local": "posintegrator demo --local"}


def claim_data_dir(data_dir: Path, kind: str) -> None:
    """Record that ``data_dir`` holds the ``kind`` demo (``central`` or ``local``), and refuse
    a directory the other one made: their POS folders and connections differ, so one cannot
    carry on from the other.

    :raises click.ClickException: ``data_dir`` holds the other demo.
    """
    marker = data_dir / "demo-kind"
    if marker.exists():
        found = marker.read_text(encoding="utf-8").strip()
    elif (data_dir / "posintegrator.db").exists():
        found = "central"  # made before the local demo existed
    else:
        found = kind
    if found != kind:
        raise click.ClickException(
            f"{data_dir} holds the data of `{DEMO_KINDS.get(found, found)}`: run that, or give "
            f"`{DEMO_KINDS[kind]}` another --data-dir"
        )
    marker.write_text(kind + "\n", encoding="utf-8")


def find_example_order(name: str = "order.json") -> Path | None:
    """``examples/<name>`` from the working directory or the source checkout."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        candidate = root / "examples" / name
        if candidate.is_file():
            return candidate
    return None


def print_event(event: dict[str, Any]) -> None:
    """Print what the cloud receiver got."""
    if event["type"] == "order.status_changed":
        pos = f" (POS {event['pos_order_id']})" if event.get("pos_order_id") else ""
        refund = event.get("refund")
        money = f", refund {refund['amount'] / 100:.2f} {refund['currency']}" if refund else ""
        click.secho(
            f"cloud <- order {event['order_id']} #{event['sequence']}: {event['status']}"
            f"{pos}{money}",
            fg="magenta",
        )
    elif event["type"] == "order.cancel_refused":
        click.secho(
            f"cloud <- order {event['order_id']} #{event['sequence']}: cancellation refused, "
            f"still {event['status']} ({event['reason']})",
            fg="magenta",
        )
    else:
        click.secho(
            f"cloud <- menu of {event['location']} published as version {event['version']}",
            fg="magenta",
        )


async def run_demo(
    port: int, data_dir: Path, values: dict[str, str], first_run: bool, stage_seconds: float
) -> None:
    """Start the demo and run until SIGINT/SIGTERM."""
    try:
        from pos_demo.simulator import SimulatorConfig, start_simulator
    except ImportError:
        raise click.ClickException(
            "the demo POS plugin is not installed: pip install -e plugins/pos_demo"
        ) from None
    # The POS and the receiver take whatever ports are free; only the API's port is chosen.
    receiver = CloudReceiver([values["cloud_webhook_secret"]], on_event=print_event)
    await receiver.start()
    simulator = await start_simulator(
        SimulatorConfig(
            data_dir=data_dir / "pos",
            api_key=values["pos_api_key"],
            stage_seconds=stage_seconds,
        )
    )
    try:
        config = write_demo_config(data_dir, port, values, simulator.url, receiver.url)
        host = Host(load_settings(config))
        try:
            await host.start()
        except OSError as exc:
            await host.stop()
            raise click.ClickException(
                f"cannot listen on port {port} ({exc}); pick another with --port (0: any)"
            ) from None
        # With --port 0 the file now names the port really bound, so the CLI finds the host.
        write_demo_config(data_dir, host.port, values, simulator.url, receiver.url)
        simulator.set_webhook(
            f"{host.url}/pos/{DEMO_CONNECTION}/webhook", values["pos_webhook_secret"]
        )
        await _run_host(host, simulator.url, receiver.url, values, first_run)
    finally:
        await simulator.close()
        await receiver.stop()


async def _run_host(
    host: Host, simulator_url: str, receiver_url: str, values: dict[str, str], first_run: bool
) -> None:
    """Sync the demo menus, print the banner and serve until SIGINT/SIGTERM; then stop."""
    import asyncio
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        jobs = host.connections[DEMO_CONNECTION]
        for location in DEMO_LOCATIONS:
            try:
                await jobs.menusync.sync(location)
            except (PosError, MenuRejected) as exc:
                click.secho(f"menu of {location} not synced yet: {exc}", fg="yellow")
        _banner(host.url, simulator_url, receiver_url, values, first_run)
        await stop.wait()
        click.echo("stopping...")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await host.stop()


def _banner(
    api: str, simulator: str, receiver: str, values: dict[str, str], first_run: bool
) -> None:
    print_banner(
        "posintegrator demo is running" + ("" if first_run else " (resumed)"),
        [
            ("Dashboard", dashboard_row(api, values)),
            ("Integrator API", api),
            ("API token", values["api_token"]),
            ("Demo POS", simulator),
            ("Cloud receiver", f"{receiver}   (its events are printed below)"),
        ],
        [("What the POS holds:", pos_look(simulator, values))],
        api,
        values["api_token"],
    )


def dashboard_row(api: str, values: dict[str, str]) -> str:
    """Where the dashboard is, and how to sign in to it."""
    return f"{api}/ui/   (sign in as {DEMO_OPERATOR}, password {values['ui_password']})"


def pos_look(simulator: str, values: dict[str, str]) -> str:
    """The command that lists the orders a demo POS holds."""
    pos_key = shlex.quote(f"X-Api-Key: {values['pos_api_key']}")
    return f"curl -sS -H {pos_key} {simulator}/orders; echo"


def print_banner(
    title: str,
    rows: list[tuple[str, str]],
    looks: list[tuple[str, str]],
    api: str,
    token: str,
    *,
    cancellable: bool = True,
) -> None:
    """Print what runs (``rows``: name, value) and commands that work as pasted: ``looks``
    (heading, command), then the menu, the example orders and their follow-ups at ``api`` (the
    delivery order's cancellation only when ``cancellable``: a hub cannot cancel an order its
    venue agent has)."""
    auth = shlex.quote(f"Authorization: Bearer {token}")
    example = find_example_order()
    click.echo()
    click.secho(title, bold=True)
    for name, value in rows:
        click.echo(f"  {name:<16} {value}")
    click.echo()
    for heading, command in looks:
        click.echo(heading)
        click.echo(f"  {command}")
    click.echo("Menu:")
    click.echo(f"  curl -sS -H {auth} {api}/v1/locations/downtown/menu | head -c 600; echo")
    if example is not None:
        click.echo(
            "Place the example order (same id again = same answer; change the id for a new one):"
        )
        click.echo(
            f"  curl -sS -X POST -H {auth} -H 'Content-Type: application/json' "
            f"--data @{shlex.quote(str(example))} {api}/v1/orders; echo"
        )
        click.echo("Follow it:")
        click.echo(f"  curl -sS -H {auth} {api}/v1/orders/demo-order-0001; echo")
    delivery = find_example_order("delivery-order.json")
    if delivery is not None:
        click.echo(
            "An Uber Eats delivery (own prices, 10 % off, a fee, a tip, two payments)"
            + ("; cancel it before the kitchen starts:" if cancellable else ":")
        )
        click.echo(
            f"  curl -sS -X POST -H {auth} -H 'Content-Type: application/json' "
            f"--data @{shlex.quote(str(delivery))} {api}/v1/orders; echo"
        )
    if delivery is not None and cancellable:
        cancel = shlex.quote('{"requested_by": "customer", "reason": "changed my mind"}')
        click.echo(
            f"  curl -sS -X POST -H {auth} -H 'Content-Type: application/json' "
            f"--data {cancel} {api}/v1/orders/demo-delivery-0001/cancel; echo"
        )
    click.echo("Stop with Ctrl-C; run again with the same --data-dir to carry on.")
    click.echo()
