"""`/api/rooms/{room}/versions...`: list, create, read, compare and restore versions.

Viewers list, read and compare; editors create and restore; owners delete. The author is the
caller's identity. Shapes: `Version.summary()` (a version), `ysync.rooms.doc_diff`
(a diff), `ysync.rooms.doc_render` (a version's content). See docs/versions.md.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ysync.presence.versions import (
    MAX_DESCRIPTION,
    MAX_NAME,
    Version,
    VersionError,
    check_text,
)
from ysync.rooms.doc_diff import diff, doc_of
from ysync.rooms.doc_render import render
from ysync.rooms.hooks import Role
from ysync.rooms.protocols import StoreError
from ysync.rooms.vocabulary import CloseCode, Refused
from ysync.server.doc_api import OCTETS, b64, opened
from ysync.server.openapi import ROOM, json_body, json_response, operation, path_param, query
from ysync.server.routing import ApiError, caller, extension_of, limit_of, node_of, room_of
from ysync.server.threads_api import read_json
from ysync.server.versions import VersionsExtension

MAX_PAGE = 100
VERSION_ID = path_param("versionId", "the version's id (`v_...`)")
CURRENT = "current"
SUMMARY = {
    "type": "object",
    "required": ["id", "name", "kind", "created_at", "size_bytes"],
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "description": {"type": "string"},
        "author": {"type": ["string", "null"]},
        "kind": {"enum": ["named", "auto", "pre-restore", "restore"]},
        "automatic": {"type": "boolean"},
        "created_at": {"type": "number"},
        "size_bytes": {"type": "integer"},
        "state_vector": {"type": "string"},
    },
}
_NEW = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME},
        "description": {"type": "string", "maxLength": MAX_DESCRIPTION},
    },
}


def _author(identity: Any) -> str | None:
    user: str | None = identity.user_id
    return user


async def _versions(request: Request, needs: Role) -> tuple[VersionsExtension, str, Any]:
    node, room = node_of(request), room_of(request)
    identity = await caller(request, room, needs)
    return extension_of(node, VersionsExtension), room, identity


async def _version(versions: VersionsExtension, room: str, version_id: str) -> Version:
    try:
        found = await versions.store.get(room, version_id)
    except StoreError:
        raise Refused(CloseCode.TRY_AGAIN_LATER, "the version store is unavailable") from None
    if found is None:
        raise ApiError(404, "version_not_found", f"no version {version_id[:70]!r} in this room")
    return found


@operation(
    "The room's versions, newest first",
    tag="versions",
    parameters=[
        ROOM,
        query("cursor", "`next_cursor` of the previous page"),
        query("limit", f"versions per page (1-{MAX_PAGE}, default 20)", {"type": "integer"}),
    ],
    responses={
        200: json_response(
            "A page of versions",
            {
                "type": "object",
                "properties": {
                    "versions": {"type": "array", "items": SUMMARY},
                    "next_cursor": {"type": ["string", "null"]},
                },
            },
        )
    },
    errors=(400, 401, 403, 503),
)
async def list_versions(request: Request) -> Response:
    """Versions with author, size, and whether automatic; page on with `next_cursor`."""
    versions, room, _ = await _versions(request, Role.VIEWER)
    limit = limit_of(request, 20, MAX_PAGE)
    try:
        page = await versions.store.page(room, request.query_params.get("cursor"), limit)
    except VersionError as exc:
        raise ApiError(400, exc.code, exc.message) from None
    except StoreError:
        raise Refused(CloseCode.TRY_AGAIN_LATER, "the version store is unavailable") from None
    return JSONResponse(
        {"versions": [v.summary() for v in page.versions], "next_cursor": page.next_cursor}
    )


@operation(
    "Make a named version of the document as it is now",
    tag="versions",
    parameters=[ROOM],
    body=json_body(_NEW),
    responses={201: json_response("The version", SUMMARY)},
    errors=(400, 401, 403, 413, 503),
)
async def create_version(request: Request) -> Response:
    """A named, immutable snapshot; the author is the caller."""
    versions, room, identity = await _versions(request, Role.EDITOR)
    body = await read_json(request, 16 * 1024)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", 'the body must be an object {"name": ...}')
    try:
        name = check_text(body.get("name"), "name", MAX_NAME, required=True)
        description = check_text(
            body.get("description"), "description", MAX_DESCRIPTION, required=False
        )
    except VersionError as exc:
        raise ApiError(400, exc.code, exc.message) from None
    try:
        version = await versions.create(
            room, name=name, description=description, author=_author(identity), kind="named"
        )
    except StoreError:
        raise Refused(CloseCode.TRY_AGAIN_LATER, "the version store is unavailable") from None
    return JSONResponse(version.summary(), status_code=201)


@operation(
    "One version: its content as JSON, or the binary Yjs update",
    tag="versions",
    parameters=[
        ROOM,
        VERSION_ID,
        query(
            "format",
            "json (default), html (XML roots as HTML) or update",
            {"type": "string", "enum": ["json", "html", "update"]},
        ),
    ],
    responses={
        200: {
            "description": "The version",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                OCTETS: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
    errors=(400, 401, 403, 404, 503),
)
async def get_version(request: Request) -> Response:
    """The version's metadata and document (`types`, `content` as in GET /doc)."""
    versions, room, _ = await _versions(request, Role.VIEWER)
    form = request.query_params.get("format", "json")
    if form not in ("json", "html", "update"):
        raise ApiError(400, "invalid_format", "format must be json, html or update")
    version = await _version(versions, room, str(request.path_params["versionId"]))
    if form == "update":
        return Response(version.data, media_type=OCTETS)
    return JSONResponse({**version.summary(), **render(doc_of(version.data), html=form == "html")})


@operation(
    "What changed between two versions (or a version and the current document)",
    tag="versions",
    parameters=[
        ROOM,
        VERSION_ID,
        path_param("other", "the later version's id, or `current`"),
    ],
    responses={200: json_response("Per root, what changed", {"type": "object"})},
    errors=(400, 401, 403, 404, 503),
)
async def diff_versions(request: Request) -> Response:
    """`changes`: per top-level type, added/removed/changed keys (maps), inserted/deleted
    items (arrays) and runs (text), top-level nodes (XML); see docs/versions.md."""
    versions, room, _ = await _versions(request, Role.VIEWER)
    a = await _version(versions, room, str(request.path_params["versionId"]))
    other = str(request.path_params["other"])
    if other == CURRENT:
        async with opened(node_of(request), room) as loaded:
            b_data, b_id = loaded.doc.get_update(), CURRENT
    else:
        b = await _version(versions, room, other)
        b_data, b_id = b.data, b.id
    return JSONResponse({"from": a.id, "to": b_id, "changes": diff(a.data, b_data)})


@operation(
    "Restore a version: every client converges to its content; no history is rewritten",
    tag="versions",
    parameters=[ROOM, VERSION_ID],
    responses={
        200: json_response(
            "Restored: the versions made just before and after",
            {
                "type": "object",
                "properties": {
                    "before": SUMMARY,
                    "restore": SUMMARY,
                    "state_vector": {"type": "string"},
                },
            },
        )
    },
    errors=(400, 401, 403, 404, 413, 503),
)
async def restore_version(request: Request) -> Response:
    """Applied as a server edit computed from today's document, so offline clients merge on top."""
    versions, room, identity = await _versions(request, Role.EDITOR)
    target = await _version(versions, room, str(request.path_params["versionId"]))
    try:
        before, after = await versions.restore(room, target, _author(identity))
    except StoreError:
        raise Refused(CloseCode.TRY_AGAIN_LATER, "the version store is unavailable") from None
    return JSONResponse(
        {
            "before": before.summary(),
            "restore": after.summary(),
            "state_vector": b64(after.state_vector),
        }
    )


@operation(
    "Delete a version (owner): the only way a named version goes",
    tag="versions",
    parameters=[ROOM, VERSION_ID],
    responses={200: json_response("Deleted", {"type": "object"})},
    errors=(400, 401, 403, 404, 503),
)
async def delete_version(request: Request) -> Response:
    versions, room, _ = await _versions(request, Role.OWNER)
    version_id = str(request.path_params["versionId"])
    try:
        deleted = await versions.store.delete(room, version_id)
    except StoreError:
        raise Refused(CloseCode.TRY_AGAIN_LATER, "the version store is unavailable") from None
    if not deleted:
        raise ApiError(404, "version_not_found", f"no version {version_id[:70]!r} in this room")
    return JSONResponse({"deleted": version_id})


_BASE = "/api/rooms/{room}/versions"
routes = [
    Route(_BASE, list_versions, methods=["GET"]),
    Route(_BASE, create_version, methods=["POST"]),
    Route(_BASE + "/{versionId}", get_version, methods=["GET"]),
    Route(_BASE + "/{versionId}", delete_version, methods=["DELETE"]),
    Route(_BASE + "/{versionId}/diff/{other}", diff_versions, methods=["GET"]),
    Route(_BASE + "/{versionId}/restore", restore_version, methods=["POST"]),
]
