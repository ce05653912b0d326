"""The activity API (`ysync.server.activity`), from finished sessions.

- `GET /api/rooms/{room}/activity?since=&until=` (the room's owner): its sessions,
  per-user counts and the peak of concurrent users.
- `GET /api/activity?since=` (a node-wide owner token): rooms by activity and
  daily active users.

`since`/`until` are Unix seconds (default: the last 24 hours, now).
"""

from __future__ import annotations

import math
import time

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ysync.persistence.activity_sql import SessionRow
from ysync.presence import activity as report
from ysync.rooms.hooks import Role
from ysync.server.activity import activity_of
from ysync.server.auth import ALL_ROOMS
from ysync.server.openapi import ROOM, json_response, operation, query
from ysync.server.routing import ApiError, caller, node_of, room_of

_TIME = {"type": "string", "pattern": "^[0-9]{1,12}(\\.[0-9]{1,6})?$"}
_OBJECT = {"type": "object"}


def _time(request: Request, name: str, default: float) -> float:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or len(text) > 20:
        raise ApiError(400, f"invalid_{name}", f"{name}: Unix seconds")
    return value


async def _sessions(request: Request, room: str | None) -> tuple[float, float, list[SessionRow]]:
    now = time.time()
    since = _time(request, "since", now - 86400)
    until = _time(request, "until", now)
    if until < since:
        raise ApiError(400, "invalid_until", "until: not before since")
    store = activity_of(node_of(request)).store
    if store is None:
        raise ApiError(503, "no_activity_store", "this store keeps no activity")
    return since, until, await store.sessions(room, since, until)


@operation(
    "A room's activity: sessions, per-user counts, peak concurrent users",
    tag="activity",
    parameters=[
        ROOM,
        query("since", "Unix seconds (default: 24 h ago)", _TIME),
        query("until", "Unix seconds (default: now)", _TIME),
    ],
    responses={200: json_response("Finished sessions overlapping the period", _OBJECT)},
    errors=(400, 401, 403, 503),
)
async def room_activity(request: Request) -> JSONResponse:
    room = room_of(request)
    await caller(request, room, Role.OWNER)
    since, until, sessions = await _sessions(request, room)
    store = activity_of(node_of(request)).store
    authors = await store.authors(room, since, until) if store is not None else []
    return JSONResponse(
        {
            "room": room,
            "authors": [
                {"userId": user, "updates": count, "bytes": size}
                for user, count, size in sorted(authors, key=lambda a: (-a[1], str(a[0])))
            ],
            "since": since,
            "until": until,
            "sessions": [report.session_json(s) for s in sessions],
            "users": report.per_user(sessions),
            "peakConcurrentUsers": report.peak_concurrent_users(sessions),
        }
    )


@operation(
    "Activity across rooms: rooms by activity, daily active users",
    tag="activity",
    parameters=[query("since", "Unix seconds (default: 24 h ago)", _TIME)],
    responses={200: json_response("From finished sessions", _OBJECT)},
    errors=(400, 401, 403, 503),
)
async def node_activity(request: Request) -> JSONResponse:
    await caller(request, ALL_ROOMS, Role.OWNER)
    since, _, sessions = await _sessions(request, None)
    return JSONResponse(
        {
            "since": since,
            "rooms": report.rooms_by_activity(sessions),
            "dailyActiveUsers": report.daily_active_users(sessions),
        }
    )


routes = [
    Route("/api/rooms/{room}/activity", room_activity),
    Route("/api/activity", node_activity),
]
