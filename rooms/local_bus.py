"""In-process fan-out bus: the default when no Redis is configured.

Buses created on one `LocalHub` deliver to each other (several nodes in one
process, as in tests); a bus with a private hub is a single node and its
publishes go nowhere.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

from ysync.rooms.protocols import Envelope, EnvelopeHandler

log = logging.getLogger("ysync.bus")


class LocalHub:
    def __init__(self) -> None:
        self.subscribers: dict[str, dict[LocalBus, EnvelopeHandler]] = {}
        self.nodes: set[str] = set()
        self.dropping: set[str] = set()  # node ids whose publishes are lost (tests)
        self.in_flight = 0

    async def settled(self, timeout: float = 5.0) -> None:
        """Wait until every published message (and what it caused) was delivered."""
        async with asyncio.timeout(timeout):
            while self.in_flight:
                await asyncio.sleep(0)


class LocalBus:
    """A `Bus` delivering synchronously to the other buses of its hub."""

    def __init__(self, hub: LocalHub | None = None, node_id: str | None = None) -> None:
        self._hub = hub or LocalHub()
        self.node_id = node_id or uuid.uuid4().hex[:12]
        self._hub.nodes.add(self.node_id)
        self.on_reconnect: Callable[[], None] = lambda: None  # never disconnects
        self.reconnects = 0

    def describe(self) -> str:
        return "in-process (single node)"

    def health(self) -> str | None:
        return None

    async def run(self) -> None:
        """Nothing to keep up: delivery is a function call."""

    @property
    def alone(self) -> bool:
        return len(self._hub.nodes) <= 1

    async def subscribe(self, room: str, handler: EnvelopeHandler) -> None:
        self._hub.subscribers.setdefault(room, {})[self] = handler

    async def unsubscribe(self, room: str) -> None:
        handlers = self._hub.subscribers.get(room, {})
        handlers.pop(self, None)
        if not handlers:
            self._hub.subscribers.pop(room, None)

    def publish(self, envelope: Envelope) -> None:
        if self.node_id in self._hub.dropping:
            return
        # Delivered on a later loop turn, as by a real broker: never inside the
        # publisher's document transaction.
        loop = asyncio.get_running_loop()
        for bus, handler in list(self._hub.subscribers.get(envelope.room, {}).items()):
            if bus is not self:
                self._hub.in_flight += 1
                loop.call_soon(self._deliver, handler, envelope)

    def _deliver(self, handler: EnvelopeHandler, envelope: Envelope) -> None:
        try:
            handler(envelope)
        except Exception:
            log.exception("bus handler failed", extra={"room": envelope.room})
        finally:
            self._hub.in_flight -= 1

    async def peers_holding(self, room: str) -> int:
        return sum(1 for bus in self._hub.subscribers.get(room, {}) if bus is not self)

    async def alive(self, nodes: set[str]) -> set[str]:
        return nodes & self._hub.nodes

    async def close(self) -> None:
        self._hub.nodes.discard(self.node_id)
        for handlers in self._hub.subscribers.values():
            handlers.pop(self, None)
