"""Handlers of the venue agents' routes: pairing, the link itself, and the fleet for operators.

Each is listed, with its models, in api/routes.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiohttp import web
from pydantic import ValidationError

from posintegrator.api.handlers import HOST_KEY, json_response, read_body
from posintegrator.api.problems import FieldError, ProblemError
from posintegrator.api.schemas import AgentConnectionView, AgentList, AgentView, OperatorAction
from posintegrator.link.pairing import (
    Approval,
    PairingPoll,
    PairingRequest,
    TooManyPairings,
    normalise_code,
    pairing_status,
    start_pairing,
)
from posintegrator.store.link import AgentRecord, PairingError

if TYPE_CHECKING:
    from posintegrator.runtime.host import Host


async def link(request: web.Request) -> web.StreamResponse:
    """A venue agent's link (a WebSocket; docs/link.md)."""
    host = request.app[HOST_KEY]
    if host.links is None:
        raise ProblemError(404, "No link here", "this process is a venue agent, not a hub")
    return await host.links.serve(request)


async def start_agent_pairing(request: web.Request) -> web.Response:
    """A venue agent asks to be paired: a code for an operator to approve."""
    host = request.app[HOST_KEY]
    pairing = await read_body(request, PairingRequest, "Invalid pairing request")
    try:
        started = await start_pairing(
            host.store,
            pairing,
            host.settings.link.pairing_seconds,
            await host.store.pairings_waiting(),
        )
    except TooManyPairings:
        raise ProblemError(
            429,
            "Too many pairings waiting",
            "too many pairing requests wait for an operator; try again later",
            headers={"Retry-After": "60"},
        ) from None
    return json_response(started, status=201)


async def poll_agent_pairing(request: web.Request) -> web.Response:
    """A venue agent asks whether its code was approved."""
    host = request.app[HOST_KEY]
    poll = await read_body(request, PairingPoll, "Invalid poll")
    status = await pairing_status(host.store, poll.poll_token)
    if status is None:
        raise ProblemError(404, "Unknown pairing", "no pairing request has this token; pair again")
    return json_response(status)


async def list_agents(request: web.Request) -> web.Response:
    """The venue agents and their links."""
    host = request.app[HOST_KEY]
    assert host.links is not None
    elsewhere = await host.links.linked_elsewhere()
    return json_response(
        AgentList(
            agents=[await agent_view(host, agent, elsewhere) for agent in await host.store.agents()]
        )
    )


async def approve_agent(request: web.Request) -> web.Response:
    """An operator approves an agent's pairing code for some locations."""
    host = request.app[HOST_KEY]
    approval = await read_body(request, Approval, "Invalid approval")
    for index, location in enumerate(approval.locations):
        jobs = host.connection_for_location(location)
        if jobs is None or jobs.connection.settings.placement == "central":
            raise ProblemError(
                422,
                "Not a venue location",
                f"location {location!r} is not served by a local or hybrid connection here",
                [FieldError(field=f"locations[{index}]", reason="not a local or hybrid location")],
            )
    try:
        agent = await host.store.agent_approve(
            code=normalise_code(approval.code),
            name=approval.name,
            locations=approval.locations,
            approved_by=approval.operator,
        )
    except PairingError as exc:
        status = 404 if "no pairing request" in str(exc) else 409
        raise ProblemError(status, "Cannot approve", str(exc)) from None
    return json_response(await agent_view(host, agent))


async def revoke_agent(request: web.Request) -> web.Response:
    """An operator revokes an agent: its link ends at once and is refused from then on."""
    host = request.app[HOST_KEY]
    await read_body(request, OperatorAction, "Invalid action")
    assert host.links is not None
    try:
        agent = await host.links.revoke(request.match_info["name"])
    except PairingError as exc:
        raise ProblemError(404, "Unknown agent", str(exc)) from None
    return json_response(await agent_view(host, agent))


async def agent_view(
    host: Host, agent: AgentRecord, elsewhere: dict[str, str] | None = None
) -> AgentView:
    """A venue agent as ``GET /v1/agents`` (and the dashboard) show it.

    :param elsewhere: :meth:`~posintegrator.link.hub.LinkHub.linked_elsewhere`, when the caller
        has it already (a list of agents asks once).
    """
    assert host.links is not None
    if elsewhere is None:
        elsewhere = await host.links.linked_elsewhere()
    live = host.links.link_of(agent.name)
    reported = host.links.peer_state(agent.name)
    since = agent.approved_at
    heartbeat = rtt = None
    if live is not None:
        since = datetime.fromtimestamp(live.session.stats.connected_at, UTC)
        if live.session.stats.last_heartbeat_at is not None:
            heartbeat = datetime.fromtimestamp(live.session.stats.last_heartbeat_at, UTC)
        if live.session.stats.rtt_seconds is not None:
            rtt = round(live.session.stats.rtt_seconds * 1000, 2)
    elif agent.name in host.links.offline_since:
        since = host.links.offline_since[agent.name]
    connections = []
    for reported_connection in reported.get("connections", []):
        try:
            connections.append(AgentConnectionView.model_validate(reported_connection))
        except ValidationError:
            continue  # an agent of another release may report more or less: show what fits
    waiting = reported.get("waiting")
    return AgentView(
        name=agent.name,
        status=agent.status,
        version=agent.version,
        locations=list(agent.locations),
        connected=live is not None or agent.name in elsewhere,
        since=since,
        last_heartbeat=heartbeat,
        rtt_ms=rtt,
        waiting_to_agent=await host.store.link_waiting(agent.name),
        waiting_from_agent=waiting if isinstance(waiting, int) else None,
        connections=connections,
    )
