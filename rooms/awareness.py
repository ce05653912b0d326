"""Server-side awareness state of one room (y-protocols/awareness.js semantics).

Awareness is kept as state, not relayed: an entry is applied only when its clock
is newer than the one we hold, and only applied entries are broadcast. Clients
re-send every awareness change they receive, so relaying raw frames would
multiply traffic by the room size; the clock check drops those echoes.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from ysync.rooms.codec import AwarenessEntry


@dataclass(frozen=True, slots=True)
class RemoteNode:
    """The owner of awareness states that came from another node's clients."""

    node_id: str


Owner = Hashable  # a local peer, or a RemoteNode


@dataclass(slots=True)
class _ClientState:
    clock: int
    state: str  # JSON text; "null" once removed (kept so stale echoes can't resurrect it)
    updated_at: float
    owner: Owner | None  # the connection (or node) that last advanced the clock


class AwarenessState:
    """Latest awareness state per client id, with owners and expiry."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._clients: dict[int, _ClientState] = {}

    def __len__(self) -> int:
        """Number of present (not removed) clients."""
        return sum(1 for c in self._clients.values() if c.state != "null")

    def apply(
        self, entries: Iterable[AwarenessEntry], owner: Owner | None, now: float
    ) -> tuple[list[AwarenessEntry], bool]:
        """Apply entries; return the ones that changed our state, and whether all
        of those were renewals (same state, newer clock)."""
        applied: list[AwarenessEntry] = []
        renewals_only = True
        for entry in entries:
            current = self._clients.get(entry.client_id)
            if current is None:
                if entry.removed:
                    continue  # removing a client we never saw changes nothing
                self._clients[entry.client_id] = _ClientState(entry.clock, entry.state, now, owner)
                renewals_only = False
            elif entry.clock > current.clock or (
                entry.clock == current.clock and entry.removed and current.state != "null"
            ):
                if entry.state != current.state:
                    renewals_only = False
                current.clock = entry.clock
                current.state = entry.state
                current.updated_at = now
                current.owner = owner
            else:
                continue
            applied.append(entry)
        return applied, renewals_only and bool(applied)

    def nudges_for(self, entries: Iterable[AwarenessEntry], owner: Owner) -> list[AwarenessEntry]:
        """Removal entries to send back to `owner` only, so its client bumps its clock.

        A JS client that reconnects re-sends its state at an unchanged clock
        (and a fresh one sends `{}` at clock 0), which every other client
        ignores as already known: its cursor stays invisible until the next
        15 s renewal. Told "you were removed" at a clock >= its own, y-protocols
        bumps its clock and re-broadcasts, so everyone sees it at once. Call
        before `apply`.
        """
        nudges = []
        for entry in entries:
            if entry.removed:
                continue
            current = self._clients.get(entry.client_id)
            if current is None or (current.owner != owner and entry.clock > current.clock):
                nudges.append(AwarenessEntry(entry.client_id, entry.clock, "null"))
            elif current.state == "null" and entry.clock <= current.clock:
                nudges.append(AwarenessEntry(entry.client_id, current.clock, "null"))
        return nudges

    def remove_owned_by(self, owner: Owner) -> list[AwarenessEntry]:
        """Remove the clients `owner` controls (its connection closed)."""
        ids = [cid for cid, c in self._clients.items() if c.owner == owner and c.state != "null"]
        return self._remove(ids)

    def expire(self, now: float) -> list[AwarenessEntry]:
        """Remove states not renewed within the timeout; forget old tombstones."""
        stale = [
            cid
            for cid, c in self._clients.items()
            if c.state != "null" and now - c.updated_at >= self.timeout
        ]
        forgotten = [
            cid
            for cid, c in self._clients.items()
            if c.state == "null" and now - c.updated_at >= 2 * self.timeout
        ]
        for cid in forgotten:
            del self._clients[cid]
        return self._remove(stale)

    def owner_of(self, client_id: int) -> Owner | None:
        client = self._clients.get(client_id)
        return client.owner if client is not None else None

    def owners(self) -> set[Owner]:
        """Everyone who currently owns a present state."""
        return {
            c.owner for c in self._clients.values() if c.state != "null" and c.owner is not None
        }

    def remote_nodes(self) -> set[str]:
        """The other nodes whose clients have a present state here."""
        return {owner.node_id for owner in self.owners() if isinstance(owner, RemoteNode)}

    def local_states(self) -> list[AwarenessEntry]:
        """The present states of this node's own clients."""
        return [
            AwarenessEntry(cid, c.clock, c.state)
            for cid, c in self._clients.items()
            if c.state != "null" and c.owner is not None and not isinstance(c.owner, RemoteNode)
        ]

    def states(self) -> list[AwarenessEntry]:
        """Every present client's current entry (what a new connection is sent)."""
        return [
            AwarenessEntry(cid, c.clock, c.state)
            for cid, c in self._clients.items()
            if c.state != "null"
        ]

    def _remove(self, client_ids: list[int]) -> list[AwarenessEntry]:
        removed = []
        for cid in client_ids:
            client = self._clients[cid]
            # As removeAwarenessStates(): bump the clock so every client accepts it.
            client.clock += 1
            client.state = "null"
            client.owner = None
            removed.append(AwarenessEntry(cid, client.clock, "null"))
        return removed
