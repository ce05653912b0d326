"""A room: one shared document, the awareness states of its clients, its peers.

Sans-I/O: frames come in through `receive`, go out through `Peer.send` (which
only enqueues). The transport calls `join`, then `receive` for every frame,
then `leave`.

Every document change — from a client, another node, the store or the host
app editing `room.doc` directly — goes through one observer, which broadcasts
it to the room's synced peers (encoded once for all of them) and hands it to
the listeners with its origin, so the registry knows whether to store it and
whether to publish it to other nodes (no echo loops).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from pycrdt import Doc, TransactionEvent, get_state

from ysync.rooms import codec
from ysync.rooms.awareness import AwarenessState
from ysync.rooms.protocols import Peer

log = logging.getLogger("ysync.room")

_EMPTY_UPDATE = b"\x00\x00"  # what a client with nothing new sends as its SyncStep2
CLOSE_TRY_AGAIN_LATER = 4503  # over capacity: the JS provider reconnects with backoff


class Source(Enum):
    """Where a change came from, when not from a connected peer."""

    STORE = "store"  # loaded from storage: neither stored again nor published
    BUS = "bus"  # from another node: it already stored and published it
    SERVER = "server"  # the host app or an API call: stored and published


Origin = Peer | Source
UpdateListener = Callable[["Room", bytes, Origin], None]
AwarenessListener = Callable[["Room", list[codec.AwarenessEntry], Origin], None]


@dataclass(slots=True)
class PeerState:
    read_only: bool
    synced: bool = False  # True once we answered its SyncStep1 with the full document


class Room:
    """Authoritative document and awareness of one room on this node."""

    def __init__(self, name: str, *, awareness_timeout: float = 30.0) -> None:
        self.name = name
        self.doc: Doc = Doc()
        self.awareness = AwarenessState(awareness_timeout)
        self.peers: dict[Peer, PeerState] = {}
        self.update_listeners: list[UpdateListener] = []
        self.awareness_listeners: list[AwarenessListener] = []
        # Returns why document edits must be refused right now (e.g. the store is
        # out and its backlog is full), or None: set by the registry.
        self.write_refusal: Callable[[], str | None] = lambda: None
        self._origin: Origin = Source.SERVER
        self._subscription = self.doc.observe(self._on_change)

    # -- connections ------------------------------------------------------------

    def join(self, peer: Peer, *, read_only: bool = False) -> None:
        """Register a peer and send it our SyncStep1 and every present awareness state.

        Our SyncStep1 makes the client upload what we lack (its offline edits);
        it only uploads them in its reply to it.
        """
        self.peers[peer] = PeerState(read_only=read_only)
        peer.send(codec.encode_sync_step1(self.doc.get_state()))
        states = self.awareness.states()
        if states:
            peer.send(codec.encode_awareness(states))

    def leave(self, peer: Peer) -> None:
        """Forget a peer and broadcast the removal of the awareness states it owned."""
        if self.peers.pop(peer, None) is None:
            return
        removed = self.awareness.remove_owned_by(peer)
        if removed:
            self._broadcast(codec.encode_awareness(removed), exclude=None, synced_only=False)
            self._notify_awareness(removed, peer)

    @property
    def is_empty(self) -> bool:
        return not self.peers

    # -- frames from a peer ------------------------------------------------------

    def receive(self, peer: Peer, frame: bytes, now: float | None = None) -> None:
        """Handle one frame from `peer`. Raises `codec.ProtocolError` on bad input,
        having changed nothing: the transport closes that connection."""
        message = codec.decode(frame)
        state = self.peers[peer]
        if isinstance(message, codec.SyncUpdate | codec.SyncStep2):
            if message.update == _EMPTY_UPDATE:
                return
            if state.read_only:
                peer.send(codec.encode_permission_denied("read-only: document edits not allowed"))
                return
            refusal = self.write_refusal()
            if refusal is not None:
                # The client keeps the edit and re-sends it in the sync handshake
                # when it reconnects: refused, never dropped.
                peer.close(CLOSE_TRY_AGAIN_LATER, refusal)
                return
            self.apply_update(message.update, peer)
        elif isinstance(message, codec.SyncStep1):
            try:
                missing = self.doc.get_update(message.state_vector)
            except ValueError as exc:
                raise codec.ProtocolError("state vector rejected by the CRDT") from exc
            peer.send(codec.encode_sync_step2(missing))
            state.synced = True
        elif isinstance(message, codec.AwarenessUpdate):
            self.apply_awareness(message.entries, peer, time.monotonic() if now is None else now)
        elif isinstance(message, codec.QueryAwareness):
            states = self.awareness.states()
            peer.send(codec.encode_awareness(states))
        # codec.Auth from a client carries nothing the room acts on.

    # -- changes from any origin ---------------------------------------------------

    def load(self, updates: list[bytes]) -> None:
        """Apply stored updates (origin STORE: not stored again, not published)."""
        for update in updates:
            self.apply_update(update, Source.STORE)

    def apply_update(self, update: bytes, origin: Origin) -> None:
        """Apply a Yjs update. Raises `codec.ProtocolError` if the CRDT rejects it."""
        try:
            # Decode without touching the document first: a malformed update
            # must never half-apply to the room's doc.
            get_state(update)
        except ValueError as exc:
            raise codec.ProtocolError("update could not be decoded") from exc
        self._origin = origin
        try:
            self.doc.apply_update(update)
        except Exception as exc:
            raise codec.ProtocolError(f"update rejected by the CRDT: {exc}") from exc
        except BaseException as exc:
            # pyo3 turns a Rust panic into PanicException, a BaseException.
            if type(exc).__name__ != "PanicException":
                raise
            raise codec.ProtocolError("update rejected by the CRDT") from None
        finally:
            self._origin = Source.SERVER

    def apply_awareness(
        self, entries: tuple[codec.AwarenessEntry, ...], origin: Origin, now: float
    ) -> None:
        """Apply awareness entries; broadcast those that changed our state."""
        owner = origin if not isinstance(origin, Source) else None
        nudges = self.awareness.nudges_for(entries, owner) if owner is not None else []
        applied, renewals_only = self.awareness.apply(entries, owner, now)
        if applied:
            # A renewal is also echoed to its sender: a client with nobody else
            # talking reconnects after 30 s of silence.
            exclude = None if renewals_only else owner
            self._broadcast(codec.encode_awareness(applied), exclude=exclude, synced_only=False)
            self._notify_awareness(applied, origin)
        if nudges and owner is not None:
            owner.send(codec.encode_awareness(nudges))

    def expire_awareness(self, now: float) -> None:
        """Remove awareness states not renewed within the timeout, and broadcast that."""
        removed = self.awareness.expire(now)
        if removed:
            self._broadcast(codec.encode_awareness(removed), exclude=None, synced_only=False)
            self._notify_awareness(removed, Source.SERVER)

    def close(self) -> None:
        """Drop the document observer; the room must not be used afterwards."""
        self.doc.unobserve(self._subscription)
        self.update_listeners.clear()
        self.awareness_listeners.clear()

    # -- internals ------------------------------------------------------------------

    def _on_change(self, event: TransactionEvent) -> None:
        # Runs inside pycrdt's transaction commit: nothing here may raise.
        delta: bytes = event.update
        if delta == _EMPTY_UPDATE:
            # yrs integrated structs past a gap in a client's clocks (an update that
            # arrived before one it depends on, or a crafted one): the state vector
            # did not advance, so there is nothing to send or store yet. The delta
            # that fills the gap carries these structs too.
            return
        origin = self._origin
        sender = origin if not isinstance(origin, Source) else None
        if origin is not Source.STORE:
            self._broadcast(codec.encode_update(delta), exclude=sender, synced_only=True)
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

    def _broadcast(self, frame: bytes, *, exclude: Peer | None, synced_only: bool) -> None:
        # One encoded frame for every recipient; a peer that has not finished its
        # handshake gets document updates in its SyncStep2 instead.
        for peer, state in self.peers.items():
            if peer is not exclude and (state.synced or not synced_only):
                peer.send(frame)
