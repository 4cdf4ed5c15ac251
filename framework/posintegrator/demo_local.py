"""``posintegrator demo --local``: the demo as a chain with venue agents.

The demo process runs the hub (``placement = "local"``: it never calls a POS itself), the cloud
receiver and one simulated POS per venue; each venue's agent runs as a process of its own,
``posintegrator agent --config <data>/agent-<venue>.toml``, exactly as it would in a venue. The
demo owns both ends of the pairing, so it pairs each agent itself the first time (its key in
``<data>/agent-<venue>/agent-key.pem``, approved through the hub's API as an operator would);
a second run with the same data directory finds the keys and approved agents and carries on.

Only the hub's API port is chosen (``--port``); everything else binds port 0, and each agent
says which port it got the way it would tell systemd (``NOTIFY_SOCKET``, see runtime/notify.py),
so its POS can be pointed at its webhook route.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import socket
import sys
import tempfile
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import click
import orjson

from posintegrator import __version__
from posintegrator.apiclient import ApiError, call_json
from posintegrator.cloud.receiver import CloudReceiver
from posintegrator.demo import (
    DEMO_CONNECTION,
    DEMO_LOCATIONS,
    dashboard_row,
    pos_look,
    print_banner,
    print_event,
    write_host_config,
)
from posintegrator.link.identity import KEY_FILE, AgentKey, NotPaired
from posintegrator.runtime.host import Host
from posintegrator.runtime.notify import URL_FIELD
from posintegrator.settings import load_settings

#: How long an agent may take to start, and then to link and publish its venue's menu.
START_SECONDS = 60.0
#: How long a stopping agent may take before it is killed.
STOP_SECONDS = 20.0
#: The longest line of an agent's output that is printed whole.
OUTPUT_LINE_BYTES = 1024 * 1024


def _toml(value: str) -> str:
    """``value`` as a TOML string (JSON's string escapes are TOML's)."""
    return orjson.dumps(value).decode()


@dataclass(frozen=True)
class Venue:
    """One demo venue: its location, and the names and places of its agent."""

    location: str
    data_dir: Path

    @property
    def agent(self) -> str:
        """The agent's name at the hub."""
        return f"agent-{self.location}"

    @property
    def agent_dir(self) -> Path:
        """The agent's own data folder: its store and its key."""
        return self.data_dir / self.agent

    @property
    def config(self) -> Path:
        """The agent's settings file."""
        return self.data_dir / f"{self.agent}.toml"

    @property
    def pos_dir(self) -> Path:
        """The venue POS simulator's state."""
        return self.data_dir / f"pos-{self.location}"


def write_hub_config(data_dir: Path, port: int, values: dict[str, str], receiver_url: str) -> Path:
    """Write the hub's settings (``data_dir/demo.toml``): one local connection for the demo
    locations, whose POS settings are in the agents' files."""
    locations = ", ".join(_toml(location) for location in DEMO_LOCATIONS)
    return write_host_config(
        data_dir,
        port,
        values,
        receiver_url,
        f"""[[connections]]
name = "{DEMO_CONNECTION}"
plugin = "demo"
locations = [{locations}]
placement = "local"
""",
    )


def write_agent_config(venue: Venue, hub_url: str, values: dict[str, str], pos_url: str) -> Path:
    """Write ``venue``'s agent settings: its store, its hub, its POS (readable by its owner
    only: the file holds the POS's credentials)."""
    venue.agent_dir.mkdir(parents=True, exist_ok=True)
    text = f"""# Written by `posintegrator demo --local`; rewritten on every run.
[api]
host = "127.0.0.1"
port = 0

[store]
path = {_toml(str(venue.agent_dir / "agent.db"))}

[agent]
hub_url = {_toml(hub_url)}

[[connections]]
name = "{DEMO_CONNECTION}"
plugin = "demo"
locations = [{_toml(venue.location)}]
placement = "local"
menu_sync_seconds = 60
status_source = "webhook"

[connections.settings]
base_url = {_toml(pos_url)}
api_key = {_toml(values["pos_api_key"])}
webhook_secret = {_toml(values["pos_webhook_secret"])}
"""
    descriptor = os.open(venue.config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    return venue.config


async def pair_agent(hub: Host, token: str, venue: Venue) -> bool:
    """Make sure ``venue``'s agent has a key its hub approved: on the first run make the key,
    ask the hub to pair it and approve the code, as ``agent pair`` and ``agents approve`` do.

    :returns: whether it was paired now (False: it was already).
    :raises click.ClickException: the hub knows the agent's name with another key.
    """
    key_path = venue.agent_dir / KEY_FILE
    try:
        key = AgentKey.load(key_path)
    except NotPaired:
        key = AgentKey.generate()
        key.save(key_path)
    if await hub.store.agent_by_key(key.public_key) is not None:
        return False
    request = {
        "public_key": key.public_key,
        "name": venue.agent,
        "version": __version__,
        "locations": [venue.location],
    }
    started = await call_json("POST", hub.url, None, "/v1/link/pairings", request)
    approval = {
        "code": started["code"],
        "locations": [venue.location],
        "name": venue.agent,
        "operator": "posintegrator demo",
    }
    try:
        await call_json("POST", hub.url, token, "/v1/agents/approve", approval)
    except ApiError as exc:
        raise click.ClickException(
            f"cannot pair {venue.agent} with the hub: {exc.detail} (was {key_path} deleted? "
            "start afresh with another --data-dir)"
        ) from None
    return True


class AgentProcess:
    """One venue agent, ``posintegrator agent --config FILE``, as a child process.

    Its output is printed with its name in front; the URL it serves at comes from its
    readiness notification.
    """

    def __init__(self, venue: Venue, notify_dir: Path) -> None:
        self.venue = venue
        self.url = ""
        self._notify_path = notify_dir / f"{venue.location}.sock"
        self._proc: asyncio.subprocess.Process | None = None
        self._output: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        """Start the agent and wait until it serves (its URL is then in :attr:`url`).

        :raises click.ClickException: it exited, or did not say it serves in time.
        """
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(str(self._notify_path))
            notify.setblocking(False)
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "posintegrator.cli",
                "agent",
                "--config",
                str(self.venue.config),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                limit=OUTPUT_LINE_BYTES,
                # Its own session: a Ctrl-C in the terminal reaches the demo alone, which then
                # stops each agent once, before the hub (a second signal to an agent that is
                # already stopping would cut its stop short).
                start_new_session=True,
                env={**os.environ, "NOTIFY_SOCKET": str(self._notify_path)},
            )
            self._output = asyncio.create_task(self._print_output(), name=self.venue.agent)
            self.url = await self._notified_url(notify)

    async def _notified_url(self, notify: socket.socket) -> str:
        assert self._proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_SECONDS
        exited = asyncio.create_task(self._proc.wait())
        received: asyncio.Future[bytes] | None = None
        try:
            while loop.time() < deadline:
                received = asyncio.ensure_future(loop.sock_recv(notify, 4096))
                await asyncio.wait(
                    {received, exited},
                    timeout=deadline - loop.time(),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if not received.done():
                    break
                for line in received.result().decode().splitlines():
                    name, _, value = line.partition("=")
                    if name == URL_FIELD:
                        return value
        finally:
            # Nothing may wait on the socket once it is closed, nor on the process.
            for waiting in (received, exited):
                if waiting is not None:
                    waiting.cancel()
        if self._proc.returncode is not None:
            if self._output is not None:
                await self._output
            raise click.ClickException(
                f"{self.venue.agent} exited with code {self._proc.returncode} while starting "
                "(its lines are above)"
            )
        raise click.ClickException(
            f"{self.venue.agent} did not say it serves within {START_SECONDS:g} s"
        )

    async def _print_output(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        async for raw in self._proc.stdout:
            click.echo(f"{self.venue.agent} | {raw.decode(errors='replace').rstrip()}")
        code = await self._proc.wait()
        if self.url and not self._stopping:
            click.secho(f"{self.venue.agent} exited unexpectedly with code {code}", fg="red")

    async def stop(self) -> None:
        """Ask the agent to stop (SIGTERM: it finishes or parks work under way, as on Ctrl-C),
        and kill it if it does not within :data:`STOP_SECONDS`."""
        if self._proc is None:
            return
        self._stopping = True
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self._proc.wait(), STOP_SECONDS)
            except TimeoutError:
                click.secho(f"{self.venue.agent} did not stop in time: killed", fg="red")
                self._proc.kill()
                await self._proc.wait()
        if self._output is not None:
            await self._output
        if self._proc.returncode == 0:
            click.echo(f"{self.venue.agent} stopped")
        else:
            click.secho(f"{self.venue.agent} ended with code {self._proc.returncode}", fg="red")


async def run_local_demo(
    port: int, data_dir: Path, values: dict[str, str], first_run: bool, stage_seconds: float
) -> None:
    """Start the hub, the venues' POS and their agents; run until SIGINT/SIGTERM; stop all.

    A signal while starting stops what was started so far.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with AsyncExitStack() as stack:
            starting = asyncio.create_task(
                _start(stack, port, data_dir, values, first_run, stage_seconds)
            )
            signalled = asyncio.create_task(stop.wait())
            try:
                await asyncio.wait({starting, signalled}, return_when=asyncio.FIRST_COMPLETED)
                if starting.done():
                    starting.result()  # a failure to start stops what did start, and ends here
                    await signalled
                else:
                    starting.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await starting
            finally:
                signalled.cancel()
            click.echo("stopping...")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _start(
    stack: AsyncExitStack,
    port: int,
    data_dir: Path,
    values: dict[str, str],
    first_run: bool,
    stage_seconds: float,
) -> None:
    """Start everything, each part with its stop pushed on ``stack``; print the banner."""
    try:
        from pos_demo.simulator import SimulatorConfig, start_simulator
    except ImportError:
        raise click.ClickException(
            "the demo POS plugin is not installed: pip install -e plugins/pos_demo"
        ) from None
    venues = [Venue(location, data_dir) for location in DEMO_LOCATIONS]
    receiver = CloudReceiver([values["cloud_webhook_secret"]], on_event=print_event)
    await receiver.start()
    stack.push_async_callback(receiver.stop)
    simulators = {}
    for venue in venues:
        simulator = await start_simulator(
            SimulatorConfig(
                data_dir=venue.pos_dir, api_key=values["pos_api_key"], stage_seconds=stage_seconds
            )
        )
        stack.push_async_callback(simulator.close)
        simulators[venue.location] = simulator
    hub = Host(load_settings(write_hub_config(data_dir, port, values, receiver.url)))
    stack.push_async_callback(hub.stop)
    try:
        await hub.start()
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on port {port} ({exc}); pick another with --port (0: any)"
        ) from None
    # With --port 0 the file now names the port really bound, so the CLI finds the hub.
    write_hub_config(data_dir, hub.port, values, receiver.url)
    for venue in venues:
        if await pair_agent(hub, values["api_token"], venue):
            click.echo(f"{venue.agent} paired with the hub for {venue.location}")
        write_agent_config(venue, hub.url, values, simulators[venue.location].url)
    notify_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="posintegrator-")))
    agents = [AgentProcess(venue, notify_dir) for venue in venues]
    stack.push_async_callback(_stop_all, agents)  # stopped before the hub: pushed after it
    started = await asyncio.gather(*(agent.start() for agent in agents), return_exceptions=True)
    for outcome in started:
        if isinstance(outcome, BaseException):
            raise outcome
    for agent in agents:
        simulators[agent.venue.location].set_webhook(
            f"{agent.url}/pos/{DEMO_CONNECTION}/webhook", values["pos_webhook_secret"]
        )
    missing = await _wait_until_served(hub, venues)
    for problem in missing:
        click.secho(problem, fg="yellow")
    token = values["api_token"]
    print_banner(
        "posintegrator demo --local is running" + ("" if first_run else " (resumed)"),
        [
            ("Dashboard", dashboard_row(hub.url, values)),
            ("Integrator API", f"{hub.url}   (the hub)"),
            ("API token", token),
            ("Cloud receiver", f"{receiver.url}   (its events are printed below)"),
        ]
        + [
            (
                f"Venue {agent.venue.location}",
                f"agent {agent.venue.agent} "
                + ("linked" if hub.links and hub.links.link_of(agent.venue.agent) else "NOT linked")
                + f" at {agent.url}, demo POS {simulators[agent.venue.location].url}",
            )
            for agent in agents
        ],
        [
            (
                f"What the {venue.location} POS holds:",
                pos_look(simulators[venue.location].url, values),
            )
            for venue in venues
        ]
        + [("The venue agents, as the hub sees them:", _agents_look(hub.url, token))],
        hub.url,
        token,
        cancellable=False,
    )


async def _stop_all(agents: list[AgentProcess]) -> None:
    """Stop the agents side by side."""
    await asyncio.gather(*(agent.stop() for agent in agents))


def _agents_look(api: str, token: str) -> str:
    """The command that lists the hub's venue agents and their links."""
    auth = shlex.quote(f"Authorization: Bearer {token}")
    return f"curl -sS -H {auth} {api}/v1/agents; echo"


async def _wait_until_served(hub: Host, venues: list[Venue]) -> list[str]:
    """Wait until every agent is linked and the hub has every venue's menu (orders are
    checked against it); what is still missing after :data:`START_SECONDS`."""

    async def missing() -> list[str]:
        assert hub.links is not None
        menus = await hub.store.menu_locations()
        problems = [
            f"{venue.agent} is not linked yet (its lines above say why)"
            for venue in venues
            if hub.links.link_of(venue.agent) is None
        ]
        return problems + [
            f"the menu of {venue.location} has not reached the hub yet"
            for venue in venues
            if venue.location not in menus
        ]

    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_SECONDS
    while True:
        problems = await missing()
        if not problems or loop.time() >= deadline:
            return problems
        await asyncio.sleep(0.1)
