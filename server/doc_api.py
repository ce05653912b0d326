"""`/api/rooms/{room}/doc` and `/state-vector`: read and edit a document without a WebSocket.

Reading needs a viewer's role, editing an editor's (the token rules of
WebSocket connections). The room is loaded on this node for the request (as a
client joining would: from the store, and from the other nodes holding it), so
the answer is the cluster's current document; an edit is applied to it as a
server edit: broadcast to every client on every node and stored like any
other, under the size limits of WebSocket edits (`--max-message-bytes`,
`--max-document-bytes`). The JSON shapes: `ysync.rooms.doc_render` (reading)
and `ysync.rooms.doc_ops` (operations).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ysync.rooms import codec
from ysync.rooms.doc_ops import OpError, ops_update
from ysync.rooms.doc_render import render
from ysync.rooms.hooks import Role
from ysync.rooms.protocols import StoreError
from ysync.rooms.room import Room, Source
from ysync.rooms.vocabulary import CloseCode, Refused
from ysync.server.openapi import ROOM, json_response, operation, query
from ysync.server.routing import ApiError, caller, extension_of, node_of, read_body, room_of

if TYPE_CHECKING:
    from ysync.server.app import Node

OCTETS = "application/octet-stream"
_B64 = {"type": "string", "contentEncoding": "base64"}
STATE_VECTOR = {
    "type": "object",
    "required": ["state_vector"],
    "properties": {"state_vector": {**_B64, "description": "the document's Yjs state vector"}},
}
DOCUMENT = {
    "type": "object",
    "required": ["types", "content", "state_vector"],
    "properties": {
        "types": {
            "type": "object",
            "description": 'each root\'s type: "text", "map", "array", "xml" (null: empty)',
        },
        "content": {"type": "object", "description": "each root's content as JSON"},
        "state_vector": _B64,
    },
}
OPS = {
    "type": "object",
    "required": ["ops"],
    "properties": {
        "ops": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["op", "root"],
                "properties": {
                    "op": {"enum": ["set", "delete", "insert", "replace"]},
                    "root": {"type": "string", "minLength": 1},
                    "key": {"type": "string"},
                    "index": {"type": "integer", "minimum": 0},
                    "length": {"type": "integer", "minimum": 1},
                    "text": {"type": "string"},
                    "values": {"type": "array"},
                    "nodes": {"type": "array"},
                    "value": {},
                    "type": {"enum": ["text", "map", "array", "xml"]},
                },
            },
        }
    },
}


@contextlib.asynccontextmanager
async def opened(node: Node, name: str, *, writing: bool = False) -> AsyncIterator[Room]:
    """Room `name`, loaded for the request (it unloads after the grace if nobody joins).
    `writing`: refused (410) while the room is deleted (tombstoned)."""
    if writing:
        from ysync.server.lifecycle import DELETED, RoomLifecycle

        if await extension_of(node, RoomLifecycle).tombstoned(name):
            raise Refused(DELETED)
    try:
        room = await node.registry.acquire(name)
    except StoreError:
        raise Refused(CloseCode.TRY_AGAIN_LATER, "the store is unavailable") from None
    try:
        yield room
    finally:
        node.registry.release(name)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def state_vector_param(request: Request) -> bytes | None:
    value = request.query_params.get("stateVector")
    if value is None:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "invalid_state_vector", "stateVector is not base64") from None


@operation(
    "The document: JSON, HTML for XML roots, or the binary Yjs update",
    tag="documents",
    parameters=[
        ROOM,
        query(
            "format",
            "json (default), html (XML roots as HTML strings) or update (binary Yjs update)",
            {"type": "string", "enum": ["json", "html", "update"]},
        ),
        query("stateVector", "base64 state vector: only what it lacks (format=update)"),
    ],
    responses={
        200: {
            "description": "The document",
            "content": {
                "application/json": {"schema": DOCUMENT},
                OCTETS: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
    errors=(400, 401, 403, 503),
)
async def get_doc(request: Request) -> Response:
    """The room's document now, as JSON (`ysync.rooms.doc_render`) or as a Yjs update."""
    node, name = node_of(request), room_of(request)
    await caller(request, name, Role.VIEWER)
    form = request.query_params.get("format", "json")
    if form not in ("json", "html", "update"):
        raise ApiError(400, "invalid_format", "format must be json, html or update")
    since = state_vector_param(request)
    async with opened(node, name) as room:
        if form == "update":
            try:
                update = room.doc.get_update(since) if since is not None else room.doc.get_update()
            except ValueError:
                raise ApiError(400, "invalid_state_vector", "stateVector is not one") from None
            return Response(update, media_type=OCTETS)
        body = render(room.doc, html=form == "html")
        body["state_vector"] = b64(room.doc.get_state())
    return JSONResponse(body)


@operation(
    "The document's state vector",
    tag="documents",
    parameters=[ROOM],
    responses={200: json_response("The state vector", STATE_VECTOR)},
    errors=(400, 401, 403, 503),
)
async def get_state_vector(request: Request) -> Response:
    """What the document holds, as a Yjs state vector (base64): give it to `?stateVector=`."""
    node, name = node_of(request), room_of(request)
    await caller(request, name, Role.VIEWER)
    async with opened(node, name) as room:
        return JSONResponse({"state_vector": b64(room.doc.get_state())})


@operation(
    "Edit the document: a binary Yjs update, or JSON operations applied all or nothing",
    tag="documents",
    parameters=[ROOM],
    body={
        "required": True,
        "content": {
            "application/json": {"schema": OPS},
            OCTETS: {"schema": {"type": "string", "format": "binary"}},
        },
    },
    responses={200: json_response("Applied: the new state vector", STATE_VECTOR)},
    errors=(400, 401, 403, 413, 503),
)
async def post_doc(request: Request) -> Response:
    """Apply a Yjs update (`application/octet-stream`) or JSON operations (`ysync.rooms.doc_ops`)
    as a server edit: every client on every node sees it, and it is stored like any edit."""
    node, name = node_of(request), room_of(request)
    await caller(request, name, Role.EDITOR)
    raw = await read_body(request, node.settings.max_message_bytes)
    binary = request.headers.get("content-type", "").split(";")[0].strip() == OCTETS
    body = None if binary else _json(raw)
    async with opened(node, name, writing=True) as room:
        update = raw if binary else _ops(room, body)
        apply(room, update)
        return JSONResponse({"state_vector": b64(room.doc.get_state())})


def apply(room: Room, update: bytes) -> None:
    """Apply `update` to `room` as a server edit, under the limits of client edits."""
    refusal = room.edit_refusal(len(update))
    if refusal is not None:
        raise Refused(refusal)
    try:
        room.apply_update(update, Source.SERVER)
    except codec.ProtocolError as exc:
        raise ApiError(400, "invalid_update", f"not a valid Yjs update: {exc}") from None


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(
            400, "invalid_json", f"the body is neither JSON operations nor {OCTETS}: {exc}"
        ) from None


def _ops(room: Room, body: Any) -> bytes:
    try:
        return ops_update(room.doc, body)
    except OpError as exc:
        raise ApiError(400, "invalid_ops", str(exc)) from None


routes = [
    Route("/api/rooms/{room}/doc", get_doc, methods=["GET"]),
    Route("/api/rooms/{room}/doc", post_doc, methods=["POST"]),
    Route("/api/rooms/{room}/state-vector", get_state_vector, methods=["GET"]),
]
