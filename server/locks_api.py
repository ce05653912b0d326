"""The element locks API (`ysync.server.locks`).

- `POST /api/rooms/{room}/locks/{elementId}` `{"ttl": seconds}` (editor+):
  200 with the lock and its `fence`, or 409 `{"code": "locked", "holder": {...}}`.
- `DELETE /api/rooms/{room}/locks/{elementId}[?fence=n]` (editor+): releases the
  caller's own lock; the room's owner may release anyone's (force).
- `GET /api/rooms/{room}/locks` (viewer+): `{"locks": [...]}`.
"""

from __future__ import annotations

import time

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ysync.presence.locks import MAX_TTL, MIN_TTL, Lock, LockError, check_element, check_ttl
from ysync.rooms.hooks import Role
from ysync.rooms.vocabulary import CloseCode, Refusal, Refused
from ysync.server.locks import locks_of
from ysync.server.openapi import ROOM, json_body, json_response, operation, path_param, query
from ysync.server.routing import ApiError, caller, node_of, room_of

MAX_LOCKS_PER_ROOM = 1000
ELEMENT = path_param("elementId", "the locked element's id (1-256 bytes; `/` written `%2F`)")
_LOCK = {
    "type": "object",
    "required": ["elementId", "userId", "name", "since", "expiresAt", "fence"],
    "properties": {
        "elementId": {"type": "string"},
        "userId": {"type": "string"},
        "name": {"type": "string"},
        "since": {"type": "number"},
        "expiresAt": {"type": "number"},
        "fence": {"type": "integer", "description": "fencing token: larger for every acquisition"},
        "clientId": {"type": "integer"},
    },
}


def _element(request: Request) -> str:
    try:
        # As room names: a "/" in it arrives as %2F (the router decodes the rest).
        return check_element(str(request.path_params["elementId"]).replace("%2F", "/"))
    except LockError as exc:
        raise ApiError(400, "invalid_element", str(exc)) from None


@operation(
    "Lock an element (one holder across the cluster)",
    tag="locks",
    parameters=[ROOM, ELEMENT],
    body=json_body(
        {
            "type": "object",
            "properties": {
                "ttl": {"type": "number", "minimum": MIN_TTL, "maximum": MAX_TTL},
            },
        },
        required=False,
    ),
    responses={200: json_response("Yours, with its fencing token", _LOCK)},
    errors=(400, 401, 403, 409, 503),
)
async def acquire(request: Request) -> JSONResponse:
    room = room_of(request)
    element = _element(request)
    identity = await caller(request, room, Role.EDITOR)
    body = await request.body()
    if len(body) > 4096:
        raise ApiError(400, "invalid_body", 'the body is {"ttl": seconds}')
    try:
        data = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        raise ApiError(400, "invalid_json", "the body is not JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_body", 'the body is {"ttl": seconds}')
    try:
        ttl = check_ttl(data.get("ttl"))
    except LockError as exc:
        raise ApiError(400, "invalid_ttl", str(exc)) from None
    user = identity.user_id or "anonymous"
    lock = Lock(element, user, identity.name or user, time.time(), 0.0, 0, "api")
    locks = locks_of(node_of(request))
    if len(await locks.backend.locks(room)) >= MAX_LOCKS_PER_ROOM:
        # Every client downloads the room's lock state: keep it small.
        raise ApiError(409, "too_many_locks", f"the room holds {MAX_LOCKS_PER_ROOM} locks already")
    won, holder = await locks.acquire(room, lock, ttl)
    if not won:
        return JSONResponse(
            {
                "error": f"elementId: locked by {holder.name}",
                "code": "locked",
                "holder": holder.public(),
            },
            status_code=409,
        )
    return JSONResponse(holder.public())


@operation(
    "Release a lock (yours; the room's owner: anyone's)",
    tag="locks",
    parameters=[
        ROOM,
        ELEMENT,
        query(
            "fence", "release only this acquisition", {"type": "string", "pattern": "^[0-9]{1,18}$"}
        ),
    ],
    responses={204: {"description": "Released"}},
    errors=(400, 401, 403, 404, 503),
)
async def release(request: Request) -> Response:
    room = room_of(request)
    element = _element(request)
    identity = await caller(request, room, Role.EDITOR)
    fence_text = request.query_params.get("fence")
    fence = None
    if fence_text is not None:
        if not fence_text.isdigit() or len(fence_text) > 18:
            raise ApiError(400, "invalid_fence", "fence: the integer the lock was acquired with")
        fence = int(fence_text)
    locks = locks_of(node_of(request))
    current = {lock.element: lock for lock in await locks.backend.locks(room)}.get(element)
    if current is None or (fence is not None and current.fence != fence):
        raise ApiError(404, "not_locked", "elementId: not locked (or not with that fence)")
    user = identity.user_id or "anonymous"
    if current.user_id != user and not identity.can_manage:
        raise Refused(
            Refusal(
                CloseCode.FORBIDDEN,
                f"locked by {current.name}: only they or the room's owner may release it",
            )
        )
    if await locks.release(room, element, current.fence) is None:
        raise ApiError(404, "not_locked", "elementId: not locked any more")
    return Response(status_code=204)


@operation(
    "The room's locks",
    tag="locks",
    parameters=[ROOM],
    responses={
        200: json_response(
            '{"locks": [...]}',
            {"type": "object", "properties": {"locks": {"type": "array", "items": _LOCK}}},
        )
    },
    errors=(400, 401, 403, 503),
)
async def list_locks(request: Request) -> JSONResponse:
    room = room_of(request)
    await caller(request, room, Role.VIEWER)
    locks = await locks_of(node_of(request)).backend.locks(room)
    return JSONResponse(
        {"locks": [lock.public() for lock in sorted(locks, key=lambda lock: lock.element)]}
    )


routes = [
    Route("/api/rooms/{room}/locks", list_locks, methods=["GET"]),
    Route("/api/rooms/{room}/locks/{elementId}", acquire, methods=["POST"]),
    Route("/api/rooms/{room}/locks/{elementId}", release, methods=["DELETE"]),
]
