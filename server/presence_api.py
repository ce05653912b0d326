"""The presence API: who is in a room now, cluster-wide (`ysync.server.presence`).

- `GET /api/rooms/{room}/presence`: `{"room", "users": [...]}`, one entry per
  verified user (`userId`, `name`, `role`, optional `avatar`/`color`,
  `connections`, `since`, `lastActive` as Unix seconds, `idle` after
  `--presence-idle-after`), the client's own fields under `state`.
- `GET /api/presence?room=a&room=b`: the same for up to 100 rooms at once.
- `GET /api/users/{userId}/presence`: the rooms a user is in now.

An unknown room is an empty list (rooms exist implicitly). Readers of a room
(viewer and up: they see the same in the room's awareness) may ask about it; a
user's rooms need a node-wide owner grant ("*"). With `--auth
none`, open like the rest of /api.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ysync.rooms.hooks import Role
from ysync.server.auth import ALL_ROOMS
from ysync.server.openapi import ROOM, json_response, operation, path_param, query
from ysync.server.presence import presence_of
from ysync.server.routing import ApiError, caller, node_of, room_of

MAX_BATCH = 100
_USER = {
    "type": "object",
    "required": ["userId", "name", "role", "connections", "since", "lastActive", "idle"],
    "properties": {
        "userId": {"type": "string"},
        "name": {"type": "string"},
        "role": {"type": "string"},
        "avatar": {"type": "string"},
        "color": {"type": "string"},
        "anonymous": {"type": "boolean"},
        "connections": {"type": "integer"},
        "since": {"type": "number"},
        "lastActive": {"type": "number"},
        "idle": {"type": "boolean"},
        "state": {"type": "object", "description": "the client's own awareness fields"},
    },
}
_ROOM_PRESENCE = {
    "type": "object",
    "required": ["room", "users"],
    "properties": {"room": {"type": "string"}, "users": {"type": "array", "items": _USER}},
}


@operation(
    "Who is in a room now (any node)",
    tag="presence",
    parameters=[ROOM],
    responses={
        200: json_response("One entry per user, most recently active first", _ROOM_PRESENCE)
    },
    errors=(400, 401, 403),
)
async def room_presence(request: Request) -> JSONResponse:
    room = room_of(request)
    await caller(request, room, Role.VIEWER)
    users = await presence_of(node_of(request)).room_users(room)
    return JSONResponse({"room": room, "users": users})


@operation(
    "Who is in each of several rooms now",
    tag="presence",
    parameters=[query("room", f"a room name; repeat for up to {MAX_BATCH} rooms")],
    responses={
        200: json_response(
            '{"rooms": {name: users}}',
            {
                "type": "object",
                "properties": {
                    "rooms": {
                        "type": "object",
                        "additionalProperties": {"type": "array", "items": _USER},
                    }
                },
            },
        )
    },
    errors=(400, 401, 403),
)
async def batch_presence(request: Request) -> JSONResponse:
    rooms = request.query_params.getlist("room")
    if not rooms:
        raise ApiError(400, "missing_room", "give at least one room: ?room=a&room=b")
    if len(rooms) > MAX_BATCH:
        raise ApiError(400, "too_many_rooms", f"room: at most {MAX_BATCH} rooms per request")
    for room in rooms:
        if not room or len(room) > 512 or any(ord(c) < 0x20 or ord(c) == 0x7F for c in room):
            raise ApiError(400, "bad_room", "room: a name of 1-512 printable characters")
    presence = presence_of(node_of(request))
    answer = {}
    for room in dict.fromkeys(rooms):
        await caller(request, room, Role.VIEWER)
        answer[room] = await presence.room_users(room)
    return JSONResponse({"rooms": answer})


@operation(
    "The rooms a user is in now (any node)",
    tag="presence",
    parameters=[path_param("userId", "the user's id (the token's `sub`)")],
    responses={
        200: json_response(
            '{"userId", "rooms": [name, ...]}',
            {
                "type": "object",
                "properties": {
                    "userId": {"type": "string"},
                    "rooms": {"type": "array", "items": {"type": "string"}},
                },
            },
        )
    },
    errors=(400, 401, 403),
)
async def user_presence(request: Request) -> JSONResponse:
    user_id = request.path_params["userId"]
    if not user_id or len(user_id) > 256:
        raise ApiError(400, "bad_user_id", "userId: 1-256 characters")
    await caller(request, ALL_ROOMS, Role.OWNER)  # it spans rooms: a node-wide grant
    rooms = await presence_of(node_of(request)).user_rooms(user_id)
    return JSONResponse({"userId": user_id, "rooms": rooms})


routes = [
    Route("/api/rooms/{room}/presence", room_presence),
    Route("/api/presence", batch_presence),
    Route("/api/users/{userId}/presence", user_presence),
]
