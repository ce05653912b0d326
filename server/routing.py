"""Room names in HTTP API paths, and the helpers every `/api/rooms/...` module shares.

Room names may hold `/` (`team/notes`). In `/api/rooms/<room>/<resource>` a
client writes such a room with its slashes as `%2F` (`/api/rooms/team%2Fnotes/presence`);
`RoomPaths` keeps that `%2F` through routing (ASGI servers decode the path
before routing), so `{room}` is always one path segment and `room_of(request)`
turns it back into the name. The room detail endpoint alone also takes the
slashes literally (`/api/rooms/team/notes`), as it always has.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, TypeVar, cast
from urllib.parse import unquote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ysync.rooms.hooks import ConnectionRequest, Identity, Role
from ysync.rooms.vocabulary import CloseCode, Refusal, Refused
from ysync.server import audit
from ysync.server.admission import room_name_refusal
from ysync.server.auth import authorize_api

if TYPE_CHECKING:
    from ysync.server.app import Node

_ENCODED_SLASH = "%2F"


class ApiError(Exception):
    """An HTTP API answer that is not a refusal of the caller: 404 (no such thing),
    409 (conflicts with the current state), 400/413 for what a body holds. Answered
    as JSON `{"error": message, "code": code}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class RoomPaths:
    """Pure ASGI middleware: keep an encoded `/` (`%2F`) encoded in the routed path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw: bytes | None = scope.get("raw_path")
        if scope["type"] == "http" and raw and b"%2f" in raw.lower():
            text = raw.decode("latin-1").replace("%2f", _ENCODED_SLASH)
            parts = text.split(_ENCODED_SLASH)
            scope = {**scope, "path": _ENCODED_SLASH.join(unquote(part) for part in parts)}
        await self.app(scope, receive, send)


async def api_error(request: Request, exc: Exception) -> Response:
    error = cast(ApiError, exc)
    return JSONResponse({"error": error.message, "code": error.code}, status_code=error.status)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own HTTP errors (unknown path 404, 405, ...) as JSON."""
    error = cast(HTTPException, exc)
    code = HTTPStatus(error.status_code).phrase.lower().replace(" ", "_")
    return JSONResponse(
        {"error": error.detail, "code": code}, status_code=error.status_code, headers=error.headers
    )


async def refused(request: Request, exc: Exception) -> Response:
    """A `Refused` raised by an endpoint: its refusal as the JSON body and status."""
    refusal = cast(Refused, exc).refusal
    headers = {"WWW-Authenticate": 'Bearer realm="ysync"'} if refusal.http_status == 401 else None
    return JSONResponse(refusal.as_json(), status_code=refusal.http_status, headers=headers)


# Every error of the HTTP API is JSON `{"error": message, "code": ...}`.
exception_handlers = {HTTPException: http_error, Refused: refused, ApiError: api_error}


def room_of(request: Request) -> str:
    """The room an `/api/rooms/{room}/...` request is about; a JSON 400 if it is no valid name."""
    room = str(request.path_params["room"]).replace(_ENCODED_SLASH, "/")
    refusal = room_name_refusal(room)
    if refusal is not None:
        raise Refused(refusal)
    return room


def node_of(request: Request) -> Node:
    """The running node; a JSON 503 before the app's lifespan started it."""
    node: Node | None = request.app.state.ysync
    if node is None:
        raise Refused(CloseCode.SERVICE_RESTART, "ysync is not started: run the app's lifespan")
    return node


async def caller(request: Request, room: str, needs: Role) -> Identity:
    """Who makes `request`, if their role in `room` ("*": the node) is at least `needs`;
    else a JSON 401/403, recorded in the audit log."""
    node = node_of(request)
    headers = {k.lower(): v for k, v in request.headers.items()}
    client = f"{request.client.host}:{request.client.port}" if request.client else None
    try:
        return await authorize_api(
            node.extensions, ConnectionRequest(room, {}, headers, client), needs
        )
    except Refused as exc:
        audit.record_refusal(
            exc.refusal, subject=None, room=room, client=client, api=request.url.path
        )
        raise


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body; a JSON 413 past `limit` bytes (read no further than that)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Refused(Refusal(CloseCode.TOO_LARGE, f"request body over {limit} bytes"))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refused(Refusal(CloseCode.TOO_LARGE, f"request body over {limit} bytes"))
        chunks.append(chunk)
    return b"".join(chunks)


def limit_of(request: Request, default: int, maximum: int) -> int:
    """The request's `?limit=` page size; a JSON 400 unless an integer from 1 to `maximum`."""
    text = request.query_params.get("limit", str(default))
    if not text.isdigit() or not 1 <= int(text) <= maximum:
        raise ApiError(400, "invalid_limit", f"limit must be an integer from 1 to {maximum}")
    return int(text)


E = TypeVar("E")


def extension_of(node: Node, kind: type[E]) -> E:
    """The node's extension of type `kind` (a built-in feature's, e.g. versions)."""
    for extension in node.extensions.all:
        if isinstance(extension, kind):
            return extension
    raise RuntimeError(f"this node runs without {kind.__name__}")
