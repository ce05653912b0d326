"""A node-wide bound on the bytes buffered for clients, on top of each client's own.

Each client may hold `send_queue_bytes` unsent (then it is cut off as a slow
consumer), but a thousand clients each below that can still hold gigabytes
between them: a room full of cursors sending faster than the clients read.
`OutputBudget` counts the senders that hold more than `SMALL_HOLD` (a healthy
client's buffer empties every turn: it never gets here, so the hot path pays
one comparison). Past `limit`, such a sender may add only while it holds less
than its fair share (the limit over the number of them), and one that holds
more is cut off (4508). So the node holds at most `limit`, plus `SMALL_HOLD`
and a frame per client. Before that, from half the limit, `shedding()` tells
the awareness batches to coalesce over longer ticks (fewer, fuller frames:
nothing lost).
"""

from __future__ import annotations

import math
import time
from typing import Protocol

SMALL_HOLD = 64 * 1024  # a client holding up to this much is never counted or cut off here
REFRESH_EVERY = 1.0  # seconds between recounts of the counted senders, under traffic


class Held(Protocol):
    """A sender, as the budget sees it."""

    def held(self) -> int: ...


class OutputBudget:
    """Bytes buffered for this node's backlogged clients, bounded as a whole (0: unbounded)."""

    __slots__ = ("_refreshed_at", "backlogged", "bound", "limit", "used")

    def __init__(self, limit: int = 0) -> None:
        self.limit = limit
        self.bound: float = limit or math.inf
        self.used = 0  # the sum of `backlogged`, as last counted
        self.backlogged: dict[Held, int] = {}  # senders holding more than SMALL_HOLD: bytes
        self._refreshed_at = 0.0

    def shedding(self) -> bool:
        """Past half the limit: coalesce what can be coalesced."""
        return 2 * self.used >= self.bound

    def admits(self, sender: Held, held: int) -> bool:
        """Whether `sender` may hold `held` bytes (more than SMALL_HOLD): counts it, and
        over the limit lets it grow only up to its fair share."""
        self._count(sender, held)
        if self.used <= self.bound:
            return True
        self.refresh()  # the others' sockets drain in the background
        if self.used <= self.bound:
            return True
        return held <= self.bound / len(self.backlogged)

    def refresh(self, *, at_most_every: float = 0.0) -> None:
        """Recount every counted sender; forget those that hold little now."""
        now = time.monotonic()
        if now - self._refreshed_at < at_most_every:
            return
        self._refreshed_at = now
        for sender in list(self.backlogged):
            self._count(sender, sender.held())

    def _count(self, sender: Held, held: int) -> None:
        before = self.backlogged.pop(sender, 0)
        if held > SMALL_HOLD:
            self.backlogged[sender] = held
        else:
            held = 0
        self.used += held - before
