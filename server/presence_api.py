"""The presence API: who is in a room now, cluster-wide (`ysync.server.presence`).

- `GET /api/rooms/{room}/presence`: `{"room", "users": [...]}`, one entry per
  verified user (`userId`, `name`, `role`, optional `avatar`/`color`,
  `connections`, `since`, `lastActive` as Unix seconds, `idle` after
  `--presence-idle-after`), the client's own fields under `state`.
- `GET /api/presence?room=a&room=b`: the same for up to 100 rooms at once.
- `GET /api/users/{userId}/presence`: the rooms a user is in now.
- `POST /api/rooms/{room}/presence` (editor+): presence for an agent with no
  WebSocket, `{"state": {...}, "ttl": seconds}`; `DELETE
  /api/rooms/{room}/presence/{presenceId}` ends it (`ysync.server.agent_presence`).

An unknown room is an empty list (rooms exist implicitly). Readers of a room
(viewer and up: they see the same in the room's awareness) may ask about it; a
user's rooms need a node-wide owner grant ("*"). With `--auth
none`, open like the rest of /api.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ysync.rooms.hooks import Role
from ysync.rooms.vocabulary import CloseCode, Refusal, Refused
from ysync.server.admission import room_name_refusal
from ysync.server.agent_presence import MAX_TTL, MIN_TTL, StateRefused
from ysync.server.auth import ALL_ROOMS
from ysync.server.openapi import ROOM, json_body, json_response, operation, path_param, query
from ysync.server.presence import presence_of
from ysync.server.routing import ApiError, caller, node_of, room_of

MAX_BATCH = 100
MAX_AGENT_BODY = 16 * 1024  # a state is at most --awareness-state-bytes anyway
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
        refusal = room_name_refusal(room)  # the rules of every room name
        if refusal is not None:
            raise Refused(refusal)
    names = list(dict.fromkeys(rooms))
    for room in names:
        await caller(request, room, Role.VIEWER)
    return JSONResponse({"rooms": await presence_of(node_of(request)).rooms_users(names)})


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


@operation(
    "Show presence for a participant without a WebSocket (an AI agent, a backend job)",
    tag="presence",
    parameters=[ROOM],
    body=json_body(
        {
            "type": "object",
            "properties": {
                "state": {"type": "object", "description": "its awareness fields (cursor, ...)"},
                "ttl": {
                    "type": "number",
                    "minimum": MIN_TTL,
                    "maximum": MAX_TTL,
                    "description": f"seconds it stays ({MIN_TTL}-{MAX_TTL}, default 60)",
                },
            },
        }
    ),
    responses={
        201: json_response(
            "It is in the room's awareness now, with the caller's verified identity",
            {
                "type": "object",
                "required": ["presenceId", "clientId", "expiresAt"],
                "properties": {
                    "presenceId": {"type": "string"},
                    "clientId": {"type": "integer"},
                    "expiresAt": {"type": "number"},
                },
            },
        )
    },
    errors=(400, 401, 403, 409, 413, 503),
)
async def create_agent(request: Request) -> Response:
    name = room_of(request)
    identity = await caller(request, name, Role.EDITOR)
    body = await request.body()
    if len(body) > MAX_AGENT_BODY:
        raise Refused(Refusal(CloseCode.TOO_LARGE, f"body over {MAX_AGENT_BODY} bytes"))
    state, ttl = _agent_fields(body)
    node = node_of(request)
    agents = presence_of(node).agents
    if agents is None:
        raise ApiError(503, "not_started", "the node is starting")
    try:
        agent = await agents.add(name, identity, state, ttl)
    except StateRefused as exc:
        raise Refused(Refusal(CloseCode.TOO_LARGE, str(exc))) from None
    except ValueError as exc:
        raise ApiError(409, "too_many_agents", str(exc)) from None
    return JSONResponse(
        {
            "presenceId": agent.presence_id,
            "clientId": agent.client_id,
            "expiresAt": agent.expires_at,
        },
        status_code=201,
    )


@operation(
    "Remove an agent's presence (on the node that created it)",
    tag="presence",
    parameters=[ROOM, path_param("presenceId", "what the POST returned")],
    responses={204: {"description": "Gone from every client's awareness"}},
    errors=(400, 401, 403, 404),
)
async def delete_agent(request: Request) -> Response:
    name = room_of(request)
    identity = await caller(request, name, Role.EDITOR)
    agents = presence_of(node_of(request)).agents
    presence_id = request.path_params["presenceId"]
    agent = agents.by_id.get(presence_id) if agents is not None else None
    if agents is None or agent is None or agent.room.name != name:
        raise ApiError(404, "no_such_presence", "presenceId: no such agent presence on this node")
    if agent.identity.user_id != identity.user_id and not identity.can_manage:
        raise Refused(Refusal(CloseCode.FORBIDDEN, "only its creator or the room's owner"))
    agents.remove(presence_id)
    return Response(status_code=204)


def _agent_fields(body: bytes) -> tuple[dict[str, object], float]:
    try:
        data = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        raise ApiError(400, "invalid_json", "the body is not JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_body", 'the body must be {"state": {...}, "ttl": seconds}')
    state = data.get("state", {})
    if not isinstance(state, dict):
        raise ApiError(400, "invalid_state", "state: must be a JSON object")
    ttl = data.get("ttl", 60)
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not MIN_TTL <= ttl <= MAX_TTL:
        raise ApiError(400, "invalid_ttl", f"ttl: seconds from {MIN_TTL} to {MAX_TTL}")
    return state, float(ttl)


routes = [
    Route("/api/rooms/{room}/presence", room_presence, methods=["GET"]),
    Route("/api/rooms/{room}/presence", create_agent, methods=["POST"]),
    Route("/api/rooms/{room}/presence/{presenceId}", delete_agent, methods=["DELETE"]),
    Route("/api/presence", batch_presence),
    Route("/api/users/{userId}/presence", user_presence),
]
