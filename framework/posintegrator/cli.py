"""The ``posintegrator`` command."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
import click
import orjson
from pydantic import ValidationError

from posintegrator import __version__
from posintegrator.cli_common import (
    api_options,
    api_target,
    fail,
    fetch,
    print_json,
    settings_or_fail,
)
from posintegrator.cli_ops import call_and_print, operator_options, store_group, streams_group
from posintegrator.cloud.signatures import (
    DEFAULT_SECRET_BYTES,
    MAX_SECRET_BYTES,
    MIN_SECRET_BYTES,
    generate_secret,
)
from posintegrator.errors import StartupError
from posintegrator.logs import setup_logging
from posintegrator.model.menu_check import FindingView, check_menu_data, errors_in
from posintegrator.plugins import PluginHost, connection_conflicts, installed_plugins
from posintegrator.schemas import SCHEMAS, json_schema
from posintegrator.settings import (
    ConnectionSettings,
    HostSettings,
    SettingsError,
    SettingsProblem,
    load_settings,
    merge_connection_secrets,
    read_settings_file,
)


@click.group()
@click.version_option(__version__, prog_name="posintegrator")
def main() -> None:
    """Keep restaurant POS systems and a cloud ordering platform in sync."""


# --- plugins ----------------------------------------------------------------------------------


@main.group("plugins", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def plugins_command(context: click.Context, as_json: bool) -> None:
    """List the installed POS plugins and what they can do (``plugins check NAME``: check one
    against the conformance kit's static checklist)."""
    if context.invoked_subcommand is not None:
        return
    names = installed_plugins()
    try:
        host = PluginHost.load(names)
    except StartupError as exc:
        fail(str(exc))
    rows: list[dict[str, Any]] = []
    for info in host.plugins():
        caps: dict[str, Any]
        try:
            caps = host.pos(info.name).capabilities().model_dump(mode="json")
        except StartupError as exc:
            caps = {"error": str(exc)}
        rows.append({"name": info.name, "version": info.version, "capabilities": caps})
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("no plugins installed (pip install a posintegrator-pos-* package)")
    for row in rows:
        caps = row["capabilities"]
        flags = [k for k, v in caps.items() if v is True]
        click.echo(f"{row['name']} {row['version']}: {', '.join(flags)}")


@plugins_command.command("check")
@click.argument("name")
def plugins_check(name: str) -> None:
    """Check installed plugin NAME without a POS: entry point, version ranges, hooks against
    their specifications, settings model, capabilities. Prints the checklist; exits 1 if an
    item fails (see docs/plugin-tutorial.md)."""
    from posintegrator.testing.checklist import Outcome, check_plugin, render

    items = check_plugin(name)
    click.echo(render(name, items))
    if any(item.outcome is Outcome.FAILED for item in items):
        sys.exit(1)


# --- config -----------------------------------------------------------------------------------


@main.group("config")
def config_group() -> None:
    """Work with settings files."""


def check_config(
    path: Path, secrets_dir: Path | None
) -> tuple[HostSettings | None, list[SettingsProblem]]:
    """Every problem of the settings in ``path``, including each connection's plugin settings.

    A problem in one part never hides the others: when the file as a whole is invalid, each
    connection that is valid on its own is still checked against its plugin.
    """
    problems: list[SettingsProblem] = []
    settings: HostSettings | None = None
    try:
        settings = load_settings(path, secrets_dir=secrets_dir)
        connections = list(enumerate(settings.connections))
        extensions = settings.extensions
        problems.extend(connection_conflicts(settings.connections))
    except SettingsError as exc:
        problems.extend(exc.problems)
        connections, extensions = _valid_parts(path, secrets_dir)
    for index, connection in connections:
        try:
            plugins = PluginHost.load([connection.plugin])
        except StartupError as exc:
            problems.append(SettingsProblem(path=f"connections[{index}].plugin", message=str(exc)))
            continue
        problems.extend(plugins.validate_connection(index, connection)[1])
    for index, name in enumerate(extensions):
        try:
            PluginHost.load([name])
        except StartupError as exc:
            problems.append(SettingsProblem(path=f"extensions[{index}]", message=str(exc)))
    if settings is not None and settings.api.token is None:
        problems.append(
            SettingsProblem(
                path="api.token",
                message="not set: every API call will be refused "
                "(set it, or the environment variable POSINTEGRATOR_API_TOKEN)",
            )
        )
    return settings, problems


def _valid_parts(
    path: Path, secrets_dir: Path | None
) -> tuple[list[tuple[int, ConnectionSettings]], list[str]]:
    """The connections (with their index) and extensions of a file that is invalid as a whole.

    Their own problems were reported already; here only the valid ones are kept for checking.
    """
    try:
        data = read_settings_file(path)
    except SettingsError:
        return [], []
    merge_connection_secrets(data, secrets_dir)
    connections: list[tuple[int, ConnectionSettings]] = []
    raw = data.get("connections")
    for index, table in enumerate(raw if isinstance(raw, list) else []):
        try:
            connections.append((index, ConnectionSettings.model_validate(table)))
        except ValidationError:
            continue
    extensions = data.get("extensions")
    names = [e for e in extensions if isinstance(e, str)] if isinstance(extensions, list) else []
    return connections, names


@config_group.command("check")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--secrets-dir", type=click.Path(path_type=Path, file_okay=False), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def config_check(file: Path, secrets_dir: Path | None, as_json: bool) -> None:
    """Check a settings FILE: report every problem with its path, exit 1 if there is any."""
    settings, problems = check_config(file, secrets_dir)
    if as_json:
        print_json({"ok": not problems, "problems": [p.model_dump() for p in problems]})
    elif problems:
        for problem in problems:
            click.echo(f"{file}: {problem}", err=True)
        click.secho(f"{len(problems)} problem(s) found", fg="red", err=True)
    else:
        assert settings is not None
        click.secho(
            f"{file}: OK ({len(settings.connections)} connection(s), "
            f"{sum(len(c.locations) for c in settings.connections)} location(s))",
            fg="green",
        )
    if problems:
        sys.exit(1)


@main.command("webhook-secret")
@click.option(
    "--bytes",
    "size",
    type=click.IntRange(MIN_SECRET_BYTES, MAX_SECRET_BYTES),
    default=DEFAULT_SECRET_BYTES,
    show_default=True,
    help="Random bytes in the secret.",
)
def webhook_secret(size: int) -> None:
    """Print a new secret for cloud.webhook_secrets (whsec_ + base64 of random bytes).

    Give the same secret to the cloud side, which verifies with it.
    """
    click.echo(generate_secret(size))


@main.group("ui")
def ui_group() -> None:
    """The operator dashboard (/ui)."""


#: Shortest password the dashboard's hash command accepts.
MIN_PASSWORD_LENGTH = 12


@ui_group.command("hash-password")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of asking.",
)
def ui_hash_password(password_stdin: bool) -> None:
    """Print the hash of an operator's password for ui.users[].password_hash.

    The password is asked for twice without being shown (or read from standard input), never
    taken as an argument, so it stays out of shell history and process lists.
    """
    from posintegrator.ui.passwords import hash_password

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < MIN_PASSWORD_LENGTH:
        click.echo(
            f"error: the password is {len(password)} characters long; use at least "
            f"{MIN_PASSWORD_LENGTH}",
            err=True,
        )
        sys.exit(2)
    click.echo(hash_password(password))


# --- serve / demo -----------------------------------------------------------------------------


@main.command("serve")
@click.option("--config", "config", type=click.Path(path_type=Path, dir_okay=False), required=True)
@click.option("--secrets-dir", type=click.Path(path_type=Path, file_okay=False), default=None)
def serve(config: Path, secrets_dir: Path | None) -> None:
    """Run the host (a central host, or a hub for venue agents) with the settings in CONFIG
    until SIGINT or SIGTERM."""
    _run_host(config, secrets_dir, agent=False)


def _run_host(config: Path, secrets_dir: Path | None, *, agent: bool) -> None:
    from posintegrator.runtime.host import Host

    component = "agent" if agent else "host"
    setup_logging(component=component)
    settings = settings_or_fail(config, secrets_dir)
    setup_logging(
        os.environ.get("POSINTEGRATOR_LOG_LEVEL") or settings.log.level,
        component=component,
        log_format=settings.log.format,
    )
    if agent and settings.agent is None:
        fail(f"{config} has no [agent] table: it is not a venue agent's settings file")
    if not agent and settings.agent is not None:
        fail(
            f"{config} is a venue agent's settings file ([agent] table)",
            f"run it with: posintegrator agent --config {config}",
        )
    try:
        host = Host(settings)
        asyncio.run(host.run_until_signalled())
    except StartupError as exc:
        fail(str(exc))
    except SettingsError as exc:
        fail(
            "the settings cannot be used:\n" + "\n".join(f"  {p}" for p in exc.problems),
            f"check them with: posintegrator config check {config}",
        )
    except OSError as exc:
        fail(f"cannot start: {exc}", "is another process using the API port?")


@main.command("demo")
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="The Integrator API's port (0: any free one); everything else takes free ports.",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where the demo keeps its state [default: demo-data, with --local demo-local-data].",
)
@click.option("--stage-seconds", default=3.0, show_default=True, help="Kitchen seconds per stage.")
@click.option(
    "--local",
    is_flag=True,
    help="Run it as a chain with venue agents: the hub here, one agent process and one demo "
    "POS per venue.",
)
def demo(port: int, data_dir: Path | None, stage_seconds: float, local: bool) -> None:
    """Run a simulated POS, the host and a cloud receiver together, with no credentials."""
    from posintegrator.demo import claim_data_dir, prepare_data_dir, run_demo

    setup_logging()
    data_dir = (data_dir or Path("demo-local-data" if local else "demo-data")).resolve()
    values, first_run = prepare_data_dir(data_dir)
    claim_data_dir(data_dir, "local" if local else "central")
    if local:
        from posintegrator.demo_local import run_local_demo

        asyncio.run(run_local_demo(port, data_dir, values, first_run, stage_seconds))
    else:
        asyncio.run(run_demo(port, data_dir, values, first_run, stage_seconds))


# --- reading from a running host --------------------------------------------------------------


@main.group("menu")
def menu_group() -> None:
    """Menus the host publishes."""


@menu_group.command("show")
@click.argument("location")
@api_options
def menu_show(
    location: str, config: Path | None, url: str | None, token: str | None, as_json: bool
) -> None:
    """Show the published menu of LOCATION."""
    call_and_print(config, url, token, as_json, f"/v1/locations/{location}/menu", _print_menu)


def _print_menu(menu: dict[str, Any]) -> None:
    price_lists = [p["id"] for p in menu["price_lists"]]
    click.secho(
        f"Menu of {menu['location']} ({menu['currency']}), price lists: {', '.join(price_lists)}",
        bold=True,
    )
    by_category: dict[str, list[dict[str, Any]]] = {}
    for product in menu["products"]:
        for category in product["category_ids"] or ["(none)"]:
            by_category.setdefault(category, []).append(product)
    names = {c["id"]: c["name"] for c in menu["categories"]}
    for category, products in by_category.items():
        click.secho(names.get(category, category), underline=True)
        for product in products:
            prices = " / ".join(
                f"{v['name']} "
                + " ".join(f"{pl}={amount / 100:.2f}" for pl, amount in v["prices"].items())
                for v in product["variants"]
            )
            flag = "" if product["availability"]["available"] else "  [86'd]"
            combo = "  [combo]" if product["slots"] else ""
            click.echo(f"  {product['name']}: {prices}{combo}{flag}")
    click.echo(f"{len(menu['products'])} products, {len(menu['modifier_groups'])} modifier groups")


@menu_group.command("check")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False), required=False)
@click.option("--location", default=None, help="Show a running host's report for LOCATION.")
@api_options
def menu_check(
    file: Path | None,
    location: str | None,
    config: Path | None,
    url: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """Check a universal menu FILE, or show the latest report of a live --location.

    Exits 1 when there are errors (warnings alone do not fail).
    """
    if (file is None) == (location is None):
        fail("give either a menu FILE or --location LOCATION")
    if file is not None:
        try:
            data = orjson.loads(file.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            fail(f"cannot read {file} as JSON: {exc}")
        _menu, findings = check_menu_data(data)
        views = [FindingView.of(f).model_dump(mode="json") for f in findings]
        report: dict[str, Any] = {
            "file": str(file),
            "errors": len(errors_in(findings)),
            "warnings": len(findings) - len(errors_in(findings)),
            "findings": views,
        }
    else:
        api, key = api_target(config, url, token)
        report = fetch(api, key, f"/v1/locations/{location}/menu/report")
    if as_json:
        print_json(report)
    else:
        for finding in report["findings"]:
            color = "red" if finding["severity"] == "error" else "yellow"
            click.secho(
                f"{finding['severity']}: {finding['path']}: {finding['message']} "
                f"[{finding['code']}]",
                fg=color,
            )
        summary = f"{report['errors']} error(s), {report['warnings']} warning(s)"
        if "outcome" in report:
            summary += f"; {report['outcome']}, live version {report['live_version']}"
        click.echo(summary)
    if report["errors"]:
        sys.exit(1)


@main.command("schema")
@click.argument("kind", type=click.Choice(sorted(SCHEMAS)))
def schema_command(kind: str) -> None:
    """Print the JSON Schema of a menu, an order or a cloud event."""
    print_json(json_schema(kind))


@main.group("orders")
def orders_group() -> None:
    """Orders the host holds."""


@orders_group.command("show")
@click.argument("order_id")
@api_options
def orders_show(
    order_id: str, config: Path | None, url: str | None, token: str | None, as_json: bool
) -> None:
    """Show order ORDER_ID, its status and its history."""
    call_and_print(config, url, token, as_json, f"/v1/orders/{order_id}", _print_order)


def _print_order(view: dict[str, Any]) -> None:
    order = view["order"]
    click.secho(f"Order {order['id']} at {order['location']}: {view['status']}", bold=True)
    if view["status_reason"]:
        click.echo(f"  reason: {view['status_reason']}")
    click.echo(f"  POS id: {view['pos_order_id'] or '-'}   attempts: {view['attempts']}")
    payments = ", ".join(
        f"{p['amount'] / 100:.2f} {p['mode']}" + (f" {p['method']}" if p.get("method") else "")
        for p in order["payments"]
    )
    click.echo(f"  total: {order['total'] / 100:.2f} {order['currency']} (paid: {payments})")
    cancellation = view.get("cancellation")
    if cancellation:
        outcome = f": {cancellation['outcome']}" if cancellation["outcome"] else ""
        click.echo(
            f"  cancellation {cancellation['state']} (asked by {cancellation['requested_by']}: "
            f"{cancellation['reason']}){outcome}"
        )
    _print_history(view)


def _print_history(view: dict[str, Any]) -> None:
    click.echo("  history:")
    for item in view["history"]:
        mark = "" if item["applied"] else f"  ({item['note']})"
        why = f": {item['reason']}" if item["reason"] else ""
        click.echo(f"    {item['at']}  {item['status']:<15} {item['source']}{mark}{why}")


@orders_group.command("list")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    default=("NEEDS_ATTENTION", "FAILED"),
    show_default=True,
    help="Status to list (repeatable).",
)
@click.option("--limit", default=100, show_default=True)
@api_options
def orders_list(
    statuses: tuple[str, ...],
    limit: int,
    config: Path | None,
    url: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """List orders by status: by default the ones a person must look at."""
    query = "&".join(f"status={s}" for s in statuses)

    def show(listing: dict[str, Any]) -> None:
        if not listing["orders"]:
            click.echo(f"no orders in {', '.join(statuses)}")
        for order in listing["orders"]:
            click.echo(
                f"{order['id']}  {order['location']}  {order['status']}  attempts "
                f"{order['attempts']}  {order['status_reason'] or order['last_error'] or ''}"
            )

    call_and_print(config, url, token, as_json, f"/v1/orders?{query}&limit={limit}", show)


def _operator_command(verb: str, help_text: str, needs_pos_id: bool = False) -> None:
    """Add ``orders VERB``: one operator action of the API, with who did it and why."""

    @click.argument("order_id")
    @operator_options("in the history")
    @api_options
    def command(
        order_id: str,
        operator: str,
        note: str | None,
        config: Path | None,
        url: str | None,
        token: str | None,
        as_json: bool,
        pos_id: str | None = None,
    ) -> None:
        body: dict[str, Any] = {"operator": operator, "note": note}
        if needs_pos_id:
            body["pos_order_id"] = pos_id
        if verb == "cancel":
            reason = note or "cancelled by an operator"
            body = {"requested_by": "operator", "operator": operator, "reason": reason}

        def show(view: dict[str, Any]) -> None:
            click.secho(f"Order {order_id}: {view['status']}", bold=True)
            _print_history(view)

        call_and_print(config, url, token, as_json, f"/v1/orders/{order_id}/{verb}", show, body)

    if needs_pos_id:
        command = click.option("--pos-id", "pos_id", required=True, help="The POS's id.")(command)
    orders_group.command(verb, help=help_text)(command)


_operator_command("retry", "Send order ORDER_ID to the POS again now (looked up first if needed).")
_operator_command(
    "found", "Record that ORDER_ID is in the POS, with its POS id.", needs_pos_id=True
)
_operator_command("missing", "Record that the POS lacks ORDER_ID, and send it now.")
_operator_command(
    "cancel",
    "Cancel ORDER_ID: at once if the POS does not have it, else the POS is asked (and may "
    "refuse if the kitchen has started).",
)


# --- venue agents -----------------------------------------------------------------------------


@main.group("agent", invoke_without_command=True)
@click.option("--config", type=click.Path(path_type=Path, dir_okay=False), default=None)
@click.option("--secrets-dir", type=click.Path(path_type=Path, file_okay=False), default=None)
@click.pass_context
def agent_group(ctx: click.Context, config: Path | None, secrets_dir: Path | None) -> None:
    """Run a venue agent with the settings in --config (after pairing it: agent pair)."""
    if ctx.invoked_subcommand is not None:
        return
    if config is None:
        fail("give the agent's settings: posintegrator agent --config FILE")
    assert config is not None
    _run_host(config, secrets_dir, agent=True)


@agent_group.command("pair")
@click.option("--config", type=click.Path(path_type=Path, dir_okay=False), required=True)
@click.option("--hub", "hub_url", default=None, help="The hub's URL (default: agent.hub_url).")
@click.option("--name", default=None, help="The name to propose (the operator may change it).")
@click.option("--secrets-dir", type=click.Path(path_type=Path, file_okay=False), default=None)
def agent_pair(
    config: Path, hub_url: str | None, name: str | None, secrets_dir: Path | None
) -> None:
    """Pair this venue agent with its hub: show a one-time code, wait for an operator."""
    from posintegrator.link.identity import KEY_FILE, AgentKey, NotPaired
    from posintegrator.link.pairing import PairingFailed, PairingRequest, PairingStarted, pair

    settings = settings_or_fail(config, secrets_dir)
    if settings.agent is None:
        fail(f"{config} has no [agent] table: it is not a venue agent's settings file")
    assert settings.agent is not None
    key_path = settings.store.path.parent / KEY_FILE
    try:
        key = AgentKey.load(key_path)
    except NotPaired:
        key = AgentKey.generate()
        key.save(key_path)
    hub = hub_url or str(settings.agent.hub_url)
    locations = sorted({loc for c in settings.connections for loc in c.locations})
    try:
        request = PairingRequest(
            public_key=key.public_key, name=name, version=__version__, locations=locations
        )
    except ValidationError as exc:
        fail(f"cannot ask to pair: {exc.errors(include_url=False)[0]['msg']}")

    def show(started: PairingStarted) -> None:
        wanted = ",".join(locations) or "LOCATIONS"
        click.secho(f"Pairing code: {started.code}", bold=True)
        click.echo(f"Approve it at the hub (before {started.expires_at:%H:%M} UTC) with:")
        click.echo(f"  posintegrator agents approve {started.code} --locations {wanted}")
        click.echo("Waiting for the approval (Ctrl-C to give up)...")

    try:
        status = asyncio.run(pair(hub, request, ca_file=settings.agent.ca_file, show_code=show))
    except PairingFailed as exc:
        fail(str(exc))
    except aiohttp.ClientError as exc:
        fail(f"cannot reach the hub at {hub}: {exc}", "check agent.hub_url and the network")
    except KeyboardInterrupt:
        fail("pairing abandoned")
    click.secho(f"Paired as agent {status.agent} for {', '.join(status.locations)}.", fg="green")
    click.echo(f"Start it with: posintegrator agent --config {config}")


@main.group("agents")
def agents_group() -> None:
    """Venue agents of a hub: approve, list, revoke."""


@agents_group.command("approve")
@click.argument("code")
@click.option("--locations", required=True, help="Comma-separated locations it serves.")
@click.option("--name", default=None, help="The agent's name (default: the one it proposed).")
@click.option("--operator", default="cli", show_default=True, help="Who approves.")
@api_options
def agents_approve(
    code: str,
    locations: str,
    name: str | None,
    operator: str,
    config: Path | None,
    url: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """Approve the pairing CODE an agent shows, for --locations."""
    wanted = [loc.strip() for loc in locations.split(",") if loc.strip()]
    body = {"code": code, "locations": wanted, "name": name, "operator": operator}

    def show(view: dict[str, Any]) -> None:
        click.secho(f"Agent {view['name']} approved for {', '.join(view['locations'])}", fg="green")

    call_and_print(config, url, token, as_json, "/v1/agents/approve", show, body)


@agents_group.command("list")
@api_options
def agents_list(config: Path | None, url: str | None, token: str | None, as_json: bool) -> None:
    """List the hub's venue agents and their links."""
    api, key = api_target(config, url, token)
    agents = fetch(api, key, "/v1/agents")["agents"]
    if as_json:
        print_json(agents)
        return
    if not agents:
        click.echo("no venue agents (pair one: posintegrator agent pair)")
    for agent in agents:
        state = "connected" if agent["connected"] else "offline"
        if agent["status"] != "approved":
            state = agent["status"]
        rtt = f"  rtt {agent['rtt_ms']} ms" if agent["rtt_ms"] is not None else ""
        click.echo(
            f"{agent['name']}  {state} since {agent['since']}  v{agent['version'] or '?'}  "
            f"{','.join(agent['locations'])}  waiting to/from agent "
            f"{agent['waiting_to_agent']}/{agent['waiting_from_agent'] or 0}{rtt}"
        )


@agents_group.command("revoke")
@click.argument("name")
@click.option("--operator", default="cli", show_default=True, help="Who revokes.")
@click.option("--note", default=None, help="Why.")
@api_options
def agents_revoke(
    name: str,
    operator: str,
    note: str | None,
    config: Path | None,
    url: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """Revoke agent NAME: its link ends at once and is refused from then on."""
    body = {"operator": operator, "note": note}

    def show(view: dict[str, Any]) -> None:
        click.secho(f"Agent {view['name']} revoked", fg="yellow")

    call_and_print(config, url, token, as_json, f"/v1/agents/{name}/revoke", show, body)


main.add_command(store_group)
main.add_command(streams_group)

if __name__ == "__main__":
    main()
