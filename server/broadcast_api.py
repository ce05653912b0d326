"""`POST /api/rooms/{room}/broadcast`: a stateless message from a backend to a room's clients.

What Hocuspocus's `document.broadcastStateless(payload)` does from server code:
every Hocuspocus client of the room, on every node, gets the payload as a
stateless message (the provider's `onStateless`). y-websocket clients have no
such message and get nothing. Needs the owner role (a backend's node-wide
token): it reaches every client of the room and no hook vets it.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ysync.rooms.hooks import Role
from ysync.rooms.vocabulary import CloseCode, Refusal, Refused
from ysync.server.openapi import ROOM, json_body, json_response, operation
from ysync.server.routing import ApiError, caller, node_of, room_of

MAX_PAYLOAD_BYTES = 1024 * 1024  # a stateless message is a signal, not a document


@operation(
    "Send a stateless message to the room's Hocuspocus clients (every node)",
    tag="rooms",
    parameters=[ROOM],
    body=json_body(
        {
            "type": "object",
            "required": ["payload"],
            "properties": {
                "payload": {"type": "string", "description": "any text, often JSON"},
            },
        }
    ),
    responses={
        200: json_response(
            "Sent",
            {
                "type": "object",
                "required": ["delivered"],
                "properties": {
                    "delivered": {
                        "type": "integer",
                        "description": "clients of this node that got it (other nodes' get it too)",
                    }
                },
            },
        )
    },
    errors=(400, 401, 403, 409, 413, 503),
)
async def broadcast(request: Request) -> JSONResponse:
    """The payload reaches the room's Hocuspocus clients here and, over the bus, elsewhere."""
    name = room_of(request)
    await caller(request, name, Role.OWNER)
    node = node_of(request)
    payload = _payload(await request.body())
    if node.hocuspocus is None:
        raise ApiError(409, "hocuspocus_off", "the Hocuspocus protocol is off (--no-hocuspocus)")
    room = node.registry.rooms.get(name)
    if room is None:
        node.replicator.publish_stateless(name, payload)  # other nodes may hold it
        return JSONResponse({"delivered": 0})
    return JSONResponse({"delivered": node.hocuspocus.broadcast_stateless(room, payload)})


def _payload(body: bytes) -> str:
    if len(body) > MAX_PAYLOAD_BYTES + 64:
        raise Refused(Refusal(CloseCode.TOO_LARGE, f"payload over {MAX_PAYLOAD_BYTES} bytes"))
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiError(400, "invalid_json", "the body is not JSON") from None
    payload = data.get("payload") if isinstance(data, dict) else None
    if not isinstance(payload, str):
        raise ApiError(400, "invalid_payload", 'the body must be {"payload": "<text>"}')
    if len(payload.encode("utf-8")) > MAX_PAYLOAD_BYTES:
        raise Refused(Refusal(CloseCode.TOO_LARGE, f"payload over {MAX_PAYLOAD_BYTES} bytes"))
    return payload


routes = [Route("/api/rooms/{room}/broadcast", broadcast, methods=["POST"])]
