"""HTTP client for the ysync server's HTTP API, sync (`Client`) and async (`AsyncClient`).

    from ysync.clients.http import Client

    with Client("http://127.0.0.1:1234") as api:
        api.health()                       # {"status": "ok"}
        if api.ready().ready: ...
        for room in api.rooms().rooms: print(room.name, room.clients)

The base URL may also be the WebSocket URL (`ws://` → `http://`, `wss://` →
`https://`), so one `--url` serves both. A token is sent as
`Authorization: Bearer <token>`. Errors: `HTTPError` (status and the server's
JSON `error`), `ConnectError` when the server cannot be reached.

Every endpoint is written once, sans I/O, in `Endpoints` (a generator that
yields the `Call` it needs and gets the response back); `Client` and
`AsyncClient` only drive those generators, one line per method. Endpoints:
`GET /healthz`, `/readyz`, `/api/rooms`, `/api/rooms/<room>`, `/metrics`, and
comments (`threads`, `thread`, `create_thread`, `reply`, `edit_comment`,
`delete_comment`, `react`, `unreact`, `resolve`, `update_thread`, `delete_thread`,
`follow_thread`, `notifications`, `read_notification`, `read_all_notifications`;
`comment_events(room)` follows them live), the document (`get_doc`, `state_vector`,
`apply_update`, `apply_ops`), versions (`versions`, `version`, `create_version`, `diff`,
`restore`, `delete_version`) and the room's lifecycle (`delete_room`, `export`, `import_`; docs/http-api.md,
docs/versions.md). Comment bodies may be given as a
`str` (plain text) or as the rich-text JSON. With `--auth jwt` the room endpoints
need a token for the room, the node-wide ones an owner token on `"*"`.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from httpx_sse import ServerSentEvent, aconnect_sse, connect_sse

from ysync.clients.errors import ClientError, ConnectError
from ysync.presence.comments import text_body

DEFAULT_TIMEOUT = 10.0


class HTTPError(ClientError):
    """The server answered with an error status; `error` is its JSON message."""

    def __init__(self, status: int, error: str, url: str) -> None:
        super().__init__(f"HTTP {status} from {url}: {error}")
        self.status = status
        self.error = error
        self.url = url


@dataclass(frozen=True, slots=True)
class Readiness:
    """`GET /readyz`: whether the node takes new clients, and if not, why."""

    ready: bool
    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RoomInfo:
    name: str
    clients: int  # open connections in the room on this node
    awareness: int  # present awareness states (cursors)
    #: Everything else the server reports about the room (e.g. read_only, idle).
    details: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Rooms:
    """`GET /api/rooms`: the rooms loaded on this node."""

    rooms: tuple[RoomInfo, ...]
    connections: int  # WebSocket connections on this node, all rooms
    #: What the server reports about the node itself (id, uptime, readiness, ...).
    node: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One event of a room's feed (`GET /api/rooms/<room>/events`)."""

    id: str  # give it back as `last_event_id` to resume after it
    type: str  # e.g. "presence.joined"; "reset": `data` is the room's current state
    room: str
    data: Mapping[str, Any]
    at: float  # Unix time it happened


def _feed_event(sse: ServerSentEvent) -> FeedEvent | None:
    """The event in one SSE message; None for what is not one (pings). A server
    `error` event (the subscriber was cut off) raises `HTTPError`."""
    if sse.event == "error":
        raise HTTPError(503, str(sse.json().get("error", "event feed ended")), "event feed")
    if not sse.data:
        return None
    body = sse.json()
    return FeedEvent(sse.id, body["type"], body["room"], body.get("data") or {}, body["at"])


def _feed_headers(last_event_id: str | None) -> dict[str, str]:
    return {"Last-Event-ID": last_event_id} if last_event_id else {}


def http_base_url(url: str) -> str:
    """`ws://host:port/prefix` → `http://host:port/prefix` (http URLs unchanged)."""
    for ws, http in (("ws://", "http://"), ("wss://", "https://")):
        if url.startswith(ws):
            url = http + url[len(ws) :]
    return url.rstrip("/")


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _body(response: httpx.Response, *, ok: tuple[int, ...] = ()) -> Any:
    """The decoded JSON body; raise `HTTPError` unless 2xx or a status in `ok`."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_success or response.status_code in ok:
        return body
    error = body.get("error") if isinstance(body, dict) else None
    raise HTTPError(
        response.status_code, str(error or response.text[:200]), str(response.request.url)
    )


def _readiness(body: Any) -> Readiness:
    return Readiness(bool(body["ready"]), tuple(body.get("problems", ())))


def _rooms(body: Any) -> Rooms:
    rooms = tuple(
        RoomInfo(r["name"], int(r.get("clients", 0)), int(r.get("awareness", 0)), r)
        for r in body["rooms"]
    )
    return Rooms(rooms, int(body.get("connections", 0)), body.get("node") or {})


COMMENT_EVENTS = frozenset(
    {
        "thread.created",
        "thread.updated",
        "thread.resolved",
        "thread.reopened",
        "thread.deleted",
        "comment.created",
        "comment.edited",
        "comment.deleted",
        "reaction.added",
        "reaction.removed",
        "mention.created",
    }
)
Body = str | Mapping[str, Any]
"""A comment body: plain text, or rich text (`{"version": 1, "content": [...]}`)."""


def _comment_body(body: Body) -> Mapping[str, Any]:
    return text_body(body) if isinstance(body, str) else body


def _thread_path(room: str, thread_id: str, *rest: str) -> str:
    return room_path(room, "threads", quote(thread_id, safe=""), *rest)


def _comment_path(room: str, thread_id: str, comment_id: str, *rest: str) -> str:
    return _thread_path(room, thread_id, "comments", quote(comment_id, safe=""), *rest)


def room_path(name: str, *rest: str) -> str:
    """`/api/rooms/<name>[/rest...]`, the room name as one path segment (`/` as `%2F`)."""
    return "/".join(("/api/rooms/" + quote(name, safe=""), *rest))


# -- every endpoint, once, sans I/O ----------------------------------------------------

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP request an endpoint makes; `ok` lists non-2xx statuses that are answers."""

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    content: bytes | None = None
    headers: Mapping[str, str] | None = None
    ok: tuple[int, ...] = ()


Exchange = Generator[Call, httpx.Response, T]
"""An endpoint: yields each `Call`, is sent its response, returns the result."""


def _json(call: Call) -> Exchange[Any]:
    response = yield call
    return _body(response, ok=call.ok)


class Endpoints:
    """The HTTP API, independent of how requests are sent (see `Client`, `AsyncClient`)."""

    @staticmethod
    def health() -> Exchange[dict[str, Any]]:
        body: dict[str, Any] = yield from _json(Call("GET", "/healthz"))
        return body

    @staticmethod
    def ready() -> Exchange[Readiness]:
        return _readiness((yield from _json(Call("GET", "/readyz", ok=(503,)))))

    @staticmethod
    def rooms() -> Exchange[Rooms]:
        return _rooms((yield from _json(Call("GET", "/api/rooms"))))

    @staticmethod
    def room(name: str) -> Exchange[dict[str, Any]]:
        body: dict[str, Any] = yield from _json(Call("GET", room_path(name)))
        return body

    @staticmethod
    def metrics() -> Exchange[str]:
        response = yield Call("GET", "/metrics")
        if not response.is_success:
            _body(response)  # raises HTTPError
        return response.text

    @staticmethod
    def get(path: str, *, ok: tuple[int, ...] = ()) -> Exchange[Any]:
        """Any endpoint's JSON body as it is (e.g. for `--json` output)."""
        return (yield from _json(Call("GET", path, ok=ok)))

    # -- comments (docs/comments.md) --------------------------------------------------

    @staticmethod
    def threads(room: str, *, resolve_anchors: bool = False, **filters: Any) -> Exchange[Any]:
        """One page: filters `resolved`, `since`, `mentions`, `cursor`, `limit`, and
        `metadata={key: value}`."""
        params = {k: v for k, v in filters.items() if v is not None and k != "metadata"}
        if isinstance(params.get("resolved"), bool):
            params["resolved"] = "true" if params["resolved"] else "false"
        params |= {f"metadata.{k}": v for k, v in (filters.get("metadata") or {}).items()}
        if resolve_anchors:
            params["resolveAnchors"] = "1"
        return (yield from _json(Call("GET", room_path(room, "threads"), params=params)))

    @staticmethod
    def thread(room: str, thread_id: str, *, resolve_anchors: bool = False) -> Exchange[Any]:
        params = {"resolveAnchors": "1"} if resolve_anchors else None
        return (yield from _json(Call("GET", _thread_path(room, thread_id), params=params)))

    @staticmethod
    def create_thread(
        room: str, body: Body, *, anchor: Any = None, metadata: Any = None
    ) -> Exchange[Any]:
        payload = {"body": _comment_body(body), "anchor": anchor, "metadata": metadata}
        return (yield from _json(Call("POST", room_path(room, "threads"), json=payload)))

    @staticmethod
    def update_thread(room: str, thread_id: str, **changes: Any) -> Exchange[Any]:
        """`metadata=` (merged; None values remove keys) and/or `resolved=`."""
        return (yield from _json(Call("PATCH", _thread_path(room, thread_id), json=changes)))

    @staticmethod
    def delete_thread(room: str, thread_id: str) -> Exchange[Any]:
        return (yield from _json(Call("DELETE", _thread_path(room, thread_id))))

    @staticmethod
    def follow_thread(room: str, thread_id: str, state: str) -> Exchange[Any]:
        """`subscribed`, `muted` or `default`."""
        path = _thread_path(room, thread_id, "subscription")
        return (yield from _json(Call("PUT", path, json={"state": state})))

    @staticmethod
    def reply(room: str, thread_id: str, body: Body) -> Exchange[Any]:
        path = _thread_path(room, thread_id, "comments")
        return (yield from _json(Call("POST", path, json={"body": _comment_body(body)})))

    @staticmethod
    def edit_comment(room: str, thread_id: str, comment_id: str, body: Body) -> Exchange[Any]:
        path = _comment_path(room, thread_id, comment_id)
        return (yield from _json(Call("PATCH", path, json={"body": _comment_body(body)})))

    @staticmethod
    def delete_comment(room: str, thread_id: str, comment_id: str) -> Exchange[Any]:
        return (yield from _json(Call("DELETE", _comment_path(room, thread_id, comment_id))))

    @staticmethod
    def react(
        room: str, thread_id: str, comment_id: str, emoji: str, *, add: bool = True
    ) -> Exchange[Any]:
        path = _comment_path(room, thread_id, comment_id, "reactions")
        call = (
            Call("POST", path, json={"emoji": emoji})
            if add
            else Call("DELETE", path, params={"emoji": emoji})
        )
        return (yield from _json(call))

    @staticmethod
    def notifications(*, limit: int = 50) -> Exchange[Any]:
        path = "/api/users/me/notifications"
        return (yield from _json(Call("GET", path, params={"limit": limit})))

    @staticmethod
    def read_notification(notification_id: str | None = None) -> Exchange[Any]:
        """Mark one notification read, or all of them (None)."""
        tail = "read-all" if notification_id is None else f"{quote(notification_id, safe='')}/read"
        return (yield from _json(Call("POST", "/api/users/me/notifications/" + tail)))

    # -- the document, versions, lifecycle (docs/http-api.md, docs/versions.md) ------------

    @staticmethod
    def get_doc(
        room: str, *, format: str = "json", state_vector: bytes | None = None
    ) -> Exchange[Any]:
        """`{"types", "content", "state_vector"}` (format json or html), or with
        format="update" the binary Yjs update (only what `state_vector` lacks)."""
        params: dict[str, str] = {"format": format}
        if state_vector is not None:
            params["stateVector"] = base64.b64encode(state_vector).decode()
        call = Call("GET", room_path(room, "doc"), params=params)
        if format != "update":
            return (yield from _json(call))
        return (yield from _bytes(call))

    @staticmethod
    def state_vector(room: str) -> Exchange[bytes]:
        body = yield from _json(Call("GET", room_path(room, "state-vector")))
        return base64.b64decode(body["state_vector"])

    @staticmethod
    def apply_update(room: str, update: bytes) -> Exchange[bytes]:
        """Apply a binary Yjs update; returns the document's new state vector."""
        call = Call("POST", room_path(room, "doc"), content=update, headers=_OCTETS)
        return base64.b64decode((yield from _json(call))["state_vector"])

    @staticmethod
    def apply_ops(room: str, ops: Any) -> Exchange[bytes]:
        """Apply JSON operations, all or nothing; returns the new state vector."""
        call = Call("POST", room_path(room, "doc"), json={"ops": list(ops)})
        return base64.b64decode((yield from _json(call))["state_vector"])

    @staticmethod
    def versions(room: str, *, cursor: str | None = None, limit: int = 20) -> Exchange[Any]:
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        return (yield from _json(Call("GET", room_path(room, "versions"), params=params)))

    @staticmethod
    def version(room: str, version_id: str, *, format: str = "json") -> Exchange[Any]:
        call = Call("GET", _version_path(room, version_id), params={"format": format})
        if format != "update":
            return (yield from _json(call))
        return (yield from _bytes(call))

    @staticmethod
    def create_version(room: str, name: str, description: str = "") -> Exchange[Any]:
        body = {"name": name, "description": description}
        return (yield from _json(Call("POST", room_path(room, "versions"), json=body)))

    @staticmethod
    def diff(room: str, a: str, b: str = "current") -> Exchange[Any]:
        path = _version_path(room, a, "diff", quote(b, safe=""))
        return (yield from _json(Call("GET", path)))

    @staticmethod
    def delete_version(room: str, version_id: str) -> Exchange[Any]:
        return (yield from _json(Call("DELETE", _version_path(room, version_id))))

    @staticmethod
    def restore(room: str, version_id: str) -> Exchange[Any]:
        return (yield from _json(Call("POST", _version_path(room, version_id, "restore"))))

    @staticmethod
    def delete_room(room: str) -> Exchange[Any]:
        return (yield from _json(Call("DELETE", room_path(room))))

    @staticmethod
    def export(room: str) -> Exchange[Any]:
        return (yield from _json(Call("GET", room_path(room, "export"))))

    @staticmethod
    def import_(room: str, archive: Any) -> Exchange[Any]:
        return (yield from _json(Call("POST", room_path(room, "import"), json=archive)))

    # -- presence and locks (docs/presence.md) -----------------------------------------

    @staticmethod
    def presence(room: str) -> Exchange[list[dict[str, Any]]]:
        """The users in `room` now (any node): one entry per verified user."""
        body = yield from _json(Call("GET", room_path(room, "presence")))
        users: list[dict[str, Any]] = body["users"]
        return users

    @staticmethod
    def user_presence(user_id: str) -> Exchange[list[str]]:
        """The rooms `user_id` is in now (needs a node-wide owner token)."""
        body = yield from _json(Call("GET", f"/api/users/{quote(user_id, safe='')}/presence"))
        rooms: list[str] = body["rooms"]
        return rooms

    @staticmethod
    def add_presence(room: str, state: Mapping[str, Any], *, ttl: float = 60) -> Exchange[Any]:
        """Presence for a participant with no WebSocket; returns `presenceId`, `clientId`."""
        payload = {"state": dict(state), "ttl": ttl}
        return (yield from _json(Call("POST", room_path(room, "presence"), json=payload)))

    @staticmethod
    def remove_presence(room: str, presence_id: str) -> Exchange[Any]:
        path = room_path(room, "presence", quote(presence_id, safe=""))
        return (yield from _json(Call("DELETE", path)))

    @staticmethod
    def locks(room: str) -> Exchange[list[dict[str, Any]]]:
        body = yield from _json(Call("GET", room_path(room, "locks")))
        locks: list[dict[str, Any]] = body["locks"]
        return locks

    @staticmethod
    def acquire_lock(room: str, element: str, *, ttl: float = 30) -> Exchange[dict[str, Any]]:
        """The lock with its `fence`; `HTTPError` (409, naming the holder) if it is taken."""
        path = room_path(room, "locks", quote(element, safe=""))
        lock: dict[str, Any] = yield from _json(Call("POST", path, json={"ttl": ttl}))
        return lock

    @staticmethod
    def release_lock(room: str, element: str, *, fence: int | None = None) -> Exchange[Any]:
        path = room_path(room, "locks", quote(element, safe=""))
        params = {"fence": str(fence)} if fence is not None else None
        return (yield from _json(Call("DELETE", path, params=params)))


_OCTETS = {"content-type": "application/octet-stream"}


def _version_path(room: str, version_id: str, *rest: str) -> str:
    return room_path(room, "versions", quote(version_id, safe=""), *rest)


def _bytes(call: Call) -> Exchange[bytes]:
    response = yield call
    if not response.is_success:
        _body(response)  # raises HTTPError
    return response.content


def _request(call: Call) -> dict[str, Any]:
    return {
        "params": call.params,
        "json": call.json,
        "content": call.content,
        "headers": call.headers,
    }


class Client:
    """Blocking client. Use as a context manager, or call `close()`."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:1234",
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = http_base_url(url)
        self._http = httpx.Client(
            base_url=self.base_url, headers=_headers(token), timeout=timeout, transport=transport
        )

    def _drive(self, exchange: Exchange[T]) -> T:
        try:
            call = next(exchange)
            while True:
                try:
                    response = self._http.request(call.method, call.path, **_request(call))
                except httpx.TransportError as exc:
                    raise ConnectError(f"cannot reach {self.base_url}: {exc}") from exc
                call = exchange.send(response)
        except StopIteration as done:
            result: T = done.value
            return result

    def health(self) -> dict[str, Any]:
        """`GET /healthz`: the process is alive (raises if not)."""
        return self._drive(Endpoints.health())

    def ready(self) -> Readiness:
        """`GET /readyz`; a 503 ("not ready") is an answer, not an error."""
        return self._drive(Endpoints.ready())

    def rooms(self) -> Rooms:
        """`GET /api/rooms`: rooms loaded on this node and their clients."""
        return self._drive(Endpoints.rooms())

    def room(self, name: str) -> dict[str, Any]:
        """`GET /api/rooms/<name>`: one loaded room and its connections, as the
        server reports them (`HTTPError` 404 if it is not loaded on this node)."""
        return self._drive(Endpoints.room(name))

    def metrics(self) -> str:
        """`GET /metrics`: the Prometheus exposition text."""
        return self._drive(Endpoints.metrics())

    def get(self, path: str, *, ok: tuple[int, ...] = ()) -> Any:
        """Any endpoint's JSON body as it is; a status in `ok` is an answer, not an error."""
        return self._drive(Endpoints.get(path, ok=ok))

    # -- comments: see Endpoints ------------------------------------------------------

    def threads(self, room: str, *, resolve_anchors: bool = False, **filters: Any) -> Any:
        """`{"threads": [...], "nextCursor": ...}`, newest first."""
        return self._drive(Endpoints.threads(room, resolve_anchors=resolve_anchors, **filters))

    def thread(self, room: str, thread_id: str, *, resolve_anchors: bool = False) -> Any:
        return self._drive(Endpoints.thread(room, thread_id, resolve_anchors=resolve_anchors))

    def create_thread(
        self, room: str, body: Body, *, anchor: Any = None, metadata: Any = None
    ) -> Any:
        return self._drive(Endpoints.create_thread(room, body, anchor=anchor, metadata=metadata))

    def update_thread(self, room: str, thread_id: str, **changes: Any) -> Any:
        return self._drive(Endpoints.update_thread(room, thread_id, **changes))

    def resolve(self, room: str, thread_id: str, resolved: bool = True) -> Any:
        return self._drive(Endpoints.update_thread(room, thread_id, resolved=resolved))

    def delete_thread(self, room: str, thread_id: str) -> None:
        self._drive(Endpoints.delete_thread(room, thread_id))

    def follow_thread(self, room: str, thread_id: str, state: str = "subscribed") -> Any:
        return self._drive(Endpoints.follow_thread(room, thread_id, state))

    def reply(self, room: str, thread_id: str, body: Body) -> Any:
        return self._drive(Endpoints.reply(room, thread_id, body))

    def edit_comment(self, room: str, thread_id: str, comment_id: str, body: Body) -> Any:
        return self._drive(Endpoints.edit_comment(room, thread_id, comment_id, body))

    def delete_comment(self, room: str, thread_id: str, comment_id: str) -> None:
        self._drive(Endpoints.delete_comment(room, thread_id, comment_id))

    def react(self, room: str, thread_id: str, comment_id: str, emoji: str) -> Any:
        return self._drive(Endpoints.react(room, thread_id, comment_id, emoji))

    def unreact(self, room: str, thread_id: str, comment_id: str, emoji: str) -> Any:
        return self._drive(Endpoints.react(room, thread_id, comment_id, emoji, add=False))

    def notifications(self, *, limit: int = 50) -> Any:
        return self._drive(Endpoints.notifications(limit=limit))

    def read_notification(self, notification_id: str) -> Any:
        return self._drive(Endpoints.read_notification(notification_id))

    def read_all_notifications(self) -> Any:
        return self._drive(Endpoints.read_notification(None))

    def comment_events(self, room: str, *, last_event_id: str | None = None) -> Iterator[FeedEvent]:
        """The room's comment events (`COMMENT_EVENTS`) as they happen."""
        for event in self.events(room, last_event_id=last_event_id):
            if event.type in COMMENT_EVENTS:
                yield event

    def events(self, room: str, *, last_event_id: str | None = None) -> Iterator[FeedEvent]:
        """Follow the room's event feed (blocks; ends when the server ends it)."""
        path = room_path(room, "events")
        try:
            with connect_sse(
                self._http, "GET", path, headers=_feed_headers(last_event_id), timeout=None
            ) as source:
                if not source.response.is_success:
                    source.response.read()
                    _body(source.response)
                for sse in source.iter_sse():
                    event = _feed_event(sse)
                    if event is not None:
                        yield event
        except httpx.TransportError as exc:
            raise ConnectError(f"cannot reach {self.base_url}: {exc}") from exc

    # -- the document, versions, lifecycle ----------------------------------------------

    def get_doc(self, room: str, *, format: str = "json", state_vector: bytes | None = None) -> Any:
        """The document as JSON (`format` json/html), or the Yjs update (format="update")."""
        return self._drive(Endpoints.get_doc(room, format=format, state_vector=state_vector))

    def state_vector(self, room: str) -> bytes:
        return self._drive(Endpoints.state_vector(room))

    def apply_update(self, room: str, update: bytes) -> bytes:
        return self._drive(Endpoints.apply_update(room, update))

    def apply_ops(self, room: str, ops: Any) -> bytes:
        return self._drive(Endpoints.apply_ops(room, ops))

    def versions(self, room: str, *, cursor: str | None = None, limit: int = 20) -> Any:
        return self._drive(Endpoints.versions(room, cursor=cursor, limit=limit))

    def version(self, room: str, version_id: str, *, format: str = "json") -> Any:
        return self._drive(Endpoints.version(room, version_id, format=format))

    def create_version(self, room: str, name: str, description: str = "") -> Any:
        return self._drive(Endpoints.create_version(room, name, description))

    def diff(self, room: str, a: str, b: str = "current") -> Any:
        return self._drive(Endpoints.diff(room, a, b))

    def restore(self, room: str, version_id: str) -> Any:
        return self._drive(Endpoints.restore(room, version_id))

    def delete_version(self, room: str, version_id: str) -> Any:
        return self._drive(Endpoints.delete_version(room, version_id))

    def delete_room(self, room: str) -> Any:
        return self._drive(Endpoints.delete_room(room))

    def export(self, room: str) -> Any:
        return self._drive(Endpoints.export(room))

    def import_(self, room: str, archive: Any) -> Any:
        return self._drive(Endpoints.import_(room, archive))

    # -- presence and locks: see Endpoints ----------------------------------------------

    def presence(self, room: str) -> list[dict[str, Any]]:
        return self._drive(Endpoints.presence(room))

    def user_presence(self, user_id: str) -> list[str]:
        return self._drive(Endpoints.user_presence(user_id))

    def add_presence(self, room: str, state: Mapping[str, Any], *, ttl: float = 60) -> Any:
        return self._drive(Endpoints.add_presence(room, state, ttl=ttl))

    def remove_presence(self, room: str, presence_id: str) -> None:
        self._drive(Endpoints.remove_presence(room, presence_id))

    def locks(self, room: str) -> list[dict[str, Any]]:
        return self._drive(Endpoints.locks(room))

    def acquire_lock(self, room: str, element: str, *, ttl: float = 30) -> dict[str, Any]:
        return self._drive(Endpoints.acquire_lock(room, element, ttl=ttl))

    def release_lock(self, room: str, element: str, *, fence: int | None = None) -> None:
        self._drive(Endpoints.release_lock(room, element, fence=fence))

    @contextlib.contextmanager
    def lock(self, room: str, element: str, *, ttl: float = 30) -> Iterator[dict[str, Any]]:
        """Hold `element` for the block (released after it, even on error)."""
        held = self.acquire_lock(room, element, ttl=ttl)
        try:
            yield held
        finally:
            with contextlib.suppress(HTTPError):
                self.release_lock(room, element, fence=held["fence"])

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient:
    """The same API as `Client`, with `await`. Use `async with`, or `await close()`."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:1234",
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = http_base_url(url)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=_headers(token), timeout=timeout, transport=transport
        )

    async def _drive(self, exchange: Exchange[T]) -> T:
        try:
            call = next(exchange)
            while True:
                try:
                    response = await self._http.request(call.method, call.path, **_request(call))
                except httpx.TransportError as exc:
                    raise ConnectError(f"cannot reach {self.base_url}: {exc}") from exc
                call = exchange.send(response)
        except StopIteration as done:
            result: T = done.value
            return result

    async def health(self) -> dict[str, Any]:
        return await self._drive(Endpoints.health())

    async def ready(self) -> Readiness:
        return await self._drive(Endpoints.ready())

    async def rooms(self) -> Rooms:
        return await self._drive(Endpoints.rooms())

    async def room(self, name: str) -> dict[str, Any]:
        return await self._drive(Endpoints.room(name))

    async def metrics(self) -> str:
        return await self._drive(Endpoints.metrics())

    async def get(self, path: str, *, ok: tuple[int, ...] = ()) -> Any:
        return await self._drive(Endpoints.get(path, ok=ok))

    # -- comments: see Endpoints ------------------------------------------------------

    async def threads(self, room: str, *, resolve_anchors: bool = False, **filters: Any) -> Any:
        return await self._drive(
            Endpoints.threads(room, resolve_anchors=resolve_anchors, **filters)
        )

    async def thread(self, room: str, thread_id: str, *, resolve_anchors: bool = False) -> Any:
        return await self._drive(Endpoints.thread(room, thread_id, resolve_anchors=resolve_anchors))

    async def create_thread(
        self, room: str, body: Body, *, anchor: Any = None, metadata: Any = None
    ) -> Any:
        return await self._drive(
            Endpoints.create_thread(room, body, anchor=anchor, metadata=metadata)
        )

    async def update_thread(self, room: str, thread_id: str, **changes: Any) -> Any:
        return await self._drive(Endpoints.update_thread(room, thread_id, **changes))

    async def resolve(self, room: str, thread_id: str, resolved: bool = True) -> Any:
        return await self._drive(Endpoints.update_thread(room, thread_id, resolved=resolved))

    async def delete_thread(self, room: str, thread_id: str) -> None:
        await self._drive(Endpoints.delete_thread(room, thread_id))

    async def follow_thread(self, room: str, thread_id: str, state: str = "subscribed") -> Any:
        return await self._drive(Endpoints.follow_thread(room, thread_id, state))

    async def reply(self, room: str, thread_id: str, body: Body) -> Any:
        return await self._drive(Endpoints.reply(room, thread_id, body))

    async def edit_comment(self, room: str, thread_id: str, comment_id: str, body: Body) -> Any:
        return await self._drive(Endpoints.edit_comment(room, thread_id, comment_id, body))

    async def delete_comment(self, room: str, thread_id: str, comment_id: str) -> None:
        await self._drive(Endpoints.delete_comment(room, thread_id, comment_id))

    async def react(self, room: str, thread_id: str, comment_id: str, emoji: str) -> Any:
        return await self._drive(Endpoints.react(room, thread_id, comment_id, emoji))

    async def unreact(self, room: str, thread_id: str, comment_id: str, emoji: str) -> Any:
        return await self._drive(Endpoints.react(room, thread_id, comment_id, emoji, add=False))

    async def notifications(self, *, limit: int = 50) -> Any:
        return await self._drive(Endpoints.notifications(limit=limit))

    async def read_notification(self, notification_id: str) -> Any:
        return await self._drive(Endpoints.read_notification(notification_id))

    async def read_all_notifications(self) -> Any:
        return await self._drive(Endpoints.read_notification(None))

    async def comment_events(
        self, room: str, *, last_event_id: str | None = None
    ) -> AsyncIterator[FeedEvent]:
        """The room's comment events (`COMMENT_EVENTS`): `async for e in api.comment_events(r)`."""
        async for event in self.events(room, last_event_id=last_event_id):
            if event.type in COMMENT_EVENTS:
                yield event

    async def events(
        self, room: str, *, last_event_id: str | None = None
    ) -> AsyncIterator[FeedEvent]:
        """Follow the room's event feed: `async for event in client.events(room)`."""
        path = room_path(room, "events")
        try:
            async with aconnect_sse(
                self._http, "GET", path, headers=_feed_headers(last_event_id), timeout=None
            ) as source:
                if not source.response.is_success:
                    await source.response.aread()
                    _body(source.response)
                async for sse in source.aiter_sse():
                    event = _feed_event(sse)
                    if event is not None:
                        yield event
        except httpx.TransportError as exc:
            raise ConnectError(f"cannot reach {self.base_url}: {exc}") from exc

    # -- the document, versions, lifecycle ----------------------------------------------

    async def get_doc(
        self, room: str, *, format: str = "json", state_vector: bytes | None = None
    ) -> Any:
        """The document as JSON (`format` json/html), or the Yjs update (format="update")."""
        return await self._drive(Endpoints.get_doc(room, format=format, state_vector=state_vector))

    async def state_vector(self, room: str) -> bytes:
        return await self._drive(Endpoints.state_vector(room))

    async def apply_update(self, room: str, update: bytes) -> bytes:
        return await self._drive(Endpoints.apply_update(room, update))

    async def apply_ops(self, room: str, ops: Any) -> bytes:
        return await self._drive(Endpoints.apply_ops(room, ops))

    async def versions(self, room: str, *, cursor: str | None = None, limit: int = 20) -> Any:
        return await self._drive(Endpoints.versions(room, cursor=cursor, limit=limit))

    async def version(self, room: str, version_id: str, *, format: str = "json") -> Any:
        return await self._drive(Endpoints.version(room, version_id, format=format))

    async def create_version(self, room: str, name: str, description: str = "") -> Any:
        return await self._drive(Endpoints.create_version(room, name, description))

    async def diff(self, room: str, a: str, b: str = "current") -> Any:
        return await self._drive(Endpoints.diff(room, a, b))

    async def restore(self, room: str, version_id: str) -> Any:
        return await self._drive(Endpoints.restore(room, version_id))

    async def delete_version(self, room: str, version_id: str) -> Any:
        return await self._drive(Endpoints.delete_version(room, version_id))

    async def delete_room(self, room: str) -> Any:
        return await self._drive(Endpoints.delete_room(room))

    async def export(self, room: str) -> Any:
        return await self._drive(Endpoints.export(room))

    async def import_(self, room: str, archive: Any) -> Any:
        return await self._drive(Endpoints.import_(room, archive))

    # -- presence and locks: see Endpoints ----------------------------------------------

    async def presence(self, room: str) -> list[dict[str, Any]]:
        return await self._drive(Endpoints.presence(room))

    async def user_presence(self, user_id: str) -> list[str]:
        return await self._drive(Endpoints.user_presence(user_id))

    async def add_presence(self, room: str, state: Mapping[str, Any], *, ttl: float = 60) -> Any:
        return await self._drive(Endpoints.add_presence(room, state, ttl=ttl))

    async def remove_presence(self, room: str, presence_id: str) -> None:
        await self._drive(Endpoints.remove_presence(room, presence_id))

    async def locks(self, room: str) -> list[dict[str, Any]]:
        return await self._drive(Endpoints.locks(room))

    async def acquire_lock(self, room: str, element: str, *, ttl: float = 30) -> dict[str, Any]:
        return await self._drive(Endpoints.acquire_lock(room, element, ttl=ttl))

    async def release_lock(self, room: str, element: str, *, fence: int | None = None) -> None:
        await self._drive(Endpoints.release_lock(room, element, fence=fence))

    @contextlib.asynccontextmanager
    async def lock(
        self, room: str, element: str, *, ttl: float = 30
    ) -> AsyncIterator[dict[str, Any]]:
        """`async with client.lock(room, element) as held:` (released after, even on error)."""
        held = await self.acquire_lock(room, element, ttl=ttl)
        try:
            yield held
        finally:
            with contextlib.suppress(HTTPError):
                await self.release_lock(room, element, fence=held["fence"])

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
