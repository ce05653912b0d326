"""Updates a document has received but cannot integrate yet ("pending").

A Yjs document keeps an update whose dependencies it has not seen (an insert
after a clock it lacks, a deletion of an item it lacks) aside, invisible, and
integrates it when the missing part arrives. Its state vector does not move,
so nothing about it shows in the document's deltas: without this module such
an update was neither stored nor published until its dependency came, and if
the dependency never came (its only holder died before storing it) every
later edit that builds on it stayed stranded, silently.

`PendingUpdates` remembers those updates per room so they can be stored as
they are, counted, logged, and healed by asking peers for what the state
vector lacks. Pure; no I/O.
"""

from __future__ import annotations

from pycrdt import get_update

from ysync.rooms.lib0 import ProtocolError, Reader

# Per room: each edit re-checks them. Past it the oldest are forgotten (they
# are stored already; only the count undercounts).
MAX_TRACKED = 256


def integrated(update: bytes, state: bytes) -> bool:
    """Whether every insert and deletion of `update` is integrated in a document
    whose state vector is `state` (it holds clocks 0..state[c]-1 of client c)."""
    try:
        # The update less what `state` covers: the inserts still missing, and the
        # whole delete set (a diff always carries it).
        rest = get_update(update, state)
    except ValueError:
        return False
    have = _read_state_vector(state)
    reader = Reader(rest)
    try:
        if reader.var_uint("struct count") != 0:
            return False  # inserts the document lacks
        for _ in range(reader.var_uint("delete set size")):
            client = reader.var_uint("client")
            for _ in range(reader.var_uint("ranges")):
                end = reader.var_uint("clock") + reader.var_uint("length")
                if end > have.get(client, 0):
                    return False  # deletes an item the document lacks
    except ProtocolError:
        return False
    return True


def _read_state_vector(state: bytes) -> dict[int, int]:
    reader = Reader(state)
    return {
        reader.var_uint("client"): reader.var_uint("clock")
        for _ in range(reader.var_uint("state vector size"))
    }


class PendingUpdates:
    """The updates of one document not fully integrated yet, oldest first."""

    __slots__ = ("_updates", "limit")

    def __init__(self, limit: int = MAX_TRACKED) -> None:
        self.limit = limit
        self._updates: list[bytes] = []

    def __len__(self) -> int:
        return len(self._updates)

    def add(self, update: bytes) -> None:
        if len(self._updates) >= self.limit:
            del self._updates[0]
        self._updates.append(update)

    def settle(self, state: bytes) -> int:
        """Forget the updates a document with state vector `state` has now
        integrated; return how many are still pending."""
        self._updates = [u for u in self._updates if not integrated(u, state)]
        return len(self._updates)

    def updates(self) -> list[bytes]:
        return list(self._updates)
