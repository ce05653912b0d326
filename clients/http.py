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
`GET /healthz`, `/readyz`, `/api/rooms`, `/api/rooms/<room>`, `/metrics`. With
`--auth jwt` the `/api/*` endpoints need an owner token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from httpx_sse import ServerSentEvent, aconnect_sse, connect_sse

from ysync.clients.errors import ClientError, ConnectError

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

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
