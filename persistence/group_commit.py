"""Group commit: many rooms' updates, one store transaction per flush window.

Updates are queued synchronously from the broadcast path (so persistence adds
no latency to fan-out) and written in one `Store.append` per batch, a room's
updates of one batch merged into one (every node holding a room stores what
reaches it, so without merging a busy room would cost a row per update per
node; merged it costs about one per node per flush window). A batch
that fails is retried, whole and in order, with capped exponential backoff;
while the store is out, `refusal()` tells callers to stop accepting new
updates once the queued data passes its bound (refuse, never drop). A room
whose log grew by `compact_after` updates is compacted in the background.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable

from pycrdt import merge_updates

from ysync.rooms.backoff import Backoff
from ysync.rooms.protocols import Store, StoreError
from ysync.rooms.vocabulary import CloseCode, Refusal

STORE_RETRY = Backoff(initial=0.05, max_delay=5.0)  # a failed batch is retried this way
BACKLOG_FULL = Refusal(
    CloseCode.OVER_CAPACITY, "document storage unavailable: edit not accepted, retry later"
)

log = logging.getLogger("ysync.persistence")


class GroupCommit:
    """An `UpdateLog`: call `append` freely, run `run()` in a task, `flush()` to wait."""

    def __init__(
        self,
        store: Store,
        flush_window: float = 0.05,
        *,
        max_pending_bytes: int = 64 * 1024 * 1024,
        compact_after: int = 1000,
        retry: Backoff = STORE_RETRY,
    ) -> None:
        self.store = store
        self.flush_window = flush_window
        self.max_pending_bytes = max_pending_bytes
        self.compact_after = compact_after
        self.retry = retry
        self.pending_bytes = 0
        self._appended: Counter[str] = Counter()  # per room, since its last compaction
        self._compacting: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()
        # Called with (seconds, updates, succeeded) after each commit attempt (metrics).
        self.on_commit: Callable[[float, int, bool], None] = lambda seconds, updates, ok: None
        self.healthy = True  # False while the store refuses writes
        self._pending: list[tuple[str, bytes]] = []
        self._in_flight: list[tuple[str, bytes]] = []  # the batch being committed
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._batches = 0  # committed so far
        self._batch_done = asyncio.Event()  # set (and replaced) after each commit

    def append(self, room: str, update: bytes) -> None:
        self._pending.append((room, update))
        self.pending_bytes += len(update)
        self._idle.clear()
        self._wakeup.set()

    async def flush(self) -> None:
        await self._idle.wait()

    async def settled(self) -> None:
        """Wait until everything appended before this call is committed. Unlike
        `flush()`, returns under a steady stream of new updates."""
        target = self._batches + bool(self._in_flight) + bool(self._pending)
        while self._batches < target:
            await self._batch_done.wait()

    async def compactions_done(self) -> None:
        """Wait for the compactions running now (and those they start)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def pending_bytes_by_room(self) -> Counter[str]:
        """Uncommitted update bytes per room (walks the queue: for inspection, not hot paths)."""
        pending: Counter[str] = Counter()
        for room, update in (*self._in_flight, *self._pending):
            pending[room] += len(update)
        return pending

    def refusal(self) -> Refusal | None:
        """Why new updates must be refused right now, or None to accept them."""
        if self.pending_bytes >= self.max_pending_bytes:
            return BACKLOG_FULL
        return None

    def health(self) -> str | None:
        return None if self.healthy else "store: writes failing, retrying"

    async def run(self) -> None:
        """Forever: wait for updates, gather them for one window, commit them."""
        while True:
            await self._wakeup.wait()
            await asyncio.sleep(self.flush_window)
            self._wakeup.clear()
            batch, self._pending = self._pending, []
            self._in_flight = batch
            await self._commit(batch)
            self._in_flight = []
            self._batches += 1
            done, self._batch_done = self._batch_done, asyncio.Event()
            done.set()
            self.pending_bytes -= sum(len(update) for _, update in batch)
            if not self._pending:
                self._idle.set()
            self._compact_grown_rooms(batch)

    def _compact_grown_rooms(self, batch: list[tuple[str, bytes]]) -> None:
        self._appended.update(room for room, _ in batch)
        for room, count in self._appended.items():
            if count >= self.compact_after and room not in self._compacting:
                self._start_compaction(room)

    def _start_compaction(self, room: str) -> None:
        self._compacting.add(room)
        task = asyncio.create_task(self._compact(room, self._appended[room]))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _compact(self, room: str, count: int) -> None:
        try:
            await self.store.compact(room)
        except StoreError as exc:
            log.warning("compaction failed, will retry later: %s", exc, extra={"room": room})
            return
        finally:
            self._compacting.discard(room)
        # Updates committed while it ran may not be in the snapshot: keep counting
        # them, and go again now if they are enough (the room may get no more).
        left = self._appended[room] - count
        if left > 0:
            self._appended[room] = left
        else:
            self._appended.pop(room, None)
        if left >= self.compact_after:
            self._start_compaction(room)

    async def _commit(self, batch: list[tuple[str, bytes]]) -> None:
        rows = merged_by_room(batch)
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                await self.store.append(rows)
            except StoreError as exc:
                self.on_commit(time.perf_counter() - started, len(batch), False)
                if self.healthy:
                    log.error("store write failed, retrying: %s", exc)
                self.healthy = False
                await asyncio.sleep(self.retry.delay(attempt))
                attempt += 1
                continue
            self.on_commit(time.perf_counter() - started, len(batch), True)
            if not self.healthy:
                log.warning("store writes recovered")
            self.healthy = True
            return


def merged_by_room(batch: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """One update per room: its updates of the batch merged (Yjs merges keep
    every struct and deletion, pending ones included). Rooms stay in the order
    they first appear."""
    by_room: dict[str, list[bytes]] = {}
    for room, update in batch:
        by_room.setdefault(room, []).append(update)
    if len(by_room) == len(batch):
        return batch
    rows = []
    for room, updates in by_room.items():
        if len(updates) == 1:
            rows.append((room, updates[0]))
            continue
        try:
            rows.append((room, merge_updates(*updates)))
        except ValueError:  # cannot happen for updates a document accepted; keep them as they are
            rows.extend((room, update) for update in updates)
    return rows
