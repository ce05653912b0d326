"""ysync's own WebSocket protocol for uvicorn (`ysync serve` passes it as `ws=`).

uvicorn's WebSocket protocols keep a task, a queue and a parser stack per
connection, for its whole life: most of an idle connection's memory. This
one speaks ASGI only for the handshake. An app that finds the
`ysync.websocket` extension in the scope may then `attach` two callbacks and
return: from there each message is handed to `on_message` straight from
`data_received`, and `on_close` runs once when the connection is gone. No task,
queue or scope outlives the handshake. An app that does not attach gets a
plain ASGI WebSocket, so every route still works.

Attached connections are written to through the protocol itself (`write`,
`writelines`, `get_write_buffer_size`, `send_close`): it behaves as the
connection's transport, and knows when a close handshake is under way.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import unquote

import orjson
from starlette.types import Message, Scope
from uvicorn.config import Config
from uvicorn.server import ServerState

from ysync.rooms.vocabulary import CloseCode
from ysync.server import ws_frames
from ysync.server.ws_frames import BINARY, CLOSE, PING, PONG, TEXT, FrameError, FrameReader

log = logging.getLogger("ysync.server")

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CLOSE_TIMEOUT = 15.0  # seconds a close handshake may take before the connection is dropped
_MAX_REQUEST = 64 * 1024
_MAX_EARLY = 64 * 1024  # bytes read past the request head before the app answers it

OnMessage = Callable[[bytes | str], None]


def accept_key(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


_ERROR_CODES = {
    400: "bad_request",
    403: "forbidden",
    426: "upgrade_required",
    431: "headers_too_large",
    500: "internal_error",
}


def _http_error(status: int, phrase: str, message: str, extra: bytes = b"") -> bytes:
    body = orjson.dumps({"error": message, "code": _ERROR_CODES.get(status, "error")})
    return (
        f"HTTP/1.1 {status} {phrase}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n".encode()
        + extra
        + b"\r\n"
        + body
    )


def _parse_request(raw: bytes) -> tuple[str, list[tuple[bytes, bytes]]]:
    """The target and headers (names lower-cased) of an HTTP/1.1 request head."""
    lines = raw.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[0] != b"GET":
        raise ValueError("a WebSocket handshake is a GET request")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            raise ValueError("malformed header line")
        headers.append((name.strip().lower(), value.strip()))
    return parts[1].decode("latin-1"), headers


def _tokens(value: bytes) -> set[bytes]:
    """The comma-separated tokens of a header value, lower-cased (RFC 9110 5.6.1)."""
    return {token.strip().lower() for token in value.split(b",")}


def _handshake_refusal(headers: dict[bytes, bytes]) -> bytes | None:
    """The HTTP error answering a request that is not a valid WebSocket handshake
    (RFC 6455 4.2.1: `Upgrade` holds the token websocket, `Connection` the token Upgrade)."""
    if b"websocket" not in _tokens(headers.get(b"upgrade", b"")):
        return _http_error(400, "Bad Request", "missing 'Upgrade: websocket'")
    if b"upgrade" not in _tokens(headers.get(b"connection", b"")):
        return _http_error(400, "Bad Request", "missing 'Connection: Upgrade'")
    if headers.get(b"sec-websocket-version") != b"13":
        return _http_error(
            426,
            "Upgrade Required",
            "only WebSocket version 13 is supported",
            b"sec-websocket-version: 13\r\n",
        )
    try:
        valid = len(base64.b64decode(headers.get(b"sec-websocket-key", b""), validate=True)) == 16
    except ValueError:
        valid = False
    if not valid:
        return _http_error(400, "Bad Request", "missing or invalid Sec-WebSocket-Key")
    return None


class YsyncWebSocketProtocol(asyncio.Protocol):
    """One WebSocket connection, handed over by uvicorn's HTTP protocol on upgrade."""

    __slots__ = (
        "_asgi",
        "_close_timer",
        "_early_budget",
        "_heard",
        "_on_close",
        "_on_message",
        "_paused",
        "_ping_outstanding",
        "_reader",
        "_request",
        "client",
        "close_sent",
        "config",
        "disconnected",
        "handshake_complete",
        "server_state",
        "transport",
    )

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.server_state = server_state
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set on connection_made
        self.client: tuple[str, int] | None = None
        self.handshake_complete = False
        self.close_sent = False
        self.disconnected = False
        self._reader = FrameReader(config.ws_max_size)
        self._request: bytes | None = b""  # the HTTP request head, until it is complete
        self._asgi: _AsgiSide | None = _AsgiSide(self, app_state)
        self._on_message: OnMessage | None = None
        self._on_close: Callable[[], None] | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._heard = False  # anything received since the last heartbeat
        self._ping_outstanding = False
        self._early_budget = 0  # bytes held for the app before it attaches; 0: no bound
        self._paused = False  # reading paused: too much came before the handshake's answer

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvicorn types the set with its own protocols; shutdown() is all it calls.
        self.server_state.connections.add(self)  # type: ignore[arg-type]
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.client = (str(peer[0]), int(peer[1]))

    def connection_lost(self, exc: Exception | None) -> None:
        self.disconnected = True
        self.server_state.connections.discard(self)
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        on_close, self._on_close, self._on_message = self._on_close, None, None
        if on_close is not None:
            on_close()
        elif self._asgi is not None:
            self._asgi.disconnected(
                CloseCode.NO_STATUS if self.handshake_complete else CloseCode.ABNORMAL
            )

    def data_received(self, data: bytes) -> None:
        if not self.handshake_complete:
            self._before_answer(data)
            return
        if self.disconnected:
            return
        try:
            frames = self._reader.feed(data)
        except FrameError as exc:
            self._fail(exc.code, exc.reason)
            return
        self._heard = True
        self._handle(frames)
        if self._early_budget:
            self._hold_early()

    def _handle(self, frames: list[tuple[int, bytes]]) -> None:
        for opcode, payload in frames:
            if opcode in (BINARY, TEXT):
                if self.close_sent:
                    continue  # draining until the client answers our close
                if opcode == TEXT:
                    try:
                        message: bytes | str = payload.decode("utf-8")
                    except UnicodeDecodeError:
                        self._fail(ws_frames.CLOSE_INVALID_DATA, "text frame is not valid UTF-8")
                        return
                else:
                    message = payload
                self._deliver(message)
            elif opcode == PING:
                if not self.close_sent:
                    self.transport.write(ws_frames.frame_header(PONG, len(payload)) + payload)
            elif opcode == CLOSE:
                self._receive_close(payload)
                return
            # PONG: being heard from is all a pong is for

    def _hold_early(self) -> None:
        """Before `attach`: stop reading while more than the budget is held for the app."""
        asgi = self._asgi
        held = self._reader.buffered + (asgi.queued_bytes if asgi is not None else 0)
        if held > self._early_budget:
            self._pause()
        elif self._paused:
            self._resume()

    def _pause(self) -> None:
        if not self._paused and not self.disconnected:
            self._paused = True
            self.transport.pause_reading()

    def _resume(self) -> None:
        if self._paused and not self.disconnected:
            self._paused = False
            self.transport.resume_reading()

    def _before_answer(self, data: bytes) -> None:
        if self._request is not None:
            self._receive_handshake(data)
        elif self._asgi is not None:  # frames sent before our answer: kept for after it
            self._asgi.early_bytes += data
            if len(self._asgi.early_bytes) > _MAX_EARLY:
                self._pause()  # until the app answers the handshake

    def eof_received(self) -> bool | None:
        return None  # let the transport close: a half-closed WebSocket is of no use

    def pause_writing(self) -> None:
        pass  # senders bound themselves by `get_write_buffer_size`

    def resume_writing(self) -> None:
        pass

    # -- the transport-like side an attached app writes to --------------------------------

    def limit_until_attached(self, max_buffered: int) -> None:
        """Until `attach`: hold at most about `max_buffered` bytes for the app (a
        partial frame and messages it has not read), then stop reading — TCP
        backpressure: the rest waits in the client. An endpoint calls this before
        it authenticates, so an unauthenticated socket holds only that much; a
        client that never authenticates gets the endpoint's auth timeout."""
        self._early_budget = max_buffered

    def attach(self, on_message: OnMessage, on_close: Callable[[], None]) -> None:
        """From now on, hand every message to `on_message` as it arrives; `on_close`
        runs once when the connection is gone. The ASGI side is dropped."""
        self._early_budget = 0
        if not self.close_sent:
            self._resume()
        asgi, self._asgi = self._asgi, None
        if self.disconnected:
            on_close()
            return
        self._on_message, self._on_close = on_message, on_close
        if asgi is not None:
            for message in asgi.unread_messages():  # frames that came before attach
                if self._on_message is None:
                    break
                on_message(message)

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    def writelines(self, data: list[bytes]) -> None:
        self.transport.writelines(data)

    def get_write_buffer_size(self) -> int:
        return int(self.transport.get_write_buffer_size())

    def is_closing(self) -> bool:
        return self.close_sent or self.disconnected or bool(self.transport.is_closing())

    def abort(self) -> None:
        self.transport.abort()

    def send_close(self, code: int, reason: str) -> None:
        """Start the closing handshake (behind whatever is buffered); the connection
        is dropped if the client has not answered within CLOSE_TIMEOUT."""
        if self.close_sent or self.disconnected:
            return
        self.close_sent = True
        self._reader.discard = True  # from now on only its close answer counts
        self._resume()  # to read that answer
        payload = code.to_bytes(2, "big") + reason.encode("utf-8")[:123]
        self.transport.write(ws_frames.frame_header(CLOSE, len(payload)) + payload)
        loop = asyncio.get_running_loop()
        self._close_timer = loop.call_later(CLOSE_TIMEOUT, self.transport.abort)

    def heartbeat(self) -> None:
        """Called every few seconds: ping a client that has been silent since the
        last call, and drop one that did not answer that ping with anything (a
        vanished client leaves no FIN behind). Busy clients are never pinged."""
        if self.close_sent or self.disconnected:
            return
        if self._heard:
            self._heard = self._ping_outstanding = False
            return
        if self._ping_outstanding:
            log.info("client did not answer a ping: dropped", extra={"client": self.client})
            self.transport.abort()
            return
        self._ping_outstanding = True
        self.transport.write(ws_frames.frame_header(PING, 0))

    def shutdown(self) -> None:
        """uvicorn's shutdown: ysync's drain has normally closed everything already."""
        if not self.handshake_complete:
            self.transport.close()
        elif not self.close_sent:
            self.send_close(CloseCode.SERVICE_RESTART, "server restarting")

    # -- internals -------------------------------------------------------------------------

    def _deliver(self, message: bytes | str) -> None:
        if self._on_message is not None:
            self._on_message(message)
        elif self._asgi is not None:
            self._asgi.message(message)

    def _receive_close(self, payload: bytes) -> None:
        try:
            code, _reason = ws_frames.parse_close(payload)
        except FrameError as exc:
            self._fail(exc.code, exc.reason)
            return
        if not self.close_sent:
            # Echo the client's code (RFC 6455 5.5.1), then hang up.
            self.close_sent = True
            echo = b"" if code == CloseCode.NO_STATUS else payload[:2]
            self.transport.write(ws_frames.frame_header(CLOSE, len(echo)) + echo)
        if self._asgi is not None:
            self._asgi.disconnected(code)
        self.transport.close()

    def _fail(self, code: int, reason: str) -> None:
        log.info("WebSocket protocol error: %s", reason, extra={"client": self.client})
        self.send_close(code, reason)
        self.transport.close()

    def _receive_handshake(self, data: bytes) -> None:
        request = (self._request or b"") + data
        end = request.find(b"\r\n\r\n")
        if end < 0:
            self._request = request
            if len(request) > _MAX_REQUEST:
                self._refuse(
                    _http_error(431, "Request Header Fields Too Large", "request too large")
                )
            return
        head, rest = request[:end], request[end + 4 :]
        self._request = None
        try:
            target, headers = _parse_request(head)
        except ValueError as exc:
            self._refuse(_http_error(400, "Bad Request", str(exc)))
            return
        refusal = _handshake_refusal(dict(headers))
        if refusal is not None:
            self._refuse(refusal)
            return
        assert self._asgi is not None
        self._asgi.early_bytes = bytearray(rest)  # frames sent before our answer: kept for after it
        self._asgi.start(target, headers)

    def _refuse(self, response: bytes) -> None:
        """Answer with an HTTP error and hang up; nothing the client sends counts any more."""
        self.handshake_complete = True
        self.close_sent = True
        self.disconnected = True
        self.transport.write(response)
        self.transport.close()

    def _accept(self, key: bytes, subprotocol: str | None, headers: list[Any]) -> None:
        lines = [
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n",
            b"sec-websocket-accept: " + accept_key(key) + b"\r\n",
        ]
        if subprotocol:
            lines.append(b"sec-websocket-protocol: " + subprotocol.encode("latin-1") + b"\r\n")
        for name, value in [*self.server_state.default_headers, *headers]:
            lines.append(bytes(name) + b": " + bytes(value) + b"\r\n")
        lines.append(b"\r\n")
        self.handshake_complete = True
        self.transport.write(b"".join(lines))


class _AsgiSide:
    """The ASGI half of a connection: the scope, the app's task and its receive
    queue. Lives until the app attaches or the connection ends."""

    def __init__(self, protocol: YsyncWebSocketProtocol, app_state: dict[str, Any]) -> None:
        self.protocol = protocol
        self.app_state = app_state
        self.scope: Scope = {}
        self.key = b""
        self.queue: deque[Message] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.early_bytes = bytearray()
        self.queued_bytes = 0  # of messages the app has not read

    def start(self, target: str, headers: list[tuple[bytes, bytes]]) -> None:
        protocol = self.protocol
        config = protocol.config
        raw_path, _, query = target.partition("?")
        header_map = dict(headers)
        self.key = header_map[b"sec-websocket-key"]
        subprotocols = [
            p.strip()
            for p in header_map.get(b"sec-websocket-protocol", b"").decode("latin-1").split(",")
            if p.strip()
        ]
        server = protocol.transport.get_extra_info("sockname")
        self.scope = {
            "type": "websocket",
            "asgi": {"version": config.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "wss" if protocol.transport.get_extra_info("sslcontext") else "ws",
            "server": tuple(server[:2]) if isinstance(server, tuple) else None,
            "client": protocol.client,
            "root_path": config.root_path,
            "path": config.root_path + unquote(raw_path),
            "raw_path": config.root_path.encode("ascii") + raw_path.encode("latin-1"),
            "query_string": query.encode("latin-1"),
            "headers": headers,
            "subprotocols": subprotocols,
            "state": self.app_state.copy(),
            "extensions": {"ysync.websocket": protocol},
        }
        self.queue.append({"type": "websocket.connect"})
        tasks = protocol.server_state.tasks
        task = asyncio.get_running_loop().create_task(self.run())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    # -- events from the protocol --------------------------------------------------------

    def message(self, message: bytes | str) -> None:
        key = "bytes" if isinstance(message, bytes) else "text"
        self.queued_bytes += len(message)
        self._put({"type": "websocket.receive", key: message})

    def disconnected(self, code: int) -> None:
        self._put({"type": "websocket.disconnect", "code": code})

    def unread_messages(self) -> list[bytes | str]:
        """Messages received but not yet read by the app (handed over on attach)."""
        unread = [
            m.get("bytes", m.get("text")) for m in self.queue if m["type"] == "websocket.receive"
        ]
        self.queue.clear()
        self.queued_bytes = 0
        return [m for m in unread if m is not None]

    def _put(self, event: Message) -> None:
        self.queue.append(event)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the ASGI app ----------------------------------------------------------------------

    async def run(self) -> None:
        protocol = self.protocol
        try:
            await protocol.config.loaded_app(self.scope, self.receive, self.send)
        except Exception:
            log.exception("error in the WebSocket app")
            if not protocol.handshake_complete:
                protocol._refuse(_http_error(500, "Internal Server Error", "internal error"))
            else:
                protocol.send_close(CloseCode.INTERNAL_ERROR, "internal error")
            return
        if protocol._on_message is not None or protocol.disconnected:
            return  # attached: the connection lives on in its callbacks
        if not protocol.handshake_complete:
            log.error("WebSocket app returned without accepting or refusing")
            protocol._refuse(_http_error(500, "Internal Server Error", "internal error"))
        elif not protocol.close_sent:
            protocol.send_close(CloseCode.NORMAL, "")

    async def receive(self) -> Message:
        while not self.queue:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        event = self.queue.popleft()
        if event["type"] == "websocket.receive":
            self.queued_bytes -= len(event.get("bytes") or event.get("text") or "")
            if self.protocol._early_budget:
                self.protocol._hold_early()
        return event

    async def send(self, message: Message) -> None:
        protocol = self.protocol
        kind = message["type"]
        if protocol.disconnected:
            raise OSError("client disconnected")
        if not protocol.handshake_complete:
            if kind == "websocket.accept":
                protocol._accept(
                    self.key, message.get("subprotocol"), list(message.get("headers", []))
                )
                if not protocol.close_sent:
                    protocol._resume()  # what comes next is bounded by the budget now
                if self.early_bytes:
                    early, self.early_bytes = bytes(self.early_bytes), bytearray()
                    protocol.data_received(early)
            elif kind == "websocket.close":
                protocol._refuse(_http_error(403, "Forbidden", message.get("reason") or "refused"))
                self.disconnected(CloseCode.ABNORMAL)
            else:
                raise RuntimeError(f"expected websocket.accept or websocket.close, got {kind!r}")
            return
        if protocol.close_sent:
            return
        if kind == "websocket.send":
            data = message.get("bytes")
            if data is None:
                payload = message.get("text", "").encode("utf-8")
                protocol.write(ws_frames.frame_header(TEXT, len(payload)) + payload)
            else:
                protocol.write(ws_frames.frame_header(BINARY, len(data)) + data)
        elif kind == "websocket.close":
            protocol.send_close(message.get("code", CloseCode.NORMAL), message.get("reason") or "")
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} on an open WebSocket")
