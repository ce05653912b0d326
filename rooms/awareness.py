"""Server-side awareness state of one room (y-protocols/awareness.js semantics).

Awareness is kept as state, not relayed: an entry is applied only when its clock
is newer than the one we hold, and only applied entries are broadcast. Clients
re-send every awareness change they receive, so relaying raw frames would
multiply traffic by the room size; the clock check drops those echoes.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from ysync.rooms.codec import AwarenessEntry


@dataclass(frozen=True, slots=True)
class RemoteNode:
    """The owner of awareness states that came from another node's clients."""

    node_id: str


Owner = Hashable  # a local peer, or a RemoteNode


@dataclass(slots=True)
class AwarenessStats:
    """What the ownership and flood bounds dropped, node-wide (for metrics)."""

    foreign: int = 0  # entries for a client id another connection or node introduced
    over_cap: int = 0  # new client ids past the per-connection cap
    too_large: int = 0  # states over the size limit
    not_object: int = 0  # states that are JSON but not an object (nowhere to stamp identity)
    truncated: int = 0  # entries past the per-message bound, ignored unread


@dataclass(frozen=True, slots=True)
class AwarenessPolicy:
    """The bounds one connection's awareness entries are held to.

    A y-websocket client introduces one client id (its doc's), a few more
    after reloads in the same tab or with several documents: `max_clients`
    bounds what one socket can make every newcomer download. `stamp` turns
    an accepted state into the one stored and relayed (the verified identity
    merged in), or None when it cannot carry one.
    """

    max_clients: int = 4  # client ids one connection may introduce (0: no limit)
    server: bool = False  # may use SERVER_CLIENT_ID (the server's own state: locks)
    max_state_bytes: int = 8192  # largest state (0: no limit)
    user: str | None = None  # the verified user: may take over its own other connection's ids
    stamp: Callable[[str], str | None] | None = None


UNBOUNDED = AwarenessPolicy(max_clients=0, max_state_bytes=0, server=True)

# The client id of the server's own awareness state (the element locks). Yjs
# client ids are random 32-bit numbers; this one is never a client's: entries
# for it from a connection are dropped as someone else's.
SERVER_CLIENT_ID = 0xFFFFFFFF


@dataclass(slots=True)
class Applied:
    """What `AwarenessState.apply` did with a batch of entries."""

    entries: list[AwarenessEntry]  # those that changed our state, as stored (stamped)
    renewals_only: bool  # all of them kept their state (a newer clock only)
    foreign: int  # dropped: someone else's client id
    rejected: set[int]  # ids dropped by the bounds (cap, size, not an object)


@dataclass(slots=True)
class _ClientState:
    clock: int
    state: str  # JSON text; "null" once removed (kept so stale echoes can't resurrect it)
    updated_at: float
    # Who introduced it: only they may change or remove it. None once they left
    # (a reconnecting client takes its id back).
    owner: Owner | None
    user: str | None  # the owner's verified user id (None: anonymous or another node's)


class AwarenessState:
    """Latest awareness state per client id, with owners and expiry.

    Ownership (first introduction wins): an entry for a client id someone else
    introduced is dropped, never applied or relayed, unless it comes from
    another connection of the same verified user (a reload before the old
    socket is noticed dead). Across nodes the owning node's word counts: a
    node's entries never overwrite ids this node's clients (or a third node)
    own. Tombstones are bounded: each connection holds at most its cap, and
    past `max_tombstones` the oldest ownerless ones are forgotten early.
    """

    def __init__(
        self,
        timeout: float = 30.0,
        *,
        max_tombstones: int = 10_000,
        stats: AwarenessStats | None = None,
    ) -> None:
        self.timeout = timeout
        self.max_tombstones = max_tombstones
        self.stats = stats if stats is not None else AwarenessStats()
        self._clients: dict[int, _ClientState] = {}
        self._owned: dict[Owner, set[int]] = {}  # owner -> the ids it introduced
        self._tombstones = 0

    def __len__(self) -> int:
        """Number of present (not removed) clients."""
        return len(self._clients) - self._tombstones

    def apply(
        self,
        entries: Iterable[AwarenessEntry],
        owner: Owner | None,
        now: float,
        policy: AwarenessPolicy = UNBOUNDED,
    ) -> Applied:
        """Apply entries from `owner` (see `Applied` for what comes back)."""
        applied: list[AwarenessEntry] = []
        renewals_only = True
        foreign = 0
        rejected: set[int] = set()
        for entry in entries:
            current = self._clients.get(entry.client_id)
            if current is not None and not _newer(entry, current):
                continue  # an echo or a stale copy: changes nothing
            if (entry.client_id == SERVER_CLIENT_ID and not policy.server) or (
                current is not None and not self._may_change(current, owner, policy.user)
            ):
                foreign += 1
                continue
            state = self._admit(entry, current, owner, policy)
            if state is None:
                rejected.add(entry.client_id)
                continue
            if current is None:
                current = self._clients[entry.client_id] = _ClientState(-1, "null", now, None, None)
                self._tombstones += 1  # until _set stores its state
            if state != current.state:
                renewals_only = False
            self._set(current, entry.clock, state, now)
            if state == "null" and isinstance(owner, RemoteNode):
                # Its client left or expired there: the id is free again (it
                # may reconnect to any node).
                self._claim(entry.client_id, current, None, None)
            else:
                self._claim(entry.client_id, current, owner, policy.user)
            if state is not entry.state:
                entry = AwarenessEntry(entry.client_id, entry.clock, state)
            applied.append(entry)
        self.stats.foreign += foreign
        self._trim_tombstones()
        return Applied(applied, renewals_only and bool(applied), foreign, rejected)

    @staticmethod
    def _may_change(current: _ClientState, owner: Owner | None, user: str | None) -> bool:
        """Its owner, anyone once it has none, or another connection of the same user."""
        if current.owner is None or current.owner == owner:
            return True
        return user is not None and current.user == user

    def _admit(
        self,
        entry: AwarenessEntry,
        current: _ClientState | None,
        owner: Owner | None,
        policy: AwarenessPolicy,
    ) -> str | None:
        """The state to store for `entry` (stamped), or None when it is dropped."""
        if entry.removed:
            return None if current is None else "null"  # removing an unknown id: nothing
        if current is None or current.owner != owner:
            owned = self._owned.get(owner) if owner is not None else None
            if policy.max_clients and owned is not None and len(owned) >= policy.max_clients:
                self.stats.over_cap += 1
                return None
        state = entry.state
        limit = policy.max_state_bytes
        if limit and len(state) * 4 > limit and len(state.encode()) > limit:
            self.stats.too_large += 1
            return None
        if policy.stamp is not None:
            stamped = policy.stamp(state)
            if stamped is None:
                self.stats.not_object += 1
            return stamped
        return state

    def _set(self, client: _ClientState, clock: int, state: str, now: float) -> None:
        if (client.state == "null") != (state == "null"):
            self._tombstones += 1 if state == "null" else -1
        client.clock = clock
        client.state = state
        client.updated_at = now

    def _claim(
        self, client_id: int, client: _ClientState, owner: Owner | None, user: str | None
    ) -> None:
        if client.owner == owner:
            return
        if client.owner is not None:
            self._disown(client.owner, client_id)
        client.owner = owner
        client.user = user
        if owner is not None:
            self._owned.setdefault(owner, set()).add(client_id)

    def _disown(self, owner: Owner, client_id: int) -> None:
        owned = self._owned.get(owner)
        if owned is not None:
            owned.discard(client_id)
            if not owned:
                del self._owned[owner]

    def nudges_for(self, entries: Iterable[AwarenessEntry], owner: Owner) -> list[AwarenessEntry]:
        """Removal entries to send back to `owner` only, so its client bumps its clock.

        A JS client that reconnects re-sends its state at an unchanged clock
        (and a fresh one sends `{}` at clock 0), which every other client
        ignores as already known: its cursor stays invisible until the next
        15 s renewal. Told "you were removed" at a clock >= its own, y-protocols
        bumps its clock and re-broadcasts, so everyone sees it at once. Call
        before `apply`. Never for an id someone else owns (nothing to take back).
        """
        nudges = []
        for entry in entries:
            if entry.removed:
                continue
            current = self._clients.get(entry.client_id)
            if current is None:
                nudges.append(AwarenessEntry(entry.client_id, entry.clock, "null"))
            elif current.owner is not None and current.owner != owner:
                continue
            elif current.owner is None and entry.clock > current.clock:
                nudges.append(AwarenessEntry(entry.client_id, entry.clock, "null"))
            elif current.state == "null" and entry.clock <= current.clock:
                nudges.append(AwarenessEntry(entry.client_id, current.clock, "null"))
        return nudges

    def remove_owned_by(self, owner: Owner) -> list[AwarenessEntry]:
        """Remove the clients `owner` controls (its connection closed); their ids
        become free for whoever introduces them next (the client reconnecting)."""
        ids = self._owned.pop(owner, set())
        removed = self._remove([cid for cid in ids if self._clients[cid].state != "null"])
        for cid in ids:
            client = self._clients[cid]
            client.owner = None
            client.user = None
        self._trim_tombstones()
        return removed

    def expire(self, now: float) -> list[AwarenessEntry]:
        """Remove states not renewed within the timeout; forget old tombstones.
        An expired state stays its owner's (its connection may still renew it)."""
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
        self._forget(forgotten)
        return self._remove(stale)

    def owner_of(self, client_id: int) -> Owner | None:
        client = self._clients.get(client_id)
        return client.owner if client is not None else None

    def owned_by(self, owner: Owner) -> set[int]:
        """The client ids `owner` introduced (present or removed by it)."""
        return set(self._owned.get(owner, ()))

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
            self._set(client, client.clock + 1, "null", client.updated_at)
            removed.append(AwarenessEntry(cid, client.clock, "null"))
        return removed

    def _forget(self, client_ids: Iterable[int]) -> None:
        for cid in client_ids:
            client = self._clients.pop(cid)
            if client.state == "null":
                self._tombstones -= 1
            if client.owner is not None:
                self._disown(client.owner, cid)

    def _trim_tombstones(self) -> None:
        """Past `max_tombstones`, forget the oldest ownerless ones (a stale echo
        of one can then bring a departed cursor back until it expires: rare,
        and bounded, where unbounded tombstones are not)."""
        excess = self._tombstones - self.max_tombstones
        if excess <= 0:
            return
        ownerless = [
            (c.updated_at, cid)
            for cid, c in self._clients.items()
            if c.state == "null" and c.owner is None
        ]
        ownerless.sort()
        self._forget(cid for _, cid in ownerless[: max(excess, self.max_tombstones // 10)])


def _newer(entry: AwarenessEntry, current: _ClientState) -> bool:
    """Whether `entry` would change `current` (y-protocols' rule)."""
    return entry.clock > current.clock or (
        entry.clock == current.clock and entry.removed and current.state != "null"
    )
