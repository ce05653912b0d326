"""Graceful drain: what a node does between SIGTERM (or SIGINT) and its exit.

    signal ─▶ not ready: /readyz answers 503 "draining", new WebSockets get 1012
           ─▶ --drain-seconds: connected clients keep editing while the load
              balancer sees /readyz fail and stops routing here
           ─▶ every connection is closed with 1012 "server restarting": the JS
              provider and the SDK reconnect (elsewhere, or here once restarted)
              and re-send whatever this node had not applied
           ─▶ everything accepted is committed (group-commit flush)
           ─▶ the signal goes on to uvicorn: it stops listening, then the app's
              lifespan unloads the rooms and closes the bus and the store
    all within --shutdown-timeout of the signal. Past it the process logs what
    it could not commit and exits with status 1 (the clients that sent those
    edits still hold them and re-send them when they reconnect).

A second SIGINT (Ctrl-C again) skips the rest of the drain wait. Repeated
SIGTERMs change nothing: systemd and uvicorn's `--workers` supervisor may both
send one. With `--workers N` the supervisor passes SIGTERM on to every worker
and waits for them; each worker drains itself, so all behave as one node would.

`create_app(..., handle_signals=True)` (what `ysync serve` uses) installs this
in the app's lifespan, after uvicorn installed its own handlers, and hands the
signal back to them once drained. A host app serving ysync some other way can
call `await Drain(node, ...).run()` from its own shutdown instead.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

from ysync.rooms.vocabulary import CloseCode, Refusal

if TYPE_CHECKING:
    from ysync.server.app import Node

log = logging.getLogger("ysync.server")

RESTART = Refusal(CloseCode.SERVICE_RESTART, "server restarting")
# Seconds for clients to answer our close frames (one round trip); uvicorn drops
# the connections still open afterwards.
CLOSE_WAIT = 5.0
EXIT_DEADLINE_PASSED = 1
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Drain:
    """The drain of one node. `install()` to run it on SIGTERM/SIGINT, or `await run()`."""

    def __init__(
        self,
        node: Node,
        *,
        drain_seconds: float,
        shutdown_timeout: float,
        hard_exit: Callable[[int], Any] = os._exit,
    ) -> None:
        self.node = node
        self.drain_seconds = drain_seconds
        self.shutdown_timeout = shutdown_timeout
        self._hard_exit = hard_exit
        self._skip = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._watchdog: threading.Timer | None = None
        self._previous: dict[int, Any] = {}

    # -- signals ------------------------------------------------------------------------

    def install(self) -> bool:
        """Handle SIGTERM and SIGINT from now on; False (and nothing done) off the
        main thread, where Python cannot handle signals."""
        if threading.current_thread() is not threading.main_thread():
            log.warning("not on the main thread: SIGTERM/SIGINT will not drain this node")
            return False
        loop = asyncio.get_running_loop()

        def handler(sig: int, frame: FrameType | None) -> None:
            loop.call_soon_threadsafe(self.signalled, sig)

        for sig in HANDLED_SIGNALS:
            self._previous[sig] = signal.signal(sig, handler)
        return True

    def uninstall(self) -> None:
        """Give SIGTERM and SIGINT back to whoever handled them before `install`."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def signalled(self, sig: int) -> None:
        """A signal arrived (on the event loop): start draining, or skip the wait."""
        name = signal.Signals(sig).name
        if self._task is None:
            self._task = asyncio.create_task(self.run(sig), name="drain")
        elif sig == signal.SIGINT and not self._skip.is_set():
            log.warning("%s again: closing connections now", name)
            self.skip_wait()
        else:
            log.info("%s ignored: already draining", name)

    def skip_wait(self) -> None:
        """End the --drain-seconds wait now (what a second Ctrl-C does)."""
        self._skip.set()

    # -- the drain ----------------------------------------------------------------------

    async def run(self, sig: int | None = None) -> None:
        """Drain the node. Started by a signal, it also enforces the deadline and
        then hands the signal on; called directly, it only drains."""
        started = time.monotonic()
        deadline = started + self.shutdown_timeout
        if sig is not None:
            self._start_watchdog()
        node = self.node
        node.draining = True
        log.warning(
            "draining%s: not ready, new connections refused; closing %d connections in "
            "%.1f s; exit within %.1f s",
            f" on {signal.Signals(sig).name}" if sig is not None else "",
            node.endpoint.connections,
            self.drain_seconds,
            self.shutdown_timeout,
            extra={"drain_seconds": self.drain_seconds},
        )
        if self.drain_seconds > 0:
            try:
                async with asyncio.timeout(self.drain_seconds):
                    await self._skip.wait()
            except TimeoutError:
                pass
        closed = node.endpoint.close_all(RESTART)
        wait = max(0.0, min(CLOSE_WAIT, deadline - time.monotonic()))
        if not await node.endpoint.wait_closed(wait):
            log.warning(
                "%d clients did not answer the close within %.1f s; dropping them",
                node.endpoint.connections,
                wait,
            )
        pending = node.update_log.pending_bytes
        await node.update_log.flush()
        log.info(
            "drained in %.2f s: %d connections closed with 1012, last %d bytes of updates "
            "committed",
            time.monotonic() - started,
            closed,
            pending,
        )
        if sig is not None:
            self._hand_on(sig)

    def _hand_on(self, sig: int) -> None:
        # uvicorn's handler (or whoever's was there) now does what it would have
        # done with the signal: stop listening, then run the lifespan shutdown.
        self.uninstall()
        signal.raise_signal(sig)

    # -- the deadline -------------------------------------------------------------------

    def _start_watchdog(self) -> None:
        # A thread, not a task: it must fire even if the event loop is stuck.
        if self._watchdog is not None:
            return
        self._watchdog = threading.Timer(self.shutdown_timeout, self._deadline_passed)
        self._watchdog.daemon = True
        self._watchdog.start()

    def cancel_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()

    def _deadline_passed(self) -> None:
        pending = self.node.update_log.pending_bytes
        log.error(
            "shutdown deadline (%.1f s) passed: exiting with %d bytes of accepted updates "
            "not committed; their clients re-send them when they reconnect",
            self.shutdown_timeout,
            pending,
            extra={"pending_bytes": pending},
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        self._hard_exit(EXIT_DEADLINE_PASSED)
