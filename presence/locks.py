"""Element locks: the model and its rules (pure).

A lock says who holds an element of a room's document (a frame, a layer) for
now. Locks are advisory for the CRDT (edits are never refused) and
authoritative for who holds them: one holder per element across the cluster,
each acquisition with a fencing token that only grows, so a holder that lost
its lock (lease passed, force-released) can be told apart from the new one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

MAX_ELEMENT_BYTES = 256
MIN_TTL, MAX_TTL, DEFAULT_TTL = 1, 3600, 30  # seconds, REST locks
LEASE_SECONDS = 15.0  # a WebSocket holder's lease, renewed while it is connected
MAX_REQUESTED = 16  # elements one connection may ask for in its awareness
REQUEST_FIELD = "ysyncLocks"  # the awareness field a browser lists the elements it wants in


class LockError(ValueError):
    """A malformed lock request; `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Lock:
    element: str
    user_id: str
    name: str
    since: float  # Unix time
    expires_at: float  # Unix time
    fence: int  # the fencing token: larger for every acquisition in the room
    holder: str  # who may renew it: "<node>/<connection>" or "api"
    client_id: int | None = None  # the holding connection's awareness client id, if any

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: Any) -> Lock | None:
        try:
            return cls(**value)
        except TypeError:
            return None

    def public(self) -> dict[str, Any]:
        """What clients and the API see."""
        shown: dict[str, Any] = {
            "elementId": self.element,
            "userId": self.user_id,
            "name": self.name,
            "since": self.since,
            "expiresAt": self.expires_at,
            "fence": self.fence,
        }
        if self.client_id is not None:
            shown["clientId"] = self.client_id
        return shown


def check_element(element: str) -> str:
    if not element or len(element.encode("utf-8")) > MAX_ELEMENT_BYTES:
        raise LockError("elementId", f"elementId: 1 to {MAX_ELEMENT_BYTES} bytes")
    if any(ord(c) < 0x20 for c in element):
        raise LockError("elementId", "elementId: no control characters")
    return element


def check_ttl(value: Any) -> float:
    if value is None:
        return float(DEFAULT_TTL)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LockError("ttl", f"ttl: seconds from {MIN_TTL} to {MAX_TTL}")
    if not MIN_TTL <= value <= MAX_TTL:
        raise LockError("ttl", f"ttl: seconds from {MIN_TTL} to {MAX_TTL}")
    return float(value)


def requested(state: Any) -> set[str] | None:
    """The elements an awareness state asks to hold (`"ysyncLocks": [...]`);
    None when it says nothing about locks. Malformed requests ask for nothing."""
    if not isinstance(state, dict) or REQUEST_FIELD not in state:
        return None
    value = state[REQUEST_FIELD]
    if not isinstance(value, list):
        return set()
    wanted = set()
    for element in value[:MAX_REQUESTED]:
        if isinstance(element, str):
            try:
                wanted.add(check_element(element))
            except LockError:
                continue
    return wanted


def awareness_state(locks: list[Lock]) -> dict[str, Any]:
    """The server-owned awareness state every client of the room sees."""
    shown = {}
    for lock in locks:
        entry = lock.public()
        del entry["elementId"]
        shown[lock.element] = entry
    return {"ysync": {"locks": shown}}
