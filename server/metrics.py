"""Prometheus metrics, served at `/metrics`.

The hot path only bumps plain integers (`TransportStats`, and the counters the
room layer already keeps); a refresher task folds them into prometheus-client
metrics once a second, so a broadcast to 200 clients costs no metric calls.

With `--workers N` the CLI points `PROMETHEUS_MULTIPROC_DIR` at a shared
directory before the workers start; every worker writes its samples there and
`/metrics` on any worker answers for all of them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ysync.rooms.extensions import Background, Extension
from ysync.rooms.vocabulary import FrameKind
from ysync.server.locks import LocksExtension
from ysync.server.openapi import operation

if TYPE_CHECKING:
    from ysync.server.app import Node


def _no_observer(seconds: float) -> None:
    pass


@dataclass(slots=True)
class TransportStats:
    """Plain counters the transport bumps per frame (cheap on the hot path);
    `received[kind]` is indexed by `FrameKind`."""

    received: list[int] = field(default_factory=lambda: [0] * len(FrameKind))
    received_bytes: list[int] = field(default_factory=lambda: [0] * len(FrameKind))
    sent_frames: int = 0
    sent_bytes: int = 0
    closes: dict[int, int] = field(default_factory=dict)  # close code we sent -> count
    # Time to decode, apply and fan out one client message (set by the metrics).
    observe_handling: Callable[[float], None] = _no_observer


def _multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Metrics:
    """Every ysync metric. One instance per app; `render()` gives the exposition text."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = self.gauge("ysync_connections", "Open WebSocket connections")
        self.rooms = self.gauge("ysync_rooms_loaded", "Rooms loaded on this node")
        self.idle_rooms = self.gauge(
            "ysync_rooms_idle", "Loaded rooms with no connection (awaiting unload)"
        )
        self.awareness = self.gauge("ysync_awareness_states", "Present awareness states")
        self.pending = self.gauge(
            "ysync_store_pending_bytes", "Accepted update bytes not yet committed"
        )
        self.rooms_pending = self.gauge(
            "ysync_rooms_pending_updates",
            "Updates loaded rooms hold but cannot integrate yet (a dependency is missing)",
        )
        self.store_repairs = Counter(
            "ysync_store_repairs_total",
            "Times the store lacked part of a loaded room's document and it was written",
            registry=r,
        )
        self.redis_up = self.gauge("ysync_redis_connected", "1 while the Redis bus is connected")
        self.send_buffered = self.gauge(
            "ysync_send_buffered_bytes",
            "Bytes held for clients over 64 KiB behind, against --send-buffer-node-bytes",
        )
        self.received = Counter(
            "ysync_messages_received_total", "Messages received from clients", ["type"], registry=r
        )
        self.received_bytes = Counter(
            "ysync_received_bytes_total", "Bytes received from clients", ["type"], registry=r
        )
        self.sent = Counter("ysync_messages_sent_total", "Frames sent to clients", registry=r)
        self.sent_bytes = Counter("ysync_sent_bytes_total", "Bytes sent to clients", registry=r)
        self.closes = Counter(
            "ysync_server_closes_total",
            "Connections closed by the server, by close code",
            ["code"],
            registry=r,
        )
        self.handling = Histogram(
            "ysync_message_handling_seconds",
            "Time to decode, apply and fan out one client message",
            buckets=(
                1e-5,
                2.5e-5,
                5e-5,
                1e-4,
                2.5e-4,
                5e-4,
                1e-3,
                2.5e-3,
                5e-3,
                1e-2,
                5e-2,
                0.1,
                1.0,
            ),
            registry=r,
        )
        self.flush = Histogram(
            "ysync_store_flush_seconds",
            "Duration of one group commit",
            buckets=(1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 5.0),
            registry=r,
        )
        self.flush_batch = Histogram(
            "ysync_store_flush_batch_updates",
            "Updates per group commit",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000),
            registry=r,
        )
        self.flush_failures = Counter(
            "ysync_store_flush_failures_total", "Failed group commits", registry=r
        )
        self.feed_subscribers = self.gauge(
            "ysync_feed_subscribers", "Event feed (SSE, SDK) subscribers on this node"
        )
        self.feed_coalesced = Counter(
            "ysync_feed_events_coalesced_total",
            "Feed events replaced by a newer one before a subscriber got them",
            registry=r,
        )
        self.feed_cut_off = Counter(
            "ysync_feed_subscribers_cut_off_total",
            "Feed subscribers cut off for falling behind",
            registry=r,
        )
        self.locks_held = self.gauge("ysync_locks_held", "Element locks shown in this node's rooms")
        self.lock_conflicts = Counter(
            "ysync_lock_conflicts_total", "Lock requests refused: held by someone else", registry=r
        )
        self.presence_rooms = self.gauge(
            "ysync_presence_rooms",
            "Loaded rooms by how many awareness states they hold",
            ["states"],
        )
        self.awareness_dropped = Counter(
            "ysync_awareness_dropped_total",
            "Awareness entries dropped: foreign (another connection's client id: spoofed), "
            "over_cap, too_large, not_object, truncated (past the per-message bound)",
            ["reason"],
            registry=r,
        )
        self.redis_reconnects = Counter(
            "ysync_redis_reconnects_total", "Redis reconnections", registry=r
        )
        self.resyncs = Counter(
            "ysync_resyncs_total",
            "State-vector syncs requested from other nodes (gaps, reconnects)",
            registry=r,
        )
        self.damaged_loads = Counter(
            "ysync_rooms_damaged_total",
            "Room loads refused because a stored update was refused (run ysync repair)",
            registry=r,
        )
        self.gc_pauses = Histogram(
            "ysync_gc_pause_seconds",
            "Garbage-collector pauses (every client waits during one)",
            ["generation"],
            buckets=(1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0),
            registry=r,
        )
        self._folded: dict[str, int] = {}

    def gauge(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
        """A gauge that, with --workers N, sums the live workers' values."""
        return Gauge(
            name, documentation, labels, registry=self.registry, multiprocess_mode="livesum"
        )

    def observe_gc(self, generation: int, seconds: float) -> None:
        self.gc_pauses.labels(str(generation)).observe(seconds)

    def observe_commit(self, seconds: float, updates: int, ok: bool) -> None:
        if ok:
            self.flush.observe(seconds)
            self.flush_batch.observe(updates)
        else:
            self.flush_failures.inc()

    def _fold(self, key: str, total: int, counter: Counter) -> None:
        """Add what `total` grew by since the last refresh."""
        delta = total - self._folded.get(key, 0)
        if delta > 0:
            counter.inc(delta)
        self._folded[key] = total

    def refresh(self, node: Node) -> None:
        """Copy the node's state and plain counters into the metrics."""
        rooms = node.registry.rooms.values()
        self.connections.set(node.endpoint.connections)
        self.rooms.set(len(rooms))
        self.idle_rooms.set(sum(1 for room in rooms if room.is_empty))
        self.awareness.set(sum(len(room.awareness) for room in rooms))
        self.pending.set(node.update_log.pending_bytes)
        self.rooms_pending.set(sum(len(room.pending) for room in rooms))
        self._fold("store_repairs", node.registry.store_repairs, self.store_repairs)
        self.redis_up.set(1 if node.bus.health() is None else 0)
        self.send_buffered.set(node.endpoint.broadcaster.budget.used)
        self._fold("reconnects", node.bus.reconnects, self.redis_reconnects)
        self._fold("resyncs", node.replicator.resyncs, self.resyncs)
        self.feed_subscribers.set(node.events.subscribers())
        self._refresh_presence(node, rooms)
        self._fold("feed:coalesced", node.events.coalesced, self.feed_coalesced)
        self._fold("feed:cut", node.events.cut_off, self.feed_cut_off)
        dropped = node.registry.config.awareness_stats
        for reason in ("foreign", "over_cap", "too_large", "not_object", "truncated"):
            total = getattr(dropped, reason)
            self._fold(f"aw:{reason}", total, self.awareness_dropped.labels(reason))
        self._fold("damaged", node.registry.damaged_loads, self.damaged_loads)
        stats = node.endpoint.stats
        for kind in FrameKind:
            name = kind.label
            self._fold(f"in:{name}", stats.received[kind], self.received.labels(name))
            self._fold(f"inb:{name}", stats.received_bytes[kind], self.received_bytes.labels(name))
        self._fold("out", stats.sent_frames, self.sent)
        self._fold("outb", stats.sent_bytes, self.sent_bytes)
        for code, count in stats.closes.items():
            self._fold(f"close:{code}", count, self.closes.labels(str(code)))

    def _refresh_presence(self, node: Node, rooms: Any) -> None:
        sizes = {"0": 0, "1": 0, "2-5": 0, "6-20": 0, "21+": 0}
        for room in rooms:
            count = len(room.awareness)
            bucket = next(
                label
                for label, top in (("0", 0), ("1", 1), ("2-5", 5), ("6-20", 20), ("21+", 1 << 62))
                if count <= top
            )
            sizes[bucket] += 1
        for label, number in sizes.items():
            self.presence_rooms.labels(label).set(number)
        for extension in node.extensions.all:
            if isinstance(extension, LocksExtension):
                self.locks_held.set(extension.shown_locks)
                self._fold("locks:conflicts", extension.conflicts, self.lock_conflicts)

    async def run(self, node: Node, interval: float = 1.0) -> None:
        """Forever: refresh from `node` every `interval` seconds."""
        while True:
            self.refresh(node)
            await asyncio.sleep(interval)

    def render(self) -> tuple[bytes, str]:
        """The exposition text (all workers' when multiprocess) and its content type."""
        if _multiprocess():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsExtension(Extension):
    """Serves `/metrics` and keeps the metrics fresh from the node's counters."""

    priority = 0

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._node: Node | None = None

    async def on_start(self, node: Node) -> None:
        self._node = node
        node.endpoint.stats.observe_handling = self.metrics.handling.observe

    def routes(self) -> Sequence[Any]:
        return (Route("/metrics", self.serve),)

    def background(self) -> Sequence[Background]:
        return (("metrics", self._refresh),)

    @operation(
        "Prometheus metrics of this node (all workers' with --workers N)",
        tag="health",
        responses={200: {"description": "The exposition", "content": {"text/plain": {}}}},
        errors=(),
    )
    async def serve(self, request: Request) -> Response:
        """Prometheus exposition of this node (all workers' with --workers N)."""
        body, content_type = self.metrics.render()
        return Response(body, media_type=content_type)

    async def _refresh(self) -> None:
        if self._node is not None:
            await self.metrics.run(self._node)
