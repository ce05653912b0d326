"""Webhooks: `WebhooksExtension` signs and delivers the room feed's events (docs/webhooks.md).

Events come from the node's event hub (`EventHub.sinks`: each event once,
cluster-wide, on the node where it happened): `room.created` (a room's first
edit; the same id on every node, so it is stored once), `room.updated` (at most
once per room per `--webhook-debounce` window of wall-clock time: nodes that
accepted edits in the same window report it under one id, stored once; with the
state vector), `room.deleted`, `version.created`, `version.restored`, and
the comment events. Each becomes one outbox row per endpoint that wants it
(`ysync.persistence.webhook_sql`), written in the background: the WebSocket
path only appends to a list. Every node runs a delivery worker that claims due
rows with a lease, so one node sends each; a delivery is an HTTP POST signed by
the Standard Webhooks scheme (`webhook-id`, `webhook-timestamp`,
`webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, the
`standardwebhooks` package), retried with exponential backoff on anything but
2xx for up to `--webhook-max-attempts`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import random
import secrets
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import orjson
from prometheus_client import Counter, Gauge
from standardwebhooks.webhooks import Webhook

from ysync.persistence.memory import MemoryStore
from ysync.persistence.webhook_sql import Delivery, Endpoint, SqlWebhooks
from ysync.presence.events import Event
from ysync.rooms.extensions import Background, Extension
from ysync.rooms.room import Origin, Room, Source

if TYPE_CHECKING:
    from ysync.server.app import Node

log = logging.getLogger("ysync.webhooks")

EVENT_TYPES = (
    "room.created",
    "room.updated",
    "room.deleted",
    "version.created",
    "version.restored",
    "thread.created",
    "thread.resolved",
    "thread.reopened",
    "comment.created",
    "comment.edited",
    "comment.deleted",
    "reaction.added",
    "reaction.removed",
    "mention.created",
)
_REFRESH = 2.0  # seconds between reloads of the endpoint list (another node may change it)
_POLL = 0.5  # seconds between outbox checks when nothing woke the worker
_BATCH = 50
_MAX_BACKOFF = 3600.0
_MAX_WAITING = 100_000  # events held in memory while the outbox cannot be written


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def check_secret(secret: str) -> str:
    """`secret` if it is a Standard Webhooks secret (`whsec_` + base64); else ValueError."""
    try:
        Webhook(secret)
    except Exception:
        raise ValueError("a webhook secret is whsec_ followed by base64") from None
    if not secret.startswith("whsec_"):
        raise ValueError("a webhook secret is whsec_ followed by base64")
    return secret


def static_id(url: str) -> str:
    """The id of a `--webhook` endpoint: the same on every node."""
    return "wh_" + hashlib.sha256(url.encode()).hexdigest()[:16]


def backoff(attempts: int) -> float:
    """Seconds before the next attempt after `attempts` failed ones (1, 2, 4, ... s, +-20%)."""
    return min(float(2 ** (attempts - 1)), _MAX_BACKOFF) * random.uniform(0.8, 1.2)


def _message_id(event: Event) -> str:
    """The `webhook-id`. Events several nodes may report share one, so the outbox keeps
    one: a room's creation, and its `room.updated` of one debounce window."""
    if event.type == "room.created":
        key = f"created\x00{event.room}"
    elif event.type == "room.updated" and "window" in event.data:
        key = f"updated\x00{event.room}\x00{event.data['window']}"
    else:
        return "msg_" + secrets.token_urlsafe(18)
    return "msg_" + hashlib.sha256(key.encode()).hexdigest()[:24]


class WebhooksExtension(Extension):
    """Outbox writer, debouncer and delivery worker of this node (see the module doc)."""

    priority = 95  # sees a room's load before SeedOnce (90) applies its first edit

    def __init__(
        self,
        *,
        urls: Sequence[str] = (),
        secret: str = "",
        debounce: float = 5.0,
        max_attempts: int = 8,
        timeout: float = 10.0,
    ) -> None:
        self.urls = list(urls)
        self.secret = secret
        self.debounce = debounce
        self.max_attempts = max_attempts
        self.timeout = timeout
        self._node: Node | None = None
        self._store: SqlWebhooks | None = None
        self._endpoints: dict[str, Endpoint] = {}
        self._loaded_at = 0.0
        self._rows: list[tuple[str, str, str, str, str, float]] = []
        self._fresh: set[str] = set()  # rooms loaded empty: their first edit creates them
        self._updated: dict[str, set[str]] = {}  # room -> users who edited since the last event
        self._wake = asyncio.Event()  # events wait in memory for the outbox writer
        self._work = asyncio.Event()  # rows just reached the outbox: deliver without polling

    # -- hooks ---------------------------------------------------------------------------

    async def on_start(self, node: Any) -> None:
        self._node = node
        self._store = getattr(node.store, "webhooks", None) or MemoryStore().webhooks
        registry = node.metrics.registry
        self.delivered = Counter(
            "ysync_webhook_deliveries_total",
            "Webhook delivery attempts, by result (delivered, retry, failed)",
            ["result"],
            registry=registry,
        )
        self.depth = Gauge(
            "ysync_webhook_queue_depth", "Webhook events waiting for delivery", registry=registry
        )
        self.oldest = Gauge(
            "ysync_webhook_oldest_pending_seconds",
            "Age of the oldest webhook event waiting for delivery",
            registry=registry,
        )
        now = time.time()
        for url in self.urls:
            await self.store.put_endpoint(Endpoint(static_id(url), url, self.secret, "*", now))
        await self.refresh()
        node.events.sinks.append(self.on_event)

    async def on_load_document(self, room: Room) -> None:
        if room.doc.get_state() == b"\x00":
            self._fresh.add(room.name)

    def on_change(self, room: Room, update: bytes, origin: Origin) -> None:
        if origin is Source.BUS:
            return  # the node that accepted the edit reports it
        editors = self._updated.setdefault(room.name, set())
        if not isinstance(origin, Source) and origin.identity.user_id:
            editors.add(origin.identity.user_id)
        if room.name in self._fresh:
            self._fresh.discard(room.name)
            self.node.events.publish(Event("room.created", room.name, {}))

    async def on_unload(self, room: Room) -> None:
        self._fresh.discard(room.name)  # loaded empty, never edited: nothing was created

    async def on_delete(self, room: str) -> None:
        self._updated.pop(room, None)
        self._fresh.discard(room)
        await self.store.delete_room(room)

    def routes(self) -> Sequence[Any]:
        from ysync.server import webhooks_api

        return webhooks_api.routes

    def background(self) -> Sequence[Background]:
        return [
            ("webhook outbox", self.write_outbox),
            ("webhook debounce", self.report_updates),
            ("webhook delivery", self.deliver),
        ]

    # -- what the API calls ------------------------------------------------------------------

    @property
    def node(self) -> Node:
        if self._node is None:
            raise RuntimeError("WebhooksExtension used before the node started")
        return self._node

    @property
    def store(self) -> SqlWebhooks:
        if self._store is None:
            raise RuntimeError("WebhooksExtension used before the node started")
        return self._store

    async def refresh(self) -> None:
        self._endpoints = {e.id: e for e in await self.store.endpoints()}
        self._loaded_at = time.monotonic()

    def on_event(self, event: Event) -> None:
        """An event published on this node: one outbox row per endpoint that wants it."""
        wanting = [e for e in self._endpoints.values() if e.wants(event.type)]
        if not wanting:
            return
        if event.type == "room.created":  # every node that saw the first edit agrees on it
            message_id = (
                "msg_" + hashlib.sha256(b"created\x00" + event.room.encode()).hexdigest()[:24]
            )
        else:
            message_id = "msg_" + secrets.token_urlsafe(18)
        stamp = datetime.fromtimestamp(event.at, UTC).isoformat().replace("+00:00", "Z")
        body = orjson.dumps(
            {"type": event.type, "timestamp": stamp, "data": {"room": event.room, **event.data}}
        ).decode()
        if len(self._rows) >= _MAX_WAITING:  # the store is failing: bounded, oldest dropped
            log.error("webhook outbox unreachable: dropping the oldest waiting events")
            del self._rows[: len(self._rows) // 10]
        for endpoint in wanting:
            self._rows.append((message_id, endpoint.id, event.room, event.type, body, event.at))
        self._wake.set()

    # -- background ----------------------------------------------------------------------------

    async def write_outbox(self) -> None:
        """Forever: move the events gathered in memory into the store's outbox."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            rows, self._rows = self._rows, []
            if not rows:
                continue
            try:
                await self.store.enqueue(rows)
                self._work.set()
            except Exception:
                log.warning("webhook outbox write failed; retrying", exc_info=True)
                self._rows[:0] = rows
                await asyncio.sleep(1.0)
                self._wake.set()

    async def report_updates(self) -> None:
        """Forever: every `--webhook-debounce`, one `room.updated` per room edited meanwhile."""
        while True:
            await asyncio.sleep(self.debounce)
            updated, self._updated = self._updated, {}
            window = int(time.time() // self.debounce)
            for name, editors in updated.items():
                room = self.node.registry.rooms.get(name)
                data: dict[str, Any] = {"users": sorted(editors), "window": window}
                if room is not None:
                    data["state_vector"] = base64.b64encode(room.doc.get_state()).decode()
                self.node.events.publish(Event("room.updated", name, data))

    async def deliver(self) -> None:
        """Forever: claim due deliveries and send them."""
        async with httpx.AsyncClient(timeout=self.timeout) as http:
            while True:
                try:
                    sent = await self._deliver_batch(http)
                except Exception:
                    log.warning("webhook delivery round failed", exc_info=True)
                    sent = 0
                if not sent:
                    # Rows another node wrote (or retries falling due) are found by polling.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._work.wait(), _POLL)
                    self._work.clear()

    async def _deliver_batch(self, http: httpx.AsyncClient) -> int:
        if time.monotonic() - self._loaded_at > _REFRESH:
            await self.refresh()
            depth, oldest = await self.store.backlog()
            self.depth.set(depth)
            self.oldest.set(0 if oldest is None else max(0.0, time.time() - oldest))
        batch = await self.store.claim(time.time(), self.timeout * 2 + 5, _BATCH)
        await asyncio.gather(*(self._send(http, delivery) for delivery in batch))
        return len(batch)

    async def _send(self, http: httpx.AsyncClient, delivery: Delivery) -> None:
        endpoint = self._endpoints.get(delivery.endpoint)
        status: int | None = None
        error: str | None = None
        if endpoint is None:
            error = "endpoint deleted"
        else:
            now = datetime.now(UTC)
            headers = {
                "content-type": "application/json",
                "webhook-id": delivery.id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": Webhook(endpoint.secret).sign(
                    delivery.id, now, delivery.payload
                ),
            }
            try:
                answer = await http.post(endpoint.url, content=delivery.payload, headers=headers)
                status = answer.status_code
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"[:500]
        await self._record(delivery, status, error)

    async def _record(self, delivery: Delivery, status: int | None, error: str | None) -> None:
        now = time.time()
        attempts = delivery.attempts + 1
        if status is not None and 200 <= status < 300:
            state, due, result = "delivered", now, "delivered"
        elif attempts >= self.max_attempts or error == "endpoint deleted":
            state, due, result = "failed", now, "failed"
        else:
            state, due, result = "pending", now + backoff(attempts), "retry"
        self.delivered.labels(result).inc()
        await self.store.finish(
            delivery, state=state, status=status, error=error, due_at=due, now=now
        )
