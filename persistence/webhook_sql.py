"""Webhook endpoints and the durable outbox, in SQL (SQLite, PostgreSQL, the memory store).

Every event for every endpoint is one outbox row, inserted once (its id is the
Standard Webhooks `webhook-id`, so an event that several nodes report under the
same id is stored once). A delivery worker on each node claims due rows with a
lease (PostgreSQL: `SELECT ... FOR UPDATE SKIP LOCKED`; SQLite: its write
transactions run one at a time), so one node at a time sends each row; a node
that dies mid-delivery leaves a lease that expires, and another node retries.
The rows double as the delivery log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ysync.persistence.comment_sql import Operation, Query, Transact

MIGRATION: tuple[str, ...] = (
    """CREATE TABLE ysync_webhooks (
        id TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        secret TEXT NOT NULL,
        events TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL
    )""",
    """CREATE TABLE ysync_webhook_outbox (
        id TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        room TEXT NOT NULL,
        type TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        due_at DOUBLE PRECISION NOT NULL,
        attempts INTEGER NOT NULL,
        state TEXT NOT NULL,
        lease_until DOUBLE PRECISION,
        last_status INTEGER,
        last_error TEXT,
        done_at DOUBLE PRECISION,
        PRIMARY KEY (id, endpoint)
    )""",
    "CREATE INDEX ysync_webhook_outbox_due ON ysync_webhook_outbox (state, due_at)",
    "CREATE INDEX ysync_webhook_outbox_endpoint ON ysync_webhook_outbox (endpoint, created_at)",
    "CREATE INDEX ysync_webhook_outbox_room ON ysync_webhook_outbox (room)",
)
ROOM_TABLES = ("ysync_webhook_outbox",)


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    url: str
    secret: str  # whsec_...
    events: str  # "*" or event types separated by commas
    created_at: float

    def wants(self, event_type: str) -> bool:
        return self.events == "*" or event_type in self.events.split(",")

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "events": self.events.split(","),
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    endpoint: str
    room: str
    type: str
    payload: str  # the JSON body, exactly as signed and sent
    created_at: float
    attempts: int
    state: str  # pending, delivered, failed
    last_status: int | None
    last_error: str | None
    done_at: float | None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "room": self.room,
            "type": self.type,
            "created_at": self.created_at,
            "attempts": self.attempts,
            "state": self.state,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "done_at": self.done_at,
        }


_ENDPOINT = "id, url, secret, events, created_at"
_DELIVERY = (
    "id, endpoint, room, type, payload, created_at, attempts, state, last_status, last_error, "
    "done_at"
)


def put_endpoint(endpoint: Endpoint) -> Operation[None]:
    yield Query("DELETE FROM ysync_webhooks WHERE id = ?", (endpoint.id,))
    yield Query(
        f"INSERT INTO ysync_webhooks ({_ENDPOINT}) VALUES (?, ?, ?, ?, ?)",
        (endpoint.id, endpoint.url, endpoint.secret, endpoint.events, endpoint.created_at),
    )


def endpoints() -> Operation[list[Endpoint]]:
    rows = yield Query(f"SELECT {_ENDPOINT} FROM ysync_webhooks ORDER BY created_at, id")
    return [Endpoint(r[0], r[1], r[2], r[3], float(r[4])) for r in rows]


def delete_endpoint(endpoint_id: str) -> Operation[bool]:
    found = yield Query("SELECT id FROM ysync_webhooks WHERE id = ?", (endpoint_id,))
    yield Query("DELETE FROM ysync_webhooks WHERE id = ?", (endpoint_id,))
    yield Query("DELETE FROM ysync_webhook_outbox WHERE endpoint = ?", (endpoint_id,))
    return bool(found)


def enqueue(rows: Sequence[tuple[str, str, str, str, str, float]]) -> Operation[None]:
    """(id, endpoint, room, type, payload, created_at) rows; an id already there is kept."""
    for row in rows:
        yield Query(
            "INSERT INTO ysync_webhook_outbox (id, endpoint, room, type, payload, created_at, "
            "due_at, attempts, state) VALUES (?, ?, ?, ?, ?, ?, ?, 0, 'pending') "
            "ON CONFLICT (id, endpoint) DO NOTHING",
            (*row, row[5]),
        )


def claim(now: float, lease: float, limit: int) -> Operation[list[Delivery]]:
    """Lease up to `limit` due rows to the caller until `now + lease`."""
    rows = yield Query(
        f"SELECT {_DELIVERY} FROM ysync_webhook_outbox WHERE state = 'pending' AND due_at <= ? "
        "AND (lease_until IS NULL OR lease_until < ?) ORDER BY due_at LIMIT ?",
        (now, now, limit),
        lock=True,
        skip_locked=True,
    )
    if rows:
        yield Query(
            "UPDATE ysync_webhook_outbox SET lease_until = ? WHERE id = ? AND endpoint = ?",
            [(now + lease, row[0], row[1]) for row in rows],
            many=True,
        )
    return [_delivery(row) for row in rows]


def _delivery(row: Sequence[Any]) -> Delivery:
    return Delivery(
        row[0], row[1], row[2], row[3], row[4], float(row[5]), int(row[6]), row[7], row[8],
        row[9], None if row[10] is None else float(row[10]),
    )  # fmt: skip


def finish(
    delivery: Delivery, *, state: str, status: int | None, error: str | None, due_at: float,
    now: float,
) -> Operation[None]:  # fmt: skip
    """Record one attempt: delivered, failed for good, or pending again from `due_at`."""
    yield Query(
        "UPDATE ysync_webhook_outbox SET attempts = attempts + 1, state = ?, last_status = ?, "
        "last_error = ?, due_at = ?, lease_until = NULL, done_at = ? WHERE id = ? AND endpoint = ?",
        (
            state,
            status,
            error,
            due_at,
            None if state == "pending" else now,
            delivery.id,
            delivery.endpoint,
        ),
    )


def deliveries(endpoint_id: str, limit: int) -> Operation[list[Delivery]]:
    rows = yield Query(
        f"SELECT {_DELIVERY} FROM ysync_webhook_outbox WHERE endpoint = ? "
        "ORDER BY created_at DESC, id DESC LIMIT ?",
        (endpoint_id, limit),
    )
    return [_delivery(row) for row in rows]


def backlog() -> Operation[tuple[int, float | None]]:
    """(pending rows, creation time of the oldest)."""
    rows = yield Query(
        "SELECT count(*), min(created_at) FROM ysync_webhook_outbox WHERE state = 'pending'"
    )
    count, oldest = rows[0]
    return int(count), None if oldest is None else float(oldest)


def delete_room(room: str) -> Operation[None]:
    yield Query("DELETE FROM ysync_webhook_outbox WHERE room = ? AND state = 'pending'", (room,))


class SqlWebhooks:
    """Webhook endpoints and outbox of one store (see the module doc)."""

    def __init__(self, transact: Transact) -> None:
        self._transact = transact

    async def _run(self, operation: Operation[Any], write: bool) -> Any:
        return await self._transact(operation, write)

    async def put_endpoint(self, endpoint: Endpoint) -> None:
        await self._run(put_endpoint(endpoint), True)

    async def endpoints(self) -> list[Endpoint]:
        found: list[Endpoint] = await self._run(endpoints(), False)
        return found

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        return bool(await self._run(delete_endpoint(endpoint_id), True))

    async def enqueue(self, rows: Sequence[tuple[str, str, str, str, str, float]]) -> None:
        await self._run(enqueue(rows), True)

    async def claim(self, now: float, lease: float, limit: int) -> list[Delivery]:
        found: list[Delivery] = await self._run(claim(now, lease, limit), True)
        return found

    async def finish(
        self, delivery: Delivery, *, state: str, status: int | None, error: str | None,
        due_at: float, now: float,
    ) -> None:  # fmt: skip
        await self._run(
            finish(delivery, state=state, status=status, error=error, due_at=due_at, now=now),
            True,
        )

    async def deliveries(self, endpoint_id: str, limit: int) -> list[Delivery]:
        found: list[Delivery] = await self._run(deliveries(endpoint_id, limit), False)
        return found

    async def backlog(self) -> tuple[int, float | None]:
        found: tuple[int, float | None] = await self._run(backlog(), False)
        return found

    async def delete_room(self, room: str) -> None:
        await self._run(delete_room(room), True)
