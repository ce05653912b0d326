"""Garbage-collector tuning for a server holding thousands of connections.

CPython's cyclic collector is the latency tail of a busy Python server: every
generation-2 collection walks every tracked object, and with a few thousand
connections (each a few hundred objects across uvicorn, websockets, asyncio
and ysync) that is hundreds of milliseconds during which no frame moves
(measured: 3,000 idle connections, 470,000 objects, 520 ms per full collection).

Two measures, applied when the app starts unless `--gc-tuning 0`:
- `gc.freeze()` after start-up moves everything that exists then (modules,
  classes, the app) out of the collector's sight;
- a higher generation-0 threshold: far fewer young collections, so far fewer
  short-lived objects (messages in flight) get promoted, which is what makes
  full collections come around.
`pauses` (via `gc.callbacks`) feeds the pause histogram in /metrics.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

YOUNG_THRESHOLD = 50_000  # default 700
MIDDLE_THRESHOLD = 20  # default 10
OLD_THRESHOLD = 100  # default 10


def tune() -> None:
    """Freeze what exists now and raise the thresholds. Call once, after start-up."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)


class PauseTimer:
    """Times every collection; `observe(generation, seconds)` is called after each."""

    def __init__(self, observe: Callable[[int, float], None]) -> None:
        self.observe = observe
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.observe(info["generation"], time.perf_counter() - self._started)

    def install(self) -> None:
        gc.callbacks.append(self)

    def remove(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)
