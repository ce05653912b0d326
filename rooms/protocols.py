"""The boundaries of the room layer: storage, fan-out to other nodes, peers.

Rooms talk to the outside only through these `Protocol`s, so a store adapter
(memory, SQLite, PostgreSQL) or a bus adapter (local, Redis) plugs in without
touching room code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ysync.rooms.vocabulary import EnvelopeKind, Refusal

if TYPE_CHECKING:
    from ysync.rooms.codec import Message
    from ysync.rooms.hooks import Identity


class StoreError(Exception):
    """A store could not do what was asked (driver error, outage, corrupt data).

    Adapters translate their driver's exceptions into this one at the boundary,
    so callers never see sqlite3/asyncpg errors and never mistake an outage for
    "room not found".
    """


@dataclass(frozen=True, slots=True)
class RoomInfo:
    """What `Store.list_rooms` reports about one stored room."""

    name: str
    size_bytes: int  # snapshot plus log, as stored
    updates: int  # log entries after the snapshot
    last_change: float  # Unix time of the latest append or compaction


class Store(Protocol):
    """Durable home of every room's Yjs updates.

    Updates are stored as the binary Yjs v1 updates they are and applied in
    order; applying one twice is harmless (Yjs updates are idempotent), which
    is what makes concurrent writers and retries safe.
    """

    @property
    def durable(self) -> bool:
        """False when everything is lost with the process (memory)."""
        ...

    def describe(self) -> str:
        """One line for logs and the status API; never holds a password."""
        ...

    def health(self) -> str | None:
        """What is wrong with the store right now (None: nothing known)."""
        ...

    async def load(self, room: str) -> list[bytes]:
        """All stored updates of `room`, snapshot first, in per-room order.

        An unknown room gives `[]`. Raise `StoreError` when the store cannot
        answer: never report an outage as an empty room.
        """
        ...

    async def append(self, batch: Sequence[tuple[str, bytes]]) -> None:
        """Durably store `(room, update)` pairs in one transaction (group commit).

        Returns once committed. On failure raise `StoreError` and store nothing
        of the batch, so the caller can retry the whole batch.
        """
        ...

    async def compact(self, room: str) -> None:
        """Merge the room's snapshot and log into one snapshot, atomically."""
        ...

    async def delete(self, room: str) -> None:
        """Remove the room and everything stored of it."""
        ...

    async def list_rooms(self) -> list[RoomInfo]:
        """Every stored room with its size and last-change time."""
        ...

    async def close(self) -> None:
        """Release connections and files; the store is unusable afterwards."""
        ...


class Peer(Protocol):
    """One client in one room, as the room sees it (whatever wire protocol it speaks).

    `send` only enqueues a typed message: it never blocks and never raises
    because of one slow or broken client (the transport closes such a client
    itself). `close` ends the client's presence in the room with a refusal.
    """

    def __hash__(self) -> int:
        """Peers are keys: of a room's peer table, and as owners of awareness states."""
        ...

    @property
    def identity(self) -> Identity: ...

    @property
    def client(self) -> str | None:
        """The client's address ("host:port"), when known."""
        ...

    def send(self, message: Message) -> None: ...

    def close(self, refusal: Refusal) -> None: ...


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message between nodes about one room.

    `seq` counts what `node` published for `room` (updates and awareness);
    a receiver that sees it jump knows it missed something and asks `node`
    for what its state vector lacks. `target` addresses a reply to one node.
    """

    node: str
    seq: int
    room: str
    kind: EnvelopeKind
    payload: bytes
    target: str = ""


EnvelopeHandler = Callable[[Envelope], None]


class Bus(Protocol):
    """Fan-out of a room's changes to the other nodes holding it.

    Delivery is best effort (Redis pub/sub is fire-and-forget): the
    replication layer numbers messages and repairs gaps by state vector.
    """

    node_id: str
    # Called after the bus reconnected (messages may have been lost meanwhile).
    on_reconnect: Callable[[], None]
    reconnects: int  # how many times it lost its connection

    def describe(self) -> str:
        """One line for logs and the status API; never holds a password."""
        ...

    def health(self) -> str | None:
        """What is wrong with the bus right now (None: nothing known)."""
        ...

    async def run(self) -> None:
        """Keep connected for as long as the node runs (returns at once if nothing to do)."""
        ...

    @property
    def alone(self) -> bool:
        """True when no other node can ever be listening (single-node mode):
        replication then skips all its work."""
        ...

    async def subscribe(self, room: str, handler: EnvelopeHandler) -> None: ...

    async def unsubscribe(self, room: str) -> None: ...

    def publish(self, envelope: Envelope) -> None:
        """Send to the other nodes holding the room; never blocks."""
        ...

    async def peers_holding(self, room: str) -> int:
        """How many other nodes are subscribed to `room` right now."""
        ...

    async def alive(self, nodes: set[str]) -> set[str]:
        """Which of `nodes` still have a live heartbeat."""
        ...

    async def close(self) -> None: ...


class UpdateLog(Protocol):
    """Group-committing writer in front of a `Store` (see ysync.persistence)."""

    def append(self, room: str, update: bytes) -> None:
        """Queue an update; it is committed within the flush window. Never blocks."""
        ...

    async def flush(self) -> None:
        """Return once everything queued so far is committed."""
        ...

    async def settled(self) -> None:
        """Return once everything queued before the call is committed (even if
        more keeps coming, unlike `flush`)."""
        ...

    def refusal(self) -> Refusal | None:
        """Why client edits must be refused right now (e.g. the backlog of a store
        outage is full), or None."""
        ...
