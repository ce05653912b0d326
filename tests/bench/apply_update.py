"""Benchmark: µs per `Room.apply_update` of one ordinary client edit (a map key set,
as the hot-path benchmark's writers make), the update check included.

    .venv/bin/python tests/bench/apply_update.py
    PYTHONPATH=/path/to/older/ysync-parent .venv/bin/python tests/bench/apply_update.py

Not a test. Best of 5 rounds of 10,000 edits into a fresh room; no sockets.
"""

from __future__ import annotations

import time

from ysync.loadtest.hotpath import _update_frames
from ysync.rooms import codec
from ysync.rooms.room import Room, Source


def main() -> None:
    edits = [codec.decode(f).update for f in _update_frames(10_000)]  # type: ignore[union-attr]
    rounds = []
    for _ in range(5):
        room = Room("bench")
        started = time.perf_counter()
        for edit in edits:
            room.apply_update(edit, Source.SERVER)
        rounds.append((time.perf_counter() - started) / len(edits) * 1e6)
        room.close()
    print(f"Room.apply_update µs per edit: {min(rounds):.2f} (best of 5)")


if __name__ == "__main__":
    main()
