"""Who is in a room: awareness states folded into one entry per verified user.

Pure: the states come in as `ClientPresence` (a client id's state with the
wall-clock times it was first seen and last active), from this node's rooms or
from other nodes' published rosters, and come out as JSON-able users: a user
with three tabs is one user with `connections: 3`. The verified fields (the
server's `"ysync"` stamp: userId, name, role, avatar, color) are top-level;
what the client says about itself is under `state`, never mixed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

IDENTITY_KEY = "ysync"
_VERIFIED = ("userId", "name", "role", "avatar", "color", "anonymous")


@dataclass(frozen=True, slots=True)
class ClientPresence:
    """One awareness client id in a room, as a roster sees it."""

    client_id: int
    state: str  # the JSON text as stored (stamped)
    since: float  # Unix time it was first seen
    last_active: float  # Unix time of its latest awareness change or document edit

    def to_json(self) -> list[Any]:
        return [self.client_id, self.state, self.since, self.last_active]

    @classmethod
    def from_json(cls, value: Any) -> ClientPresence | None:
        """From `to_json`'s list; None when it is not one (another version's data)."""
        if not isinstance(value, list) or len(value) != 4:
            return None
        client_id, state, since, last_active = value
        if not isinstance(client_id, int) or not isinstance(state, str):
            return None
        if not isinstance(since, int | float) or not isinstance(last_active, int | float):
            return None
        return cls(client_id, state, float(since), float(last_active))


def users(
    clients: Iterable[ClientPresence], *, now: float, idle_after: float
) -> list[dict[str, Any]]:
    """One entry per user, most recently active first (see the module doc).

    `idle`: no awareness change or edit for `idle_after` seconds on any of the
    user's connections. `state` is the client fields of the most recently active one.
    States without a verified identity (relayed by an older node) are skipped."""
    by_user: dict[str, dict[str, Any]] = {}
    latest: dict[str, float] = {}
    for client in clients:
        parsed = split_state(client.state)
        if parsed is None:
            continue
        verified, fields = parsed
        user_id = verified["userId"]
        entry = by_user.get(user_id)
        if entry is None:
            entry = by_user[user_id] = {
                **verified,
                "connections": 0,
                "since": client.since,
                "lastActive": client.last_active,
            }
            latest[user_id] = -1.0
        entry["connections"] += 1
        entry["since"] = min(entry["since"], client.since)
        entry["lastActive"] = max(entry["lastActive"], client.last_active)
        if client.last_active > latest[user_id]:
            latest[user_id] = client.last_active
            entry["state"] = fields
    for entry in by_user.values():
        entry["idle"] = now - entry["lastActive"] >= idle_after
    return sorted(by_user.values(), key=lambda e: (-e["lastActive"], e["userId"]))


def split_state(state: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(verified fields, client fields) of a stamped state; None without a stamp."""
    try:
        value = orjson.loads(state)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    stamp = value.pop(IDENTITY_KEY, None)
    if not isinstance(stamp, dict) or not isinstance(stamp.get("userId"), str):
        return None
    verified = {key: stamp[key] for key in _VERIFIED if key in stamp}
    return verified, value
