"""A room: one shared document, the awareness states of its clients, its peers.

Sans-I/O: typed messages (`ysync.rooms.codec.Message`) come in through
`receive` and go out through `Peer.send` (which only enqueues); the room never
sees bytes or knows which wire protocol a peer speaks. The transport calls
`join`, then `receive` for every message, then `leave`.

Every document change — from a client, another node, the store or the host
app editing `room.doc` directly — goes through one observer, which broadcasts
it to the room's synced peers (one message object for all of them, so each
wire codec encodes it once) and hands it to the listeners with its origin, so
the registry knows whether to store it and whether to publish it to other
nodes (no echo loops).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from pycrdt import Doc, TransactionEvent, get_state, get_update

from ysync.rooms import codec
from ysync.rooms.awareness import AwarenessPolicy, AwarenessState, AwarenessStats, Owner
from ysync.rooms.awareness_identity import identity_fields, stamper
from ysync.rooms.lib0 import Reader
from ysync.rooms.pending import PendingUpdates, integrated
from ysync.rooms.protocols import Peer
from ysync.rooms.structure import PendingOverflow, Scan, StructureIndex
from ysync.rooms.vocabulary import CloseCode, Refusal

log = logging.getLogger("ysync.room")

READ_ONLY = Refusal(CloseCode.FORBIDDEN, "read-only: document edits not allowed")


class Source(Enum):
    """Where a change came from, when not from a connected peer."""

    STORE = "store"  # loaded from storage: neither stored again nor published
    BUS = "bus"  # from another node: it already stored and published it
    SERVER = "server"  # the host app or an API call: stored and published


Origin = Peer | Source


def origin_label(origin: Origin) -> str:
    """What hooks see as an update's origin: client, bus, server or store."""
    return origin.value if isinstance(origin, Source) else "client"


UpdateListener = Callable[["Room", bytes, Origin], None]
# Called with an update the document could not fully integrate (see rooms/pending.py).
PendingListener = Callable[["Room", bytes, Origin], None]
AwarenessListener = Callable[["Room", list[codec.AwarenessEntry], Origin], None]


@dataclass(frozen=True, slots=True)
class RoomConfig:
    """How every room on a node behaves; the registry gives it to each room it loads."""

    awareness_timeout: float = 30.0  # seconds before an unrenewed awareness state is removed
    max_document_bytes: int = 0  # largest encoded document client edits may grow it to; 0: none
    awareness_clients_per_connection: int = 4  # client ids one connection may introduce; 0: any
    awareness_state_bytes: int = 8192  # largest awareness state accepted; 0: any
    # Merge each connection's verified identity into its awareness states
    # (rooms.awareness_identity). False relays them as sent: only for a host that
    # stamps its own, or tests of the relay itself.
    stamp_identity: bool = True
    # Shared by every room of a node: what the awareness bounds dropped (metrics).
    awareness_stats: AwarenessStats = field(default_factory=AwarenessStats)
    # Far below the ~30,000 levels that overflow yrs' native stack (rooms.structure).
    max_nesting_depth: int = 256
    max_gap_structs: int = 10_000  # structs waiting for a missing update; 0: no bound
    max_gap_bytes: int = 1024 * 1024  # their bytes; 0: no bound
    max_document_items: int = 0  # separate items client edits may grow it to; 0: none


class AwarenessOutbox(Protocol):
    """Takes a room's awareness broadcasts and sends them later through
    `Room.send_awareness` (`ysync.server.awareness_batches` batches them per tick)."""

    def add(
        self, room: Room, entries: list[codec.AwarenessEntry], exclude: Peer | None
    ) -> None: ...


@dataclass(slots=True)
class PeerState:
    read_only: bool
    policy: AwarenessPolicy
    synced: bool = False  # True once we answered its SyncStep1 with the full document
    warned: bool = False  # a foreign awareness entry of it was logged (once per connection)


class Room:
    """Authoritative document and awareness of one room on this node."""

    def __init__(
        self,
        name: str,
        config: RoomConfig | None = None,
        *,
        write_refusal: Callable[[], Refusal | None] = lambda: None,
    ) -> None:
        self.name = name
        self.config = config = config or RoomConfig()
        self.doc: Doc[Any] = Doc()
        self.awareness = AwarenessState(config.awareness_timeout, stats=config.awareness_stats)
        self.peers: dict[Peer, PeerState] = {}
        self.update_listeners: list[UpdateListener] = []
        self.awareness_listeners: list[AwarenessListener] = []
        self.pending = PendingUpdates()  # received, not integrated: a dependency is missing
        self.pending_listeners: list[PendingListener] = []
        self._asked_peers_at = -1e9  # when we last asked our peers for what we lack
        self._last_delta: bytes | None = None  # what the last apply_update integrated
        # Why document edits must be refused right now (e.g. the store is out
        # and its backlog is full), or None.
        self.write_refusal = write_refusal
        # Document size without encoding the document per edit: the size measured
        # last time plus every delta since (an overestimate: deltas merge smaller).
        self._measured_bytes = 0
        self._added_bytes = 0
        self.awareness_outbox: AwarenessOutbox | None = None  # None: broadcast at once
        self._origin: Origin = Source.SERVER
        self._closed = False
        # What the document's structure is and what yrs keeps pending: every
        # update is checked against it before yrs decodes it.
        self.structure = StructureIndex(
            config.max_nesting_depth,
            max_pending=config.max_gap_structs,
            max_pending_bytes=config.max_gap_bytes,
        )
        self._scanned: tuple[bytes, Scan] | None = None  # the update being applied
        self._subscription = self.doc.observe(self._on_change)

    # -- connections ------------------------------------------------------------

    def join(self, peer: Peer, *, read_only: bool = False) -> None:
        """Register a peer and send it our SyncStep1 and every present awareness state.

        Our SyncStep1 makes the client upload what we lack (its offline edits);
        it only uploads them in its reply to it.
        """
        fields = identity_fields(peer.identity)
        policy = AwarenessPolicy(
            max_clients=self.config.awareness_clients_per_connection,
            max_state_bytes=self.config.awareness_state_bytes,
            user=None if fields.get("anonymous") else peer.identity.user_id,
            stamp=stamper(fields) if self.config.stamp_identity else None,
        )
        self.peers[peer] = PeerState(read_only=read_only, policy=policy)
        peer.send(codec.SyncStep1(self.doc.get_state()))
        states = self.awareness.states()
        if states:
            peer.send(codec.AwarenessUpdate(tuple(states)))

    def leave(self, peer: Peer) -> None:
        """Forget a peer and broadcast the removal of the awareness states it owned."""
        if self.peers.pop(peer, None) is None:
            return
        self.drop_awareness(peer, peer)

    def drop_awareness(self, owner: Owner, origin: Origin) -> None:
        """Remove every awareness state `owner` (a peer, or another node)
        introduced, and broadcast the removal so cursors vanish at once."""
        removed = self.awareness.remove_owned_by(owner)
        if removed:
            self._broadcast_awareness(removed, exclude=None)
            self._notify_awareness(removed, origin)

    @property
    def is_empty(self) -> bool:
        return not self.peers

    # -- frames from a peer ------------------------------------------------------

    def receive(
        self, peer: Peer, message: codec.Message, now: float | None = None
    ) -> Refusal | None:
        """Handle one message from `peer`.

        Returns the refusal of an edit the peer may not make (it was told, and
        stays connected: the transport may audit it), else None. A refusal that
        ends the connection is sent to `peer.close` instead. Raises
        `codec.ProtocolError` on bad input, having changed nothing: the
        transport closes that connection."""
        state = self.peers[peer]
        if isinstance(message, codec.SyncUpdate | codec.SyncStep2):
            if message.update == codec.EMPTY_UPDATE:
                return None
            if state.read_only:
                peer.send(codec.permission_denied(READ_ONLY.reason))
                return READ_ONLY
            refusal = self.edit_refusal(len(message.update))
            if refusal is not None:
                # The client keeps the edit (and re-sends it in the sync handshake
                # when it reconnects): refused, never dropped.
                peer.close(refusal)
                return None
            try:
                self.apply_update(message.update, peer)
            except PendingOverflow as exc:
                # Honest clients hit this only while this node lags behind another.
                peer.close(Refusal(CloseCode.OVER_CAPACITY, f"{exc.reason}, retry later"))
        elif isinstance(message, codec.SyncStep1):
            try:
                missing = self.doc.get_update(message.state_vector)
            except ValueError as exc:
                raise codec.ProtocolError("state vector rejected by the CRDT") from exc
            peer.send(codec.SyncStep2(missing))
            state.synced = True
        elif isinstance(message, codec.AwarenessUpdate):
            if message.truncated:
                self.config.awareness_stats.truncated += message.truncated
            self.apply_awareness(message.entries, peer, time.monotonic() if now is None else now)
        elif isinstance(message, codec.QueryAwareness):
            peer.send(codec.AwarenessUpdate(tuple(self.awareness.states())))
        # codec.Auth from a client carries nothing the room acts on.
        return None

    def edit_refusal(self, update_size: int) -> Refusal | None:
        """Why an edit of `update_size` bytes must be refused now (size limit, store backlog), or None."""
        items = self.config.max_document_items
        if items and self.structure.items >= items:
            # Memory grows with items, not bytes: many tiny separate ones cost most.
            return Refusal(
                CloseCode.TOO_LARGE,
                f"document too large: {items} separate items (max_document_items)",
            )
        limit = self.config.max_document_bytes
        if limit and self._outgrows_limit(update_size):
            # Its edits stay in the client; it must not reconnect and retry (44xx).
            return Refusal(
                CloseCode.TOO_LARGE,
                f"document too large: over the {limit}-byte limit (max_document_bytes)",
            )
        return self.write_refusal()

    # -- changes from any origin ---------------------------------------------------

    def load(self, updates: list[bytes]) -> None:
        """Apply stored updates (origin STORE: not stored again, not published).
        Raises `codec.ProtocolError` at the first one refused (the rest is not applied)."""
        for update in updates:
            self.apply_update(update, Source.STORE)

    def apply_update(self, update: bytes, origin: Origin) -> None:
        """Apply a Yjs update. Raises `codec.ProtocolError` if its structure is
        refused (too deep, too much pending: before yrs sees a byte) or if the
        CRDT rejects it."""
        scan = self.structure.scan(update)
        try:
            # Decode without touching the document first: a malformed update
            # must never half-apply to the room's doc.
            get_state(update)
        except ValueError as exc:
            raise codec.ProtocolError("update could not be decoded") from exc
        self._scanned = (update, scan)
        state_before = self.doc.get_state()
        self._origin = origin
        self._last_delta = None
        try:
            self.doc.apply_update(update)
        except Exception as exc:
            self._propagate_partial(state_before)
            raise codec.ProtocolError(f"update rejected by the CRDT: {exc}") from exc
        except BaseException as exc:
            # pyo3 turns a Rust panic into PanicException, a BaseException.
            if type(exc).__name__ != "PanicException":
                raise
            self._propagate_partial(state_before)
            raise codec.ProtocolError("update rejected by the CRDT") from None
        finally:
            self._origin = Source.SERVER
            self._scanned = None
            self.structure.keep_pending(scan)
        self._track_pending(update, state_before, origin)

    def _track_pending(self, update: bytes, state_before: bytes, origin: Origin) -> None:
        """Remember `update` if the document could not integrate all of it, and
        forget the pending updates it completed."""
        if update == codec.EMPTY_UPDATE:
            return
        # The common case, cheaply: the document integrated the update as it came
        # (the full check below is about half the cost of applying an edit).
        as_sent = self._last_delta == update
        if as_sent and not self.pending:
            return
        state = self.doc.get_state()
        if self.pending and state != state_before:
            self.pending.settle(state)
        if as_sent or integrated(update, state):
            return
        self.pending.add(update)
        if origin is not Source.STORE:
            self.ask_peers_for_missing()
        for listener in self.pending_listeners:
            try:
                listener(self, update, origin)
            except Exception:
                log.exception("pending listener failed", extra={"room": self.name})

    def ask_peers_for_missing(self, min_interval: float = 1.0) -> None:
        """Send our state vector to the synced peers (at most once per
        `min_interval`): each answers with what we lack, which may be the
        dependency our pending updates wait for."""
        now = time.monotonic()
        if now - self._asked_peers_at < min_interval:
            return
        self._asked_peers_at = now
        self._broadcast(codec.SyncStep1(self.doc.get_state()), exclude=None, synced_only=True)

    def _propagate_partial(self, state_before: bytes) -> None:
        """yrs can integrate part of an update before rejecting it, and cannot
        roll back. Whatever stuck is sent and stored like a server edit, so
        clients, other nodes and the store never diverge from this document."""
        if self.doc.get_state() == state_before:
            return
        log.warning(
            "rejected update left part of itself in the document", extra={"room": self.name}
        )
        partial = self.doc.get_update(state_before)
        self._broadcast(codec.SyncUpdate(partial), exclude=None, synced_only=True)
        for listener in self.update_listeners:
            try:
                listener(self, partial, Source.SERVER)
            except Exception:
                log.exception("update listener failed", extra={"room": self.name})

    def apply_awareness(
        self,
        entries: tuple[codec.AwarenessEntry, ...],
        origin: Origin,
        now: float,
        *,
        owner: Owner | None = None,
    ) -> None:
        """Apply awareness entries; broadcast those that changed our state.

        `owner` is whoever introduced them: the peer itself, or for entries
        from another node that node's id (so they vanish when it dies). A
        peer's entries are held to its policy (ownership, caps, its verified
        identity stamped in); another node's were, on that node."""
        peer = origin if not isinstance(origin, Source) else None
        if owner is None:
            owner = peer
        peer_state = self.peers.get(peer) if peer is not None else None
        if peer is not None and peer_state is not None:
            nudges = self.awareness.nudges_for(entries, peer)
            result = self.awareness.apply(entries, owner, now, peer_state.policy)
            if result.rejected:
                # A nudge would make its client re-send what we drop again: a loop.
                nudges = [n for n in nudges if n.client_id not in result.rejected]
            if result.foreign and not peer_state.warned:
                peer_state.warned = True
                log.warning(
                    "dropped awareness for client ids another connection owns (%d entries; "
                    "logged once per connection)",
                    result.foreign,
                    extra={"room": self.name},
                )
        else:
            nudges = []
            result = self.awareness.apply(entries, owner, now)
        applied, renewals_only = result.entries, result.renewals_only
        if applied:
            # A renewal is also echoed to its sender: a client with nobody else
            # talking reconnects after 30 s of silence.
            self._broadcast_awareness(applied, exclude=None if renewals_only else peer)
            self._notify_awareness(applied, origin)
        if nudges and peer is not None:
            peer.send(codec.AwarenessUpdate(tuple(nudges)))

    def expire_awareness(self, now: float) -> None:
        """Remove awareness states not renewed within the timeout, and broadcast that."""
        removed = self.awareness.expire(now)
        if removed:
            self._broadcast_awareness(removed, exclude=None)
            self._notify_awareness(removed, Source.SERVER)

    def contains(self, update: bytes) -> bool:
        """Whether the document already holds all `update` would bring (structs and
        deletions): applying it would change nothing. Raises `codec.ProtocolError`
        if it is not an update. Encodes the document's deletions when `update`
        deletes anything (once per call: meant for handshakes, not every edit)."""
        try:
            # The update less what our state vector covers: structs, then deletions.
            missing = get_update(update, self.doc.get_state())
        except ValueError as exc:
            raise codec.ProtocolError("update could not be decoded") from exc
        if missing[:1] != b"\x00":
            return False  # structs we lack
        theirs = _delete_set(missing[1:])
        if not theirs:
            return True
        ours = _delete_set(get_update(self.doc.get_update(), self.doc.get_state())[1:])
        return all(
            _covered(start, length, ours.get(client, ()))
            for client, ranges in theirs.items()
            for start, length in ranges
        )

    @property
    def document_bytes(self) -> int:
        """The encoded document's size, exactly (encodes the whole document)."""
        self._measured_bytes = len(self.doc.get_update())
        self._added_bytes = 0
        return self._measured_bytes

    def _outgrows_limit(self, update_size: int) -> bool:
        # An update grows the encoded document by at most about its own size.
        limit = self.config.max_document_bytes
        # Pending structs count too: the update that fills their gap brings them in.
        update_size += self.structure.pending_bytes
        if self._measured_bytes + self._added_bytes + update_size <= limit:
            return False  # the common case: far below the limit, no encoding
        # The estimate says over. Measure exactly, but at most once per 1/64 of
        # the limit accepted since the last measurement, so a document near its
        # limit is not encoded per edit (refusals may come up to 1/64 early).
        if self._added_bytes >= limit // 64 or self._measured_bytes == 0:
            _ = self.document_bytes
        return self._measured_bytes + self._added_bytes + update_size > limit

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Drop the document observer; the room must not be used afterwards."""
        self._closed = True
        self.doc.unobserve(self._subscription)
        self.update_listeners.clear()
        self.awareness_listeners.clear()
        self.pending_listeners.clear()

    # -- internals ------------------------------------------------------------------

    def _on_change(self, event: TransactionEvent) -> None:
        # Runs inside pycrdt's transaction commit: nothing here may raise.
        delta: bytes = event.update
        self._last_delta = delta
        if delta == codec.EMPTY_UPDATE:
            # yrs integrated structs past a gap in a client's clocks (an update that
            # arrived before one it depends on, or a crafted one): the state vector
            # did not advance, so there is nothing to send or store yet. The delta
            # that fills the gap carries these structs too.
            return
        self._added_bytes += len(delta)
        scanned = self._scanned
        try:
            # Usually yrs integrates an update exactly as sent: no second read.
            self.structure.commit(
                delta, scanned[1] if scanned is not None and scanned[0] == delta else None
            )
        except Exception:  # a bug here must not break the transaction
            log.exception("structure index failed", extra={"room": self.name})
        origin = self._origin
        sender = origin if not isinstance(origin, Source) else None
        if origin is not Source.STORE:
            self._broadcast(codec.SyncUpdate(delta), exclude=sender, synced_only=True)
        for listener in self.update_listeners:
            try:
                listener(self, delta, origin)
            except Exception:
                log.exception("update listener failed", extra={"room": self.name})

    def _notify_awareness(self, entries: list[codec.AwarenessEntry], origin: Origin) -> None:
        for listener in self.awareness_listeners:
            try:
                listener(self, entries, origin)
            except Exception:
                log.exception("awareness listener failed", extra={"room": self.name})

    def _broadcast_awareness(
        self, entries: list[codec.AwarenessEntry], *, exclude: Peer | None
    ) -> None:
        if self.awareness_outbox is not None:
            self.awareness_outbox.add(self, entries, exclude)
        else:
            self.send_awareness(entries, exclude=exclude)

    def send_awareness(self, entries: list[codec.AwarenessEntry], *, exclude: Peer | None) -> None:
        """Broadcast awareness entries to every peer but `exclude`, now."""
        self._broadcast(codec.AwarenessUpdate(tuple(entries)), exclude=exclude, synced_only=False)

    def _broadcast(
        self, message: codec.Message, *, exclude: Peer | None, synced_only: bool
    ) -> None:
        # One message object for every recipient (each wire codec encodes it once);
        # a peer that has not finished its handshake gets document updates in its
        # SyncStep2 instead.
        for peer, state in self.peers.items():
            if peer is not exclude and (state.synced or not synced_only):
                peer.send(message)


def _delete_set(data: bytes) -> dict[int, list[tuple[int, int]]]:
    """A Yjs v1 delete set: {client: [(clock, length), ...]} (ranges sorted by clock)."""
    reader = Reader(data)
    deleted: dict[int, list[tuple[int, int]]] = {}
    for _ in range(reader.var_uint("delete set size")):
        client = reader.var_uint("delete set client")
        ranges = deleted.setdefault(client, [])
        for _ in range(reader.var_uint("delete set ranges")):
            ranges.append((reader.var_uint("deleted clock"), reader.var_uint("deleted length")))
        ranges.sort()
    return deleted


def _covered(start: int, length: int, ranges: Sequence[tuple[int, int]]) -> bool:
    """Whether [start, start + length) lies within the union of sorted `ranges`."""
    position, end = start, start + length
    for clock, size in ranges:
        if clock > position:
            break
        position = max(position, clock + size)
        if position >= end:
            return True
    return position >= end
