"""Metrics in the Prometheus text format, served at ``GET /metrics`` (docs/deployer-guide.md,
Monitoring).

Two kinds: counters and histograms the streams update as they work (delivery attempts, submit
and pickup latency, cloud deliveries, menu syncs, rate-limit waits, store writes), and gauges
read from the store and the runtime when scraped (orders by status, outbox backlog, circuit
state, menus, plugin bugs, agent links). Labels are bounded: connections, locations, statuses,
outcomes, agents, never order ids.

Each host has its own registry, so several hosts in one process (tests, the demo) do not mix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from posintegrator.model import utcnow

if TYPE_CHECKING:
    from posintegrator.runtime.host import Host

# The *_created series of every counter and histogram only double the output. (The library
# leaves this function unannotated; typed here so the strict check accepts the call.)
_disable_created: Callable[[], None] = prometheus_client.disable_created_metrics
_disable_created()

#: Latency buckets in seconds, from a fast local POS to a slow cloud one.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
PREFIX = "posintegrator"


class HostMetrics:
    """The metrics of one host."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.attempts = Counter(
            f"{PREFIX}_delivery_attempts",
            "Order submission attempts by how they ended.",
            ["connection", "outcome"],
            registry=self.registry,
        )
        self.retries = Counter(
            f"{PREFIX}_delivery_retries",
            "Submission attempts that will be retried (POS down, rate limited, outcome unknown).",
            ["connection"],
            registry=self.registry,
        )
        self.submit_seconds = Histogram(
            f"{PREFIX}_submit_seconds",
            "How long the POS took to answer a submission.",
            ["connection"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.pickup_seconds = Histogram(
            f"{PREFIX}_pickup_seconds",
            "From an order's acceptance to its first submission attempt.",
            ["connection"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rate_limit_wait = Counter(
            f"{PREFIX}_rate_limit_wait_seconds",
            "Time calls waited for the connection's rate limit.",
            ["connection"],
            registry=self.registry,
        )
        self.menu_sync_seconds = Histogram(
            f"{PREFIX}_menu_sync_seconds",
            "Menu syncs: fetch, check and publish of one location.",
            ["connection", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.cloud_seconds = Histogram(
            f"{PREFIX}_cloud_delivery_seconds",
            "Webhook deliveries to the cloud, by result.",
            ["result"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.store_write_seconds = Histogram(
            f"{PREFIX}_store_write_seconds",
            "One group commit of the store (all writes waiting at that moment).",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._snapshot: list[Metric] = []
        self.registry.register(_Snapshot(self))

    def connection(self, name: str) -> ConnectionMetrics:
        """The metrics one connection updates."""
        return ConnectionMetrics(self, name)

    async def render(self, host: Host) -> bytes:
        """The text exposition of every metric, gauges read now."""
        self._snapshot = await _gauges(host)
        return generate_latest(self.registry)


@dataclass(frozen=True)
class ConnectionMetrics:
    """The metrics of one connection, with its label filled in."""

    metrics: HostMetrics
    name: str

    def attempt(self, outcome: str) -> None:
        """A submission attempt ended with ``outcome``."""
        self.metrics.attempts.labels(self.name, outcome).inc()
        if outcome in ("retry", "unknown"):
            self.metrics.retries.labels(self.name).inc()

    def submitted(self, seconds: float) -> None:
        """The POS answered a submission after ``seconds``."""
        self.metrics.submit_seconds.labels(self.name).observe(seconds)

    def picked_up(self, seconds: float) -> None:
        """An order's first attempt started ``seconds`` after it was accepted."""
        self.metrics.pickup_seconds.labels(self.name).observe(seconds)

    def waited_for_rate_limit(self, seconds: float) -> None:
        """A call waited ``seconds`` for the rate limit."""
        self.metrics.rate_limit_wait.labels(self.name).inc(seconds)

    def menu_synced(self, seconds: float, outcome: str) -> None:
        """A menu sync took ``seconds`` and ended with ``outcome``."""
        self.metrics.menu_sync_seconds.labels(self.name, outcome).observe(seconds)


class _Snapshot(Collector):
    """The gauges read at scrape time (see :meth:`HostMetrics.render`)."""

    def __init__(self, metrics: HostMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self._metrics._snapshot


def _gauge(name: str, text: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", text, labels=labels)


async def _upkeep(host: Host) -> list[Metric]:
    """Stuck streams, what retention deleted, and the cloud's recoveries from outages."""
    threshold = timedelta(seconds=host.settings.cloud.stuck_after_seconds)
    health = await host.store.outbox_health(utcnow() - threshold)
    stuck = _gauge(
        "streams_stuck",
        "Streams of events whose oldest waiting event is older than cloud.stuck_after_seconds.",
        [],
    )
    stuck.add_metric([], health.stuck_streams)
    deleted = CounterMetricFamily(
        f"{PREFIX}_retention_deleted_rows",
        "Rows retention deleted, by table.",
        labels=["table"],
    )
    for table, rows in sorted(host.pruner.pruned.items()):
        deleted.add_metric([table], rows)
    found: list[Metric] = [stuck, deleted]
    if not host.is_agent:
        recoveries = CounterMetricFamily(
            f"{PREFIX}_cloud_recoveries",
            "Times the cloud answered again after an outage and every waiting stream resumed.",
        )
        recoveries.add_metric([], host.notifier.recoveries)
        found.append(recoveries)
    return found


async def _gauges(host: Host) -> list[Metric]:
    """Everything the store and the runtime know right now, as gauges."""
    store = host.store
    now = utcnow()
    orders = _gauge(
        "orders", "Orders in the store, by connection and status.", ["connection", "status"]
    )
    for connection, status, count in await store.order_counts():
        orders.add_metric([connection, status], count)
    outbox = _gauge("outbox_pending", "Events waiting for the cloud, by stream kind.", ["kind"])
    oldest = _gauge(
        "outbox_oldest_age_seconds", "Age of the oldest waiting event, by stream kind.", ["kind"]
    )
    for kind, count, first in await store.outbox_backlog():
        outbox.add_metric([kind], count)
        oldest.add_metric([kind], max(0.0, (now - first).total_seconds()))
    circuit = _gauge(
        "circuit_open", "1 while calls to a connection's POS are paused.", ["connection"]
    )
    healthy = _gauge("connection_up", "1 while a connection's POS answers.", ["connection"])
    findings = _gauge(
        "menu_findings", "Findings of each location's last menu check.", ["location", "severity"]
    )
    synced = _gauge(
        "menu_last_success_timestamp_seconds",
        "When each location's menu last synced successfully (Unix time).",
        ["location"],
    )
    for jobs in host.connections.values():
        health = jobs.connection.health
        name = jobs.connection.name
        circuit.add_metric([name], 1.0 if health.circuit.value != "closed" else 0.0)
        healthy.add_metric([name], 1.0 if health.state.value == "ok" else 0.0)
        for location, sync in health.menu_syncs.items():
            findings.add_metric([location, "error"], sync.errors)
            findings.add_metric([location, "warning"], sync.warnings)
            if sync.last_ok_at is not None:
                synced.add_metric([location], sync.last_ok_at.timestamp())
    bugs = _gauge(
        "plugin_bugs", "Calls a plugin failed with something other than a POS error.", ["plugin"]
    )
    timeouts = _gauge(
        "plugin_timeouts", "Calls cut off because a plugin did not answer.", ["plugin"]
    )
    for info in host.plugins.plugins():
        plugin = host.plugins.pos(info.name)
        bugs.add_metric([info.name], plugin.bug_count)
        timeouts.add_metric([info.name], plugin.timeouts)
    gauges: list[Metric] = [
        orders,
        outbox,
        oldest,
        circuit,
        healthy,
        findings,
        synced,
        bugs,
        timeouts,
        *await _upkeep(host),
    ]
    if host.links is not None:
        connected = _gauge("agent_connected", "1 while a venue agent's link is up.", ["agent"])
        waiting = _gauge(
            "agent_waiting_messages",
            "Messages not yet acknowledged on an agent's link, by direction.",
            ["agent", "direction"],
        )
        rtt = _gauge("agent_rtt_seconds", "Round trip of an agent's last heartbeat.", ["agent"])
        for agent in await store.agents():
            if agent.status != "approved":
                continue
            live = host.links.link_of(agent.name)
            connected.add_metric([agent.name], 1.0 if live is not None else 0.0)
            waiting.add_metric([agent.name, "to_agent"], await store.link_waiting(agent.name))
            reported = host.links.peer_state(agent.name).get("waiting")
            if isinstance(reported, int):
                waiting.add_metric([agent.name, "from_agent"], reported)
            if live is not None and live.session.stats.rtt_seconds is not None:
                rtt.add_metric([agent.name], live.session.stats.rtt_seconds)
        gauges += [connected, waiting, rtt]
    return gauges
