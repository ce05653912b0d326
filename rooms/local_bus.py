"""In-process fan-out bus: the default when no Redis is configured.

Buses created on one `LocalHub` deliver to each other (several nodes in one
process, as in tests); a bus with a private hub is a single node and its
publishes go nowhere.
"""

from __future__ import annotations

import logging

from ysync.rooms.protocols import BusHandler

log = logging.getLogger("ysync.bus")


class LocalHub:
    def __init__(self) -> None:
        self.subscribers: dict[str, dict[LocalBus, BusHandler]] = {}


class LocalBus:
    """A `Bus` delivering synchronously to the other buses of its hub."""

    def __init__(self, hub: LocalHub | None = None) -> None:
        self._hub = hub or LocalHub()

    def describe(self) -> str:
        return "in-process fan-out (single node)"

    async def subscribe(self, room: str, handler: BusHandler) -> None:
        self._hub.subscribers.setdefault(room, {})[self] = handler

    async def unsubscribe(self, room: str) -> None:
        handlers = self._hub.subscribers.get(room, {})
        handlers.pop(self, None)
        if not handlers:
            self._hub.subscribers.pop(room, None)

    def publish(self, room: str, kind: str, payload: bytes) -> None:
        for bus, handler in list(self._hub.subscribers.get(room, {}).items()):
            if bus is not self:
                try:
                    handler(room, kind, payload)
                except Exception:
                    log.exception("bus handler failed", extra={"room": room})

    async def close(self) -> None:
        for handlers in self._hub.subscribers.values():
            handlers.pop(self, None)
