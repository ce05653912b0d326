"""Activity reports from finished sessions (pure): per-user counts, peak concurrency,
rooms by activity, daily active users. Sessions come from the store's
`activity` (`ysync.persistence.activity_sql.SessionRow`); times are Unix seconds."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol


class Session(Protocol):
    @property
    def room(self) -> str: ...
    @property
    def user_id(self) -> str | None: ...
    @property
    def node(self) -> str: ...
    @property
    def connected_at(self) -> float: ...
    @property
    def disconnected_at(self) -> float: ...
    @property
    def updates(self) -> int: ...
    @property
    def bytes(self) -> int: ...


def session_json(session: Session) -> dict[str, Any]:
    return {
        "userId": session.user_id,
        "node": session.node,
        "connected": session.connected_at,
        "disconnected": session.disconnected_at,
        "duration": round(session.disconnected_at - session.connected_at, 3),
        "updates": session.updates,
        "bytes": session.bytes,
    }


def per_user(sessions: Iterable[Session]) -> list[dict[str, Any]]:
    """Sessions, updates and bytes per user, most updates first (None: anonymous)."""
    users: dict[str | None, dict[str, Any]] = {}
    for s in sessions:
        entry = users.setdefault(
            s.user_id,
            {"userId": s.user_id, "sessions": 0, "updates": 0, "bytes": 0, "seconds": 0.0},
        )
        entry["sessions"] += 1
        entry["updates"] += s.updates
        entry["bytes"] += s.bytes
        entry["seconds"] = round(entry["seconds"] + s.disconnected_at - s.connected_at, 3)
    return sorted(users.values(), key=lambda e: (-e["updates"], str(e["userId"])))


def peak_concurrent_users(sessions: Sequence[Session]) -> int:
    """The most distinct users connected at one moment."""
    edges = sorted(
        [(s.connected_at, 1, s.user_id or f"anon-{i}") for i, s in enumerate(sessions)]
        + [(s.disconnected_at, -1, s.user_id or f"anon-{i}") for i, s in enumerate(sessions)],
        key=lambda edge: (edge[0], edge[1]),  # a leave before a join at the same instant
    )
    open_sessions: dict[str, int] = {}
    peak = 0
    for _, change, user in edges:
        open_sessions[user] = open_sessions.get(user, 0) + change
        if open_sessions[user] <= 0:
            del open_sessions[user]
        peak = max(peak, len(open_sessions))
    return peak


def rooms_by_activity(sessions: Iterable[Session], limit: int = 100) -> list[dict[str, Any]]:
    rooms: dict[str, dict[str, Any]] = {}
    for s in sessions:
        entry = rooms.setdefault(
            s.room, {"room": s.room, "sessions": 0, "updates": 0, "users": set()}
        )
        entry["sessions"] += 1
        entry["updates"] += s.updates
        entry["users"].add(s.user_id)
    ranked = sorted(rooms.values(), key=lambda e: (-e["updates"], -e["sessions"], e["room"]))
    return [{**e, "users": len(e["users"])} for e in ranked[:limit]]


def daily_active_users(sessions: Iterable[Session]) -> list[dict[str, Any]]:
    """Distinct users per UTC day (the day a session began)."""
    days: dict[int, set[str | None]] = {}
    for s in sessions:
        days.setdefault(int(s.connected_at // 86400), set()).add(s.user_id)
    return [{"day": day * 86400, "users": len(users)} for day, users in sorted(days.items())]
