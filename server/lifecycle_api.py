"""`DELETE /api/rooms/{room}`, `GET .../export`, `POST .../import`: a room's lifecycle (owner).

The work is `ysync.server.lifecycle.RoomLifecycle`; see its module doc.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ysync.rooms.hooks import Role
from ysync.rooms.protocols import StoreError
from ysync.rooms.vocabulary import CloseCode, Refused
from ysync.server.lifecycle import RoomLifecycle
from ysync.server.openapi import ROOM, json_body, json_response, operation
from ysync.server.routing import caller, extension_of, node_of, room_of
from ysync.server.threads_api import read_json

_ARCHIVE = {
    "type": "object",
    "required": ["format", "version", "document"],
    "properties": {
        "format": {"const": "ysync-room"},
        "version": {"const": 1},
        "room": {"type": "string"},
        "document": {"type": "string", "contentEncoding": "base64"},
        "parts": {"type": "object", "description": "each extension's part, by its name"},
    },
}


async def _owner(request: Request) -> str:
    room = room_of(request)
    await caller(request, room, Role.OWNER)
    return room


@operation(
    "Delete the room everywhere: document, versions, comments, ...; clients closed with 4410",
    tag="rooms",
    parameters=[ROOM],
    responses={200: json_response("Deleted", {"type": "object"})},
    errors=(400, 401, 403, 503),
)
async def delete_room(request: Request) -> Response:
    """Every store row of the room goes (each extension's `on_delete`); a tombstone keeps
    clients from recreating it for `--tombstone-days`."""
    lifecycle = extension_of(node_of(request), RoomLifecycle)
    room = await _owner(request)
    try:
        await lifecycle.delete(room)
    except StoreError:
        raise Refused(
            CloseCode.TRY_AGAIN_LATER, "the store is unavailable: retry the deletion"
        ) from None
    return JSONResponse({"deleted": room, "tombstone_days": lifecycle.tombstone_seconds / 86400})


@operation(
    "The room as one archive: the document and each extension's part",
    tag="rooms",
    parameters=[ROOM],
    responses={200: json_response("The archive", _ARCHIVE)},
    errors=(400, 401, 403, 503),
)
async def export_room(request: Request) -> Response:
    """JSON: the document as a base64 Yjs update, versions, comments, ... (import it with POST .../import)."""
    lifecycle = extension_of(node_of(request), RoomLifecycle)
    room = await _owner(request)
    try:
        archive = await lifecycle.export(room)
    except StoreError:
        raise Refused(CloseCode.TRY_AGAIN_LATER, "the store is unavailable") from None
    return JSONResponse(archive)


@operation(
    "Import an archive into a room with no document",
    tag="rooms",
    parameters=[ROOM],
    body=json_body(_ARCHIVE),
    responses={200: json_response("Imported", {"type": "object"})},
    errors=(400, 401, 403, 409, 413, 503),
)
async def import_room(request: Request) -> Response:
    """Lifts a deleted room's tombstone: an owner recreates the room."""
    node = node_of(request)
    lifecycle = extension_of(node, RoomLifecycle)
    room = await _owner(request)
    archive = await read_json(request, node.settings.max_message_bytes * 4)
    try:
        await lifecycle.import_(room, archive)
    except StoreError:
        raise Refused(CloseCode.TRY_AGAIN_LATER, "the store is unavailable") from None
    return JSONResponse({"imported": room})


routes = [
    Route("/api/rooms/{room}", delete_room, methods=["DELETE"]),
    Route("/api/rooms/{room}/export", export_room, methods=["GET"]),
    Route("/api/rooms/{room}/import", import_room, methods=["POST"]),
]
