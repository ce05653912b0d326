"""Replication of rooms between nodes over a best-effort `Bus`.

Pub/sub loses messages (a reconnect, a slow subscriber), so it is never
trusted alone:

- each node numbers what it publishes per room (`Envelope.seq`); a receiver
  that sees another node's numbers jump asks that node for what its state
  vector lacks (targeted `sync-request` → `sync-reply`);
- a node opening a room asks every node already holding it for what it lacks
  and waits briefly for their replies, so a client joining here sees edits
  made a moment ago elsewhere that are not yet in the store;
- periodically (anti-entropy) each node publishes its `heads` for every open
  room: its state vector and its sequence number. Receivers catch up on gaps
  at the end of a stream (a lost last message) and send what the publisher lacks;
- awareness states from another node are owned by that node: when its
  heartbeat stops (or it says `node-gone`), every node drops them.

Updates received here are applied with origin `Source.BUS`: every node
holding the room stores them (the registry), nobody re-publishes them. An
update this node cannot integrate yet (a dependency is missing, see
rooms/pending.py) is published as it came when it came from a client, and
makes this node ask the others for what its state vector lacks.

`Replicator` is an extension (`ysync.rooms.extensions`): it opens a room on
load, publishes its changes, closes it on unload and says goodbye at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence

from ysync.rooms import codec
from ysync.rooms.awareness import RemoteNode
from ysync.rooms.extensions import Background, Extension
from ysync.rooms.protocols import Bus, Envelope
from ysync.rooms.room import Origin, Room, Source
from ysync.rooms.vocabulary import EnvelopeKind

log = logging.getLogger("ysync.replication")


class Replicator(Extension):
    """Keeps this node's rooms in step with the same rooms on other nodes."""

    priority = 800  # a loading room catches up before other extensions see it

    def __init__(
        self,
        bus: Bus,
        *,
        catch_up_timeout: float = 0.5,
        anti_entropy_interval: float = 10.0,
        liveness_interval: float = 5.0,
        gap_retry: float = 1.0,
        store_check: Callable[[Room], None] | None = None,
    ) -> None:
        self.bus = bus
        self.node_id = bus.node_id
        self.catch_up_timeout = catch_up_timeout
        self.anti_entropy_interval = anti_entropy_interval
        self.liveness_interval = liveness_interval
        self.gap_retry = gap_retry
        self.rooms: dict[str, Room] = {}
        self.resyncs = 0  # sync requests sent to repair a gap (for metrics and tests)
        self._own_seq: dict[str, int] = {}
        self._seen: dict[tuple[str, str], int] = {}  # (room, node) -> last seq applied
        self._asked: dict[tuple[str, str], float] = {}  # (room, node) -> when we asked
        self._catching_up: dict[str, tuple[set[str], int, asyncio.Event]] = {}
        # Who delivers a stateless message from another node to this node's clients.
        self.stateless_handlers: list[Callable[[Room, str], None]] = []
        # Who compares a room with the store when it may lack something this
        # node holds: a peer node is gone, a gap was repaired, Redis reconnected.
        self.store_checks: list[Callable[[Room], None]] = [store_check] if store_check else []
        bus.on_reconnect = self.resync_all

    # -- the extension's hooks ------------------------------------------------------

    async def on_load_document(self, room: Room) -> None:
        await self.open(room)

    def on_change(self, room: Room, update: bytes, origin: Origin) -> None:
        if origin is not Source.BUS:  # the node that accepted an update publishes it
            self.publish_update(room, update)

    def on_awareness(self, room: Room, entries: list[codec.AwarenessEntry], origin: Origin) -> None:
        if origin is not Source.BUS:
            self.publish_awareness(room, entries)

    async def on_unload(self, room: Room) -> None:
        await self.close(room.name)

    def on_shutdown(self) -> None:
        self.say_goodbye()

    def background(self) -> Sequence[Background]:
        return (("anti-entropy", self.run), ("bus", self.bus.run))

    def health(self) -> str | None:
        return self.bus.health()

    # -- rooms opening and closing ------------------------------------------------

    async def open(self, room: Room) -> None:
        """Start replicating `room`; returns once the nodes already holding it
        answered what we lacked (or after `catch_up_timeout`)."""
        self.rooms[room.name] = room
        self._own_seq.setdefault(room.name, 0)
        room.pending_listeners.append(self._on_pending)
        await self.bus.subscribe(room.name, self.on_envelope)
        await self.catch_up(room)

    async def catch_up(self, room: Room) -> None:
        peers = await self.bus.peers_holding(room.name)
        if peers <= 0:
            return
        done = asyncio.Event()
        self._catching_up[room.name] = (set(), peers, done)
        self._send(room.name, EnvelopeKind.SYNC_REQUEST, room.doc.get_state())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.catch_up_timeout):
                await done.wait()
        self._catching_up.pop(room.name, None)

    async def close(self, name: str) -> None:
        self.rooms.pop(name, None)
        self._own_seq.pop(name, None)
        for key in [key for key in self._seen if key[0] == name]:
            del self._seen[key]
            self._asked.pop(key, None)
        await self.bus.unsubscribe(name)

    def say_goodbye(self) -> None:
        """Tell the other nodes to drop our clients' awareness now (clean shutdown)."""
        for name in self.rooms:
            self._send(name, EnvelopeKind.NODE_GONE, b"")

    # -- outgoing ---------------------------------------------------------------------

    def publish_update(self, room: Room, update: bytes) -> None:
        self._send(room.name, EnvelopeKind.UPDATE, update, sequenced=True)

    def _on_pending(self, room: Room, update: bytes, origin: Origin) -> None:
        if origin is not Source.BUS and origin is not Source.STORE:
            # Its state vector did not move, so no delta carries it: send it as it is.
            self.publish_update(room, update)
        if not self._asked_lately(room.name):  # e.g. a gap in that node's numbers just now
            self.ask_all(room, "an update waits for a missing dependency")

    def _asked_lately(self, name: str) -> bool:
        now = time.monotonic()
        return any(
            key[0] == name and now - when < self.gap_retry for key, when in self._asked.items()
        )

    def ask_all(self, room: Room, why: str) -> None:
        """Ask every node holding `room` for what our state vector lacks (at
        most once per gap_retry)."""
        self._ask(room, "", why)

    def publish_awareness(self, room: Room, entries: list[codec.AwarenessEntry]) -> None:
        payload = codec.encode_awareness_payload(entries)
        self._send(room.name, EnvelopeKind.AWARENESS, payload, sequenced=True)

    def publish_stateless(self, room: str, payload: str) -> None:
        """A stateless message for the room's clients on the other nodes (best effort,
        as Hocuspocus's Redis extension: not numbered, never repaired)."""
        self._send(room, EnvelopeKind.STATELESS, payload.encode("utf-8"))

    def _send(
        self,
        room: str,
        kind: EnvelopeKind,
        payload: bytes,
        *,
        target: str = "",
        sequenced: bool = False,
    ) -> None:
        if self.bus.alone:
            return  # single node: nobody to tell (this was ~5 % of a busy node's CPU)
        seq = self._own_seq.get(room, 0)
        if sequenced:
            seq += 1
            self._own_seq[room] = seq
        self.bus.publish(Envelope(self.node_id, seq, room, kind, payload, target))

    # -- incoming ---------------------------------------------------------------------

    def on_envelope(self, envelope: Envelope) -> None:
        if envelope.node == self.node_id or envelope.target not in ("", self.node_id):
            return
        room = self.rooms.get(envelope.room)
        if room is None or room.closed:
            return
        try:
            self._handle(room, envelope)
        except codec.ProtocolError as exc:
            log.warning(
                "bad message from node %s dropped: %s",
                envelope.node,
                exc.reason,
                extra={"room": room.name},
            )

    def _handle(self, room: Room, envelope: Envelope) -> None:
        kind = envelope.kind
        if kind.sequenced:
            self._check_sequence(room, envelope)
        if kind is EnvelopeKind.UPDATE:
            room.apply_update(envelope.payload, Source.BUS)
        elif kind is EnvelopeKind.AWARENESS:
            entries = codec.decode_awareness(envelope.payload).entries
            owner = RemoteNode(envelope.node)
            room.apply_awareness(entries, Source.BUS, time.monotonic(), owner=owner)
        elif kind is EnvelopeKind.SYNC_REQUEST:
            self._answer(room, envelope)
        elif kind is EnvelopeKind.SYNC_REPLY:
            self._apply_reply(room, envelope)
        elif kind is EnvelopeKind.HEADS:
            self._compare_heads(room, envelope)
        elif kind is EnvelopeKind.NODE_GONE:
            self._forget_node(room, envelope.node)
        elif kind is EnvelopeKind.STATELESS:
            self._deliver_stateless(room, envelope.payload)

    def _deliver_stateless(self, room: Room, payload: bytes) -> None:
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise codec.ProtocolError("stateless payload is not UTF-8") from None
        for handler in self.stateless_handlers:
            try:
                handler(room, text)
            except Exception:
                log.exception("stateless handler failed", extra={"room": room.name})

    def _check_sequence(self, room: Room, envelope: Envelope) -> None:
        key = (room.name, envelope.node)
        last = self._seen.get(key, 0)
        if envelope.seq > last + 1:
            self._ask(room, envelope.node, f"gap: expected {last + 1}, got {envelope.seq}")
        self._seen[key] = max(last, envelope.seq)

    def _ask(self, room: Room, node: str, why: str) -> None:
        """Ask `node` (every node: "") for what our state vector lacks (at most
        once per gap_retry)."""
        key = (room.name, node)
        now = time.monotonic()
        if now - self._asked.get(key, -1e9) < self.gap_retry:
            return
        self._asked[key] = now
        self.resyncs += 1
        log.info("resyncing from node %s (%s)", node or "*", why, extra={"room": room.name})
        self._send(room.name, EnvelopeKind.SYNC_REQUEST, room.doc.get_state(), target=node)

    def _answer(self, room: Room, request: Envelope) -> None:
        codec.check_state_vector(request.payload)
        self._send(
            room.name,
            EnvelopeKind.SYNC_REPLY,
            room.doc.get_update(request.payload),
            target=request.node,
        )
        if not request.target:
            # A node just opened the room: it also needs our clients' presence.
            local = room.awareness.local_states()
            if local:
                self.publish_awareness(room, local)

    def _apply_reply(self, room: Room, reply: Envelope) -> None:
        room.apply_update(reply.payload, Source.BUS)
        key = (room.name, reply.node)
        self._seen[key] = max(self._seen.get(key, 0), reply.seq)
        if self._asked.pop(key, None) is not None:
            self._check_store(room)  # a gap repaired
        waiting = self._catching_up.get(room.name)
        if waiting is not None:
            answered, expected, done = waiting
            answered.add(reply.node)
            if len(answered) >= expected:
                done.set()

    def _compare_heads(self, room: Room, heads: Envelope) -> None:
        theirs = codec.decode_state_vector(heads.payload)
        if heads.seq > self._seen.get((room.name, heads.node), 0):
            self._ask(room, heads.node, "behind its heads")
        ours = codec.decode_state_vector(room.doc.get_state())
        if any(clock > theirs.get(client, 0) for client, clock in ours.items()):
            self._send(
                room.name,
                EnvelopeKind.SYNC_REPLY,
                room.doc.get_update(heads.payload),
                target=heads.node,
            )

    def _forget_node(self, room: Room, node: str) -> None:
        room.drop_awareness(RemoteNode(node), Source.BUS)
        self._seen.pop((room.name, node), None)
        # It may have died holding updates it had not committed yet.
        self._check_store(room)

    def _check_store(self, room: Room) -> None:
        for check in self.store_checks:
            try:
                check(room)
            except Exception:
                log.exception("store check failed", extra={"room": room.name})

    # -- background work --------------------------------------------------------------

    async def run(self) -> None:
        """Forever: anti-entropy heads for every room, and drop dead nodes' presence."""
        next_liveness = time.monotonic() + self.liveness_interval
        while True:
            if self.bus.alone:
                await asyncio.sleep(self.anti_entropy_interval)
                continue
            names = list(self.rooms)
            # Spread the heads over the interval instead of one burst.
            pause = self.anti_entropy_interval * random.uniform(0.8, 1.2) / max(len(names), 1)
            for name in names:
                room = self.rooms.get(name)
                if room is not None:
                    self._send(name, EnvelopeKind.HEADS, room.doc.get_state())
                    if room.pending:
                        self.ask_all(room, "updates still wait for a missing dependency")
                await asyncio.sleep(pause)
                if time.monotonic() >= next_liveness:
                    await self.drop_dead_nodes()
                    next_liveness = time.monotonic() + self.liveness_interval
            if not names:
                await asyncio.sleep(pause)

    async def drop_dead_nodes(self) -> None:
        nodes = {node for room in self.rooms.values() for node in room.awareness.remote_nodes()}
        if not nodes:
            return
        dead = nodes - await self.bus.alive(nodes)
        for node in dead:
            log.warning("node %s is gone: dropping its clients' presence", node)
            for room in list(self.rooms.values()):
                self._forget_node(room, node)

    def resync_all(self) -> None:
        """After the bus reconnected: ask every node for what each open room lacks.

        Every node does the same after its own reconnect, and the heads
        exchange covers the other direction."""
        for name, room in list(self.rooms.items()):
            self.resyncs += 1
            self._send(name, EnvelopeKind.SYNC_REQUEST, room.doc.get_state())
            self._check_store(room)
