"""`/api/rooms/{room}/threads...`: comment threads, comments and reactions over HTTP.

Every answer is JSON; errors are `{"error", "code"}` (400 malformed, naming the
field; 401/403 auth and permissions, audited; 404 unknown ids; 413 sizes). The
author is always the caller's identity (token or host hook), never the body.
The decisions are `ysync.presence.comment_rules`; the work is
`ysync.server.comments.CommentsExtension`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ysync.presence import comment_rules
from ysync.presence.anchors import check_anchor
from ysync.presence.comment_rules import Action
from ysync.presence.comment_store import ThreadQuery
from ysync.presence.comments import (
    BODY_SCHEMA,
    Comment,
    CommentError,
    Thread,
    check_body,
    check_emoji,
    check_fields,
    check_flag,
    check_metadata,
    decode_cursor,
    encode_cursor,
    parse_time,
)
from ysync.presence.notifications import Following
from ysync.rooms.hooks import Identity, Role
from ysync.rooms.protocols import StoreError
from ysync.rooms.vocabulary import CloseCode, Refusal, Refused
from ysync.server import audit
from ysync.server.comments import CommentsExtension, comments_of, user_of
from ysync.server.openapi import ROOM, json_body, json_response, operation, path_param, query
from ysync.server.routing import ApiError, caller, node_of, read_body, room_of

T = TypeVar("T")
MAX_PAGE = 100
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

THREAD_ID = path_param("threadId", "the thread's id (`th_...`)")
COMMENT_ID = path_param("commentId", "the comment's id (`cm_...`)")
RESOLVE = query(
    "resolveAnchors",
    "1: add `resolvedAnchor` (where the anchor is in the current document)",
    {"type": "string", "enum": ["0", "1"]},
)
_OBJECT = {"type": "object"}
_METADATA = {"type": "object", "description": "flat: string keys to strings, numbers, booleans"}
_ANCHOR = {
    "oneOf": [
        {"type": "object", "required": ["kind"], "properties": {"kind": {"type": "string"}}},
        {"type": "null"},
    ],
    "description": "range (two base64 Yjs relative positions), element, point or none",
}
_BODY = {"type": "object", "required": ["body"], "properties": {"body": BODY_SCHEMA}}
_REACTION = {"type": "object", "required": ["emoji"], "properties": {"emoji": {"type": "string"}}}


# -- shared helpers ------------------------------------------------------------------------


class _Call:
    """One request about one room: the caller, the comments extension, and the limits."""

    def __init__(self, request: Request, room: str, identity: Identity) -> None:
        self.request = request
        self.room = room
        self.identity = identity
        self.user = user_of(identity)
        self.comments: CommentsExtension = comments_of(node_of(request))

    def check(
        self, action: Action, thread: Thread | None = None, comment: Comment | None = None
    ) -> None:
        """Refuse with a 403 (audited) unless the rules allow `action`."""
        reason = comment_rules.refusal(action, self.identity.role, self.user, thread, comment)
        if reason is not None:
            refusal = Refusal(CloseCode.FORBIDDEN, reason)
            client = self.request.client
            audit.record_refusal(
                refusal,
                subject=self.identity.user_id,
                room=self.room,
                client=f"{client.host}:{client.port}" if client else None,
                api=self.request.url.path,
            )
            raise Refused(refusal)

    async def thread(self) -> Thread:
        thread_id = _path_id(self.request, "threadId", "thread")
        thread = await stored(self.comments.thread(self.room, thread_id))
        if thread is None:
            raise ApiError(404, "thread_not_found", f"no thread {thread_id!r} in this room")
        return thread

    async def comment(self) -> tuple[Thread, Comment]:
        thread = await self.thread()
        comment_id = _path_id(self.request, "commentId", "comment")
        comment = thread.comment(comment_id)
        if comment is None or comment.deleted_at is not None:
            raise ApiError(404, "comment_not_found", f"no comment {comment_id!r} in this thread")
        return thread, comment

    async def body(self) -> Any:
        limit = 2 * (self.comments.max_comment_bytes + self.comments.max_metadata_bytes) + 8192
        return await read_json(self.request, limit)


async def _call(request: Request) -> _Call:
    room = room_of(request)
    identity = await caller(request, room, Role.VIEWER)
    call = _Call(request, room, identity)
    await call.comments.record_reader(room, identity)
    return call


def _path_id(request: Request, name: str, what: str) -> str:
    value = str(request.path_params[name])
    if not _ID.match(value):
        raise ApiError(404, f"{what}_not_found", f"no {what} {value[:70]!r}")
    return value


async def read_json(request: Request, limit: int) -> Any:
    """The request's JSON body (empty: None); 413 past `limit` bytes, 400 if not JSON."""
    raw = await read_body(request, limit)
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"the request body is not JSON: {exc}") from None


async def stored(awaitable: Awaitable[T]) -> T:
    """Await a store call: its failure a 503, a value the store refused a 400/413."""
    try:
        return await awaitable
    except StoreError:
        raise Refused(CloseCode.TRY_AGAIN_LATER, "the comment store is unavailable") from None
    except CommentError as exc:
        raise rejected(exc) from None


def rejected(exc: CommentError) -> Exception:
    if exc.too_large:
        return Refused(Refusal(CloseCode.TOO_LARGE, exc.message))
    return ApiError(400, exc.code, exc.message)


def _checked(check: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return check(*args, **kwargs)
    except CommentError as exc:
        raise rejected(exc) from None


async def _threads_json(call: _Call, threads: list[Thread]) -> list[dict[str, Any]]:
    out = [thread.to_json() for thread in threads]
    if call.request.query_params.get("resolveAnchors") in ("1", "true"):
        resolved = await stored(call.comments.resolved_anchors(call.room, threads))
        for body, where in zip(out, resolved, strict=True):
            body["resolvedAnchor"] = where
    return out


# -- threads ---------------------------------------------------------------------------------


def _list_query(request: Request) -> ThreadQuery:
    params = request.query_params
    resolved = params.get("resolved")
    if resolved not in (None, "true", "false"):
        raise ApiError(400, "not_boolean", "resolved must be true or false")
    limit_text = params.get("limit", "50")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_PAGE:
        raise ApiError(400, "bad_limit", f"limit must be 1-{MAX_PAGE}")
    since, cursor = params.get("since"), params.get("cursor")
    metadata = {k[len("metadata.") :]: v for k, v in params.items() if k.startswith("metadata.")}
    return ThreadQuery(
        resolved=None if resolved is None else resolved == "true",
        since=None if since is None else _checked(parse_time, since, "since"),
        mentions=params.get("mentions") or None,
        metadata=metadata,
        cursor=None if cursor is None else _checked(decode_cursor, cursor),
        limit=int(limit_text),
    )


@operation(
    "List a room's comment threads",
    tag="comments",
    parameters=[
        ROOM,
        query(
            "resolved",
            "only resolved (true) or open (false) threads",
            {"type": "string", "enum": ["true", "false"]},
        ),
        query("since", "only threads updated at or after this time (ISO 8601 or Unix seconds)"),
        query("mentions", "only threads where a comment mentions this user id"),
        query("cursor", "the `nextCursor` of the previous page"),
        query(
            "limit",
            f"threads per page, 1-{MAX_PAGE} (default 50)",
            {"type": "string", "pattern": "^[0-9]{1,3}$"},
        ),
        RESOLVE,
    ],
    responses={200: json_response("Newest first; `metadata.<key>=value` filters too", _OBJECT)},
    errors=(400, 401, 403, 503),
)
async def list_threads(request: Request) -> Response:
    """Threads newest first, with their comments; `nextCursor` pages on."""
    call = await _call(request)
    page = await stored(call.comments.threads(call.room, _list_query(request)))
    threads = list(page.threads)
    last = threads[-1] if threads and page.more else None
    return JSONResponse(
        {
            "threads": await _threads_json(call, threads),
            "nextCursor": None if last is None else encode_cursor(last.created_at, last.id),
        }
    )


@operation(
    "Start a thread",
    tag="comments",
    parameters=[ROOM],
    body=json_body(
        {
            "type": "object",
            "required": ["body"],
            "properties": {"body": BODY_SCHEMA, "anchor": _ANCHOR, "metadata": _METADATA},
        }
    ),
    responses={201: json_response("The new thread, with its first comment", _OBJECT)},
    errors=(400, 401, 403, 413, 503),
)
async def create_thread(request: Request) -> Response:
    """A new thread with its first comment (commenter or more)."""
    call = await _call(request)
    call.check(Action.CREATE_THREAD)
    fields = _checked(check_fields, await call.body(), ("body", "anchor", "metadata"), "a thread")
    anchor = _checked(check_anchor, fields.get("anchor"))
    metadata = _checked(
        check_metadata, fields.get("metadata"), max_bytes=call.comments.max_metadata_bytes
    )
    body = _checked(check_body, fields.get("body"), max_bytes=call.comments.max_comment_bytes)
    thread = await stored(call.comments.create_thread(call.room, call.user, anchor, metadata, body))
    return JSONResponse(thread.to_json(), status_code=201)


@operation(
    "One thread",
    tag="comments",
    parameters=[ROOM, THREAD_ID, RESOLVE],
    responses={200: json_response("The thread with its comments", _OBJECT)},
    errors=(400, 401, 403, 404, 503),
)
async def get_thread(request: Request) -> Response:
    call = await _call(request)
    thread = await call.thread()
    (body,) = await _threads_json(call, [thread])
    return JSONResponse(body)


@operation(
    "Change a thread: metadata, resolved",
    tag="comments",
    parameters=[ROOM, THREAD_ID],
    body=json_body(
        {"type": "object", "properties": {"metadata": _METADATA, "resolved": {"type": "boolean"}}}
    ),
    responses={200: json_response("The thread", _OBJECT)},
    errors=(400, 401, 403, 404, 413, 503),
)
async def patch_thread(request: Request) -> Response:
    """Metadata keys are merged (null removes one); resolving needs editor, owner or creator."""
    call = await _call(request)
    thread = await call.thread()
    fields = _checked(check_fields, await call.body(), ("metadata", "resolved"), "a thread change")
    metadata = None
    if "metadata" in fields:
        call.check(Action.EDIT_THREAD, thread)
        metadata = _checked(
            check_metadata,
            fields["metadata"],
            max_bytes=call.comments.max_metadata_bytes,
            patch=True,
        )
    resolved = None
    if "resolved" in fields:
        resolved = _checked(check_flag, fields["resolved"], "resolved")
        call.check(Action.RESOLVE, thread)
    updated = await stored(
        call.comments.update_thread(
            call.room, thread, call.user, metadata=metadata, resolved=resolved
        )
    )
    if updated is None:
        raise ApiError(404, "thread_not_found", "the thread was deleted meanwhile")
    return JSONResponse(updated.to_json())


@operation(
    "Delete a thread and its comments",
    tag="comments",
    parameters=[ROOM, THREAD_ID],
    responses={204: {"description": "Deleted"}},
    errors=(400, 401, 403, 404, 503),
)
async def delete_thread(request: Request) -> Response:
    """The room's owner, or the thread's creator while every comment in it is theirs."""
    call = await _call(request)
    thread = await call.thread()
    call.check(Action.DELETE_THREAD, thread)
    await stored(call.comments.delete_thread(call.room, thread.id))
    return Response(status_code=204)


@operation(
    "Follow or mute a thread",
    tag="comments",
    parameters=[ROOM, THREAD_ID],
    body=json_body(
        {
            "type": "object",
            "required": ["state"],
            "properties": {"state": {"enum": [f.value for f in Following]}},
        }
    ),
    responses={200: json_response("The caller's choice", _OBJECT)},
    errors=(400, 401, 403, 404, 503),
)
async def put_subscription(request: Request) -> Response:
    """`subscribed`: replies notify the caller; `muted`: they never do; `default`:
    they do if the caller took part (created the thread or commented)."""
    call = await _call(request)
    thread = await call.thread()
    call.check(Action.SUBSCRIBE, thread)
    fields = _checked(check_fields, await call.body(), ("state",), "a subscription")
    try:
        choice = Following(fields.get("state"))
    except ValueError:
        raise ApiError(400, "bad_state", "state must be subscribed, muted or default") from None
    await stored(call.comments.follow(call.room, thread.id, call.user, choice))
    return JSONResponse({"threadId": thread.id, "state": choice.value})


# -- comments --------------------------------------------------------------------------------


@operation(
    "Reply in a thread",
    tag="comments",
    parameters=[ROOM, THREAD_ID],
    body=json_body(_BODY),
    responses={201: json_response("The new comment", _OBJECT)},
    errors=(400, 401, 403, 404, 413, 503),
)
async def create_comment(request: Request) -> Response:
    call = await _call(request)
    thread = await call.thread()
    call.check(Action.REPLY, thread)
    fields = _checked(check_fields, await call.body(), ("body",), "a comment")
    body = _checked(check_body, fields.get("body"), max_bytes=call.comments.max_comment_bytes)
    comment = await stored(call.comments.reply(call.room, thread.id, call.user, body))
    if comment is None:
        raise ApiError(404, "thread_not_found", "the thread was deleted meanwhile")
    return JSONResponse(comment.to_json(), status_code=201)


@operation(
    "Edit a comment",
    tag="comments",
    parameters=[ROOM, THREAD_ID, COMMENT_ID],
    body=json_body(_BODY),
    responses={200: json_response("The comment", _OBJECT)},
    errors=(400, 401, 403, 404, 413, 503),
)
async def patch_comment(request: Request) -> Response:
    """Only its author edits a comment."""
    call = await _call(request)
    thread, comment = await call.comment()
    call.check(Action.EDIT_COMMENT, thread, comment)
    fields = _checked(check_fields, await call.body(), ("body",), "a comment")
    body = _checked(check_body, fields.get("body"), max_bytes=call.comments.max_comment_bytes)
    changed = await stored(call.comments.edit(call.room, comment, body))
    if changed is None:
        raise ApiError(404, "comment_not_found", "the comment was deleted meanwhile")
    return JSONResponse(changed.to_json())


@operation(
    "Delete a comment (it keeps its place, without its body)",
    tag="comments",
    parameters=[ROOM, THREAD_ID, COMMENT_ID],
    responses={204: {"description": "Deleted"}},
    errors=(400, 401, 403, 404, 503),
)
async def delete_comment(request: Request) -> Response:
    """Its author, or the room's owner."""
    call = await _call(request)
    thread, comment = await call.comment()
    call.check(Action.DELETE_COMMENT, thread, comment)
    await stored(call.comments.delete_comment(call.room, comment))
    return Response(status_code=204)


async def _react(request: Request, *, add: bool) -> Response:
    call = await _call(request)
    thread, comment = await call.comment()
    call.check(Action.REACT, thread, comment)
    raw = await call.body()
    if raw is None and not add:
        raw = {"emoji": request.query_params.get("emoji")}
    fields = _checked(check_fields, raw, ("emoji",), "a reaction")
    emoji = _checked(check_emoji, fields.get("emoji"))
    changed = await stored(
        call.comments.react(call.room, thread.id, comment.id, emoji, call.user, add=add)
    )
    if changed is None:
        raise ApiError(404, "comment_not_found", "the comment was deleted meanwhile")
    return JSONResponse(changed.to_json())


@operation(
    "React to a comment",
    tag="comments",
    parameters=[ROOM, THREAD_ID, COMMENT_ID],
    body=json_body(_REACTION),
    responses={200: json_response("The comment with its reactions", _OBJECT)},
    errors=(400, 401, 403, 404, 503),
)
async def add_reaction(request: Request) -> Response:
    """Adding the same reaction twice changes nothing."""
    return await _react(request, add=True)


@operation(
    "Take back one's reaction",
    tag="comments",
    parameters=[ROOM, THREAD_ID, COMMENT_ID, query("emoji", "the emoji (or in a JSON body)")],
    body=json_body(_REACTION, required=False),
    responses={200: json_response("The comment with its reactions", _OBJECT)},
    errors=(400, 401, 403, 404, 503),
)
async def remove_reaction(request: Request) -> Response:
    return await _react(request, add=False)


_THREADS = "/api/rooms/{room}/threads"
_COMMENT = _THREADS + "/{threadId}/comments/{commentId}"
routes = [
    Route(_THREADS, list_threads, methods=["GET"]),
    Route(_THREADS, create_thread, methods=["POST"]),
    Route(_THREADS + "/{threadId}", get_thread, methods=["GET"]),
    Route(_THREADS + "/{threadId}", patch_thread, methods=["PATCH"]),
    Route(_THREADS + "/{threadId}", delete_thread, methods=["DELETE"]),
    Route(_THREADS + "/{threadId}/subscription", put_subscription, methods=["PUT"]),
    Route(_THREADS + "/{threadId}/comments", create_comment, methods=["POST"]),
    Route(_COMMENT, patch_comment, methods=["PATCH"]),
    Route(_COMMENT, delete_comment, methods=["DELETE"]),
    Route(_COMMENT + "/reactions", add_reaction, methods=["POST"]),
    Route(_COMMENT + "/reactions", remove_reaction, methods=["DELETE"]),
]
