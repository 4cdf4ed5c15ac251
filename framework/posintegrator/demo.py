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

DEMO_CONNECTION = "demo"
DEMO_LOCATIONS = ("downtown", "airport")


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
        if values.get("cloud_webhook_secret", "").startswith(SECRET_PREFIX):
            return values, first_run
        values["cloud_webhook_secret"] = generate_secret()
    else:
        values = {
            "api_token": secrets.token_urlsafe(24),
            "cloud_webhook_secret": generate_secret(),
            "pos_api_key": secrets.token_urlsafe(16),
            "pos_webhook_secret": secrets.token_urlsafe(24),
        }
    path.write_bytes(orjson.dumps(values, option=orjson.OPT_INDENT_2))
    path.chmod(0o600)
    return values, first_run


def write_demo_config(
    data_dir: Path, port: int, values: dict[str, str], pos_url: str, receiver_url: str
) -> Path:
    """Write the host's settings for the demo into ``data_dir/demo.toml``."""
    config = data_dir / "demo.toml"
    locations = ", ".join(f'"{loc}"' for loc in DEMO_LOCATIONS)
    config.write_text(
        f"""# Written by `posintegrator demo`; rewritten on every run.
[api]
host = "127.0.0.1"
port = {port}
token = "{values["api_token"]}"

[store]
path = "{data_dir / "posintegrator.db"}"

[cloud]
webhook_url = "{receiver_url}"
webhook_secrets = ["{values["cloud_webhook_secret"]}"]

[[connections]]
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
        encoding="utf-8",
    )
    config.chmod(0o600)
    return config


def find_example_order() -> Path | None:
    """``examples/order.json`` from the working directory or the source checkout."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        candidate = root / "examples" / "order.json"
        if candidate.is_file():
            return candidate
    return None


def _print_event(event: dict[str, Any]) -> None:
    if event["type"] == "order.status_changed":
        pos = f" (POS {event['pos_order_id']})" if event.get("pos_order_id") else ""
        click.secho(
            f"cloud <- order {event['order_id']} #{event['sequence']}: {event['status']}{pos}",
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
    receiver = CloudReceiver([values["cloud_webhook_secret"]], on_event=_print_event)
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
    token = values["api_token"]
    auth = shlex.quote(f"Authorization: Bearer {token}")
    pos_key = shlex.quote(f"X-Api-Key: {values['pos_api_key']}")
    example = find_example_order()
    click.echo()
    click.secho("posintegrator demo is running" + ("" if first_run else " (resumed)"), bold=True)
    click.echo(f"  Integrator API   {api}")
    click.echo(f"  API token        {token}")
    click.echo(f"  Demo POS         {simulator}")
    click.echo(f"  Cloud receiver   {receiver}   (its events are printed below)")
    click.echo()
    click.echo("What the POS holds:")
    click.echo(f"  curl -sS -H {pos_key} {simulator}/orders; echo")
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
    click.echo("Stop with Ctrl-C; run again with the same --data-dir to carry on.")
    click.echo()
