"""`/api/users/me/notifications`: the caller's notifications (mentions, replies).

"me" is the `sub` of the caller's token (or the host hook's user id): any valid
token will do, whatever rooms it grants. A notification shows only while the
caller's token still lets them read its room, so revoked access hides it.
With auth off there is nobody to be: 401.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ysync.rooms.hooks import ConnectionRequest, Role
from ysync.rooms.vocabulary import CloseCode, Refused
from ysync.server.auth import ALL_ROOMS, InvalidToken, JwtAuthenticator, authorize_api
from ysync.server.comments import comments_of
from ysync.server.openapi import json_response, operation, path_param, query
from ysync.server.routing import ApiError, node_of
from ysync.server.threads_api import stored

_OBJECT = {"type": "object"}
MAX_LIMIT = 200


def _request(request: Request, room: str) -> ConnectionRequest:
    headers = {k.lower(): v for k, v in request.headers.items()}
    client = f"{request.client.host}:{request.client.port}" if request.client else None
    return ConnectionRequest(room, {}, headers, client)


async def me(request: Request) -> str:
    """The caller's user id; 401 without a usable identity."""
    node = node_of(request)
    asked = _request(request, ALL_ROOMS)
    for extension in node.extensions.authenticators:
        if isinstance(extension, JwtAuthenticator):
            token = asked.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not token:
                break
            try:
                sub = extension.verifier.verify(token).get("sub")
            except InvalidToken as exc:
                raise Refused(CloseCode.UNAUTHORIZED, f"invalid token: {exc.reason}") from None
            if isinstance(sub, str) and sub:
                return sub
            break
        try:
            identity = await extension.authenticate(asked)
        except Refused:
            continue
        if identity is not None and identity.user_id:
            return identity.user_id
    raise Refused(
        CloseCode.UNAUTHORIZED,
        "notifications need a user: send Authorization: Bearer <token> (auth must be on)",
    )


async def _can_read(request: Request, room: str) -> bool:
    try:
        await authorize_api(node_of(request).extensions, _request(request, room), Role.VIEWER)
    except Refused:
        return False
    return True


@operation(
    "My notifications",
    tag="notifications",
    parameters=[
        query(
            "limit",
            f"at most this many, 1-{MAX_LIMIT} (default 50)",
            {"type": "string", "pattern": "^[0-9]{1,3}$"},
        )
    ],
    responses={200: json_response("Unread first, newest first", _OBJECT)},
    errors=(400, 401, 503),
)
async def list_notifications(request: Request) -> Response:
    """Mentions and replies for the caller, in the rooms they can still read."""
    user = await me(request)
    text = request.query_params.get("limit", "50")
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise ApiError(400, "bad_limit", f"limit must be 1-{MAX_LIMIT}")
    notes = await stored(comments_of(node_of(request)).notifications(user, limit=int(text)))
    readable = {room: await _can_read(request, room) for room in {n.room for n in notes}}
    shown = [n.to_json() for n in notes if readable[n.room]]
    return JSONResponse(
        {"notifications": shown, "unread": sum(1 for n in shown if n["readAt"] is None)}
    )


@operation(
    "Mark a notification read",
    tag="notifications",
    parameters=[path_param("notificationId", "the notification's id (`nt_...`)")],
    responses={200: json_response("Marked read (again: no change)", _OBJECT)},
    errors=(401, 404, 503),
)
async def read_notification(request: Request) -> Response:
    user = await me(request)
    notification_id = str(request.path_params["notificationId"])[:100]
    if not await stored(comments_of(node_of(request)).mark_read(user, notification_id)):
        raise ApiError(404, "notification_not_found", f"no notification {notification_id!r}")
    return JSONResponse({"id": notification_id, "read": True})


@operation(
    "Mark all my notifications read",
    tag="notifications",
    responses={200: json_response("How many were unread", _OBJECT)},
    errors=(401, 503),
)
async def read_all_notifications(request: Request) -> Response:
    user = await me(request)
    return JSONResponse({"read": await stored(comments_of(node_of(request)).mark_read(user, None))})


_BASE = "/api/users/me/notifications"
routes = [
    Route(_BASE, list_notifications, methods=["GET"]),
    Route(_BASE + "/read-all", read_all_notifications, methods=["POST"]),
    Route(_BASE + "/{notificationId}/read", read_notification, methods=["POST"]),
]
