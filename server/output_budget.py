"""A node-wide bound on the bytes buffered for clients, on top of each client's own.

Each client may hold `send_queue_bytes` unsent (then it is cut off as a slow
consumer), but a thousand clients each below that can still hold gigabytes
between them: a room full of cursors sending faster than the clients read.
`OutputBudget` counts what every sender of the node holds; past `limit`, a
sender may add only while it holds less than its fair share (the limit over
the number of backlogged senders), and one that holds more is cut off (4508).
So the node's total stays below `limit` plus one frame per sender. Before
that, from half the limit, `shedding()` tells the awareness batches to
coalesce over longer ticks (fewer, fuller frames: nothing lost).
"""

from __future__ import annotations

import time
from typing import Protocol

REFRESH_EVERY = 1.0  # seconds between recounts of every backlogged sender, under traffic


class Counted(Protocol):
    """A sender whose buffered bytes the budget counts."""

    def recount(self) -> None: ...


class OutputBudget:
    """Bytes buffered for every client of this node, bounded as a whole (0: unbounded)."""

    __slots__ = ("_refreshed_at", "backlogged", "limit", "used")

    def __init__(self, limit: int = 0) -> None:
        self.limit = limit
        self.used = 0  # bytes the senders hold, as each last counted them
        self.backlogged: set[Counted] = set()  # senders holding anything
        self._refreshed_at = 0.0

    def shedding(self) -> bool:
        """Past half the limit: coalesce what can be coalesced."""
        return self.limit > 0 and 2 * self.used >= self.limit

    def admits(self, held: int, size: int) -> bool:
        """Whether a sender holding `held` bytes may buffer `size` more (call only when
        `used + size` is over the limit: the fast path checks that inline)."""
        self.refresh()
        if self.used + size <= self.limit:
            return True
        return held + size <= self.limit // max(1, len(self.backlogged))

    def refresh(self, *, at_most_every: float = 0.0) -> None:
        """Recount every backlogged sender (their sockets drain in the background)."""
        now = time.monotonic()
        if now - self._refreshed_at < at_most_every:
            return
        self._refreshed_at = now
        for sender in list(self.backlogged):
            sender.recount()
