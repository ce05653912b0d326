"""Async Python client for ysync and any y-websocket-protocol server.

    async with connect("ws://127.0.0.1:1234", "my-room", token_provider=get_token) as session:
        await session.synced()
        with session.edit():
            session.doc.get("text", type=Text).insert(0, "hello ")
        session.awareness.set_local_state({"user": {"name": "bot"}})

`session.doc` is a pycrdt Doc[Any] kept in sync both ways for the session's whole
life: the session reconnects on its own (exponential backoff with jitter and a
cap), and edits made while offline stay in the local document and reach the
server in the sync handshake of the next connection. `session.status` and
`on_status(...)` report connecting / connected / synced / disconnected / closed.
Permanent refusals (close codes 4400-4499) end the session with a typed error
(see `ysync.clients.errors`), except 4401 when a token provider can fetch a new
token. Closing sends the removal of our awareness state so our cursor vanishes
at once for everyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from pycrdt import Doc, Transaction, TransactionEvent
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.protocol import State

from ysync import __version__
from ysync.clients.awareness import ClientAwareness
from ysync.clients.backoff import Backoff
from ysync.clients.errors import (
    CLOSE_ABNORMAL,
    CLOSE_NORMAL,
    SLOW_DOWN_CODES,
    AuthenticationError,
    ClientError,
    CloseError,
    ConnectError,
    ReadOnlyError,
    SessionClosedError,
    close_error,
    handshake_error,
)
from ysync.clients.sync import EMPTY_UPDATE as EMPTY_UPDATE
from ysync.clients.sync import DocSync
from ysync.rooms import codec

log = logging.getLogger("ysync.clients")

RENEW_INTERVAL = 15.0  # as the JS provider: others drop states older than 30 s
_SLOW_DOWN_ATTEMPT = 3  # after 4529/4503/1013, start the backoff at this step

TokenProvider = Callable[[], Awaitable[str | None] | str | None]


class Status(enum.StrEnum):
    """Where a session is. Every change is reported to `on_status` callbacks."""

    CONNECTING = "connecting"  # opening a WebSocket (first time or reconnecting)
    CONNECTED = "connected"  # open; the sync handshake is under way
    SYNCED = "synced"  # the server sent us the whole document: live both ways
    DISCONNECTED = "disconnected"  # lost the connection; a retry is scheduled
    CLOSED = "closed"  # the session ended: closed by us, or a permanent error


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """One status change. For DISCONNECTED and CLOSED, `code`/`reason` are the
    close code and reason (None when no connection was opened) and `error` is
    the typed error; `retry_in` is the delay before the next attempt."""

    status: Status
    attempt: int  # connection attempts made so far in this session
    code: int | None = None
    reason: str = ""
    error: ClientError | None = None
    retry_in: float | None = None


StatusCallback = Callable[[StatusEvent], None]


class _Pulse:
    """Wake every waiter whenever something changed; waiters re-check their condition."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []

    def notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter


class _Link:
    """One open WebSocket of a session, with its outgoing queue and writer task."""

    __slots__ = ("queue", "requests", "writer", "ws")

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.writer: asyncio.Task[None] | None = None
        self.requests = 0  # SyncStep1 messages we sent on this connection


class Session:
    """A room's document and presence, kept in sync with the server across reconnects.

    Get one with `connect(...)` (then `async with` it, or `await` it and call
    `close()` yourself). Attributes and methods, in the order you need them:

    - `await synced()`: wait for the initial sync (raises the session's error
      if it ended, e.g. `ForbiddenError`).
    - `doc`: the pycrdt Doc. Edit it directly, or inside `with session.edit():`,
      which raises `ReadOnlyError` up front on a read-only session.
    - `awareness`: presence (`set_local_state`, `states`, `observe`, `wait_for`).
    - `status`, `on_status(callback)`, `connects`, `error`, `read_only`.
    - `await flush()`: wait until the server has received every edit made so far.
    - `await close()`: remove our presence, send what is queued, close.
    """

    def __init__(
        self,
        url: str,
        room: str,
        *,
        doc: Doc[Any] | None = None,
        params: Mapping[str, str] | None = None,
        token: str | None = None,
        token_provider: TokenProvider | None = None,
        token_param: str = "token",
        headers: Mapping[str, str] | None = None,
        reconnect: bool = True,
        backoff: Backoff | None = None,
        read_only: bool = False,
        max_size: int = 64 * 1024 * 1024,
        open_timeout: float = 10.0,
        max_auth_retries: int = 3,
        on_status: StatusCallback | None = None,
    ) -> None:
        scheme = urlsplit(url).scheme
        if scheme not in ("ws", "wss"):
            raise ValueError(f"server URL must start with ws:// or wss://, not {url!r}")
        if token is not None and token_provider is not None:
            raise ValueError("pass token or token_provider, not both")
        self.url = url
        self.room = room
        self.doc = doc if doc is not None else Doc()
        self.awareness = ClientAwareness(self.doc.client_id, self._send)
        #: The server's permission-denied reason, once it refused one of our edits.
        self.permission_denied: str | None = None
        #: How many times a connection opened (1 after the first, +1 per reconnect).
        self.connects = 0
        #: Local edits refused because the session is read-only (see `edit`).
        self.rejected_edits = 0
        self._params = dict(params or {})
        self._token_provider: TokenProvider = (
            token_provider if token_provider is not None else (lambda: token)
        )
        self._has_provider = token_provider is not None
        self._token_param = token_param
        self._headers = dict(headers or {})
        self._reconnect = reconnect
        self._backoff = backoff if backoff is not None else Backoff()
        self._read_only = read_only
        self._max_size = max_size
        self._open_timeout = open_timeout
        self._max_auth_retries = max_auth_retries
        self._status = Status.CONNECTING
        self._callbacks: list[StatusCallback] = [on_status] if on_status else []
        self._attempts = 0
        self._error: ClientError | None = None
        self._last_error: ClientError | None = None
        self._close_code: int | None = None
        self._close_reason: str | None = None
        self._link: _Link | None = None
        self._closing = False
        self._ended = False
        self._pulse = _Pulse()
        self._sync = DocSync(self.doc, read_only=read_only)
        self._supervisor: asyncio.Task[None] | None = None
        self._renew_handle: asyncio.TimerHandle | None = None
        self._subscription = self.doc.observe(self._on_doc_change)

    # -- life cycle ----------------------------------------------------------------

    async def start(self) -> Session:
        """Start connecting in the background; returns at once (see `synced`)."""
        if self._supervisor is None and not self._ended:
            loop = asyncio.get_running_loop()
            self._supervisor = loop.create_task(self._run(), name=f"ysync session {self.room}")
            self._renew_handle = loop.call_later(RENEW_INTERVAL, self._renew)
        return self

    def __await__(self) -> Generator[Any, None, Session]:
        return self.start().__await__()

    async def __aenter__(self) -> Session:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self, timeout: float = 5.0) -> None:
        """Remove our presence, send every queued edit, close the connection, stop
        reconnecting. The document stays readable (and editable, locally only)."""
        if not self._closing:
            self._closing = True
            link = self._link
            if link is not None:
                removal = self.awareness.removal_frame()
                if removal is not None:
                    link.queue.put_nowait(removal)
                link.queue.put_nowait(None)  # the writer ends after sending the rest
                if link.writer is not None:
                    await asyncio.wait([link.writer], timeout=timeout)
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(timeout):
                        await link.ws.close(CLOSE_NORMAL, "client closed")
            supervisor = self._supervisor
            if supervisor is not None and not supervisor.done():
                if link is not None:  # it ends once the close handshake is done
                    await asyncio.wait([supervisor], timeout=timeout)
                if not supervisor.done():  # connecting, or waiting to retry: stop now
                    supervisor.cancel()
                    await asyncio.wait([supervisor])
            if self._renew_handle is not None:
                self._renew_handle.cancel()
            self._finish(None)
            self.doc.unobserve(self._subscription)
        while not self._ended:  # close() racing with itself: wait for the first one
            await self._pulse.wait()

    # -- state ---------------------------------------------------------------------

    @property
    def status(self) -> Status:
        return self._status

    @property
    def is_synced(self) -> bool:
        """True while connected and past the initial sync of this connection."""
        return self._link is not None and self._sync.synced

    @property
    def error(self) -> ClientError | None:
        """Why the session ended (None while running or after a clean `close`)."""
        return self._error

    @property
    def last_error(self) -> ClientError | None:
        """The most recent connection failure, even if the session is retrying."""
        return self._last_error

    @property
    def close_code(self) -> int | None:
        """Close code of the last connection that closed (None while it is open)."""
        return self._close_code

    @property
    def close_reason(self) -> str | None:
        return self._close_reason

    @property
    def read_only(self) -> bool:
        """True if connected with `read_only=True` or the server refused an edit."""
        return self._read_only or self.permission_denied is not None

    def presence(self) -> list[dict[str, Any]]:
        """Who is in the room, as this session sees it: one entry per verified user
        (the server's "ysync" field of each awareness state; our own state,
        which the server never echoes back stamped, is not in it), with
        `connections` and the client fields of one of them under `state`. The
        HTTP API's `presence(room)` adds since/lastActive/idle, from any node."""
        users: dict[str, dict[str, Any]] = {}
        for client_id, state in self.awareness.states.items():
            if client_id == self.doc.client_id or not isinstance(state, dict):
                continue
            verified = state.get("ysync")
            if not isinstance(verified, dict) or not isinstance(verified.get("userId"), str):
                continue  # the server's lock state, or a server that stamps nothing
            entry = users.setdefault(verified["userId"], {**verified, "connections": 0})
            entry["connections"] += 1
            entry["state"] = {k: v for k, v in state.items() if k != "ysync"}
        return sorted(users.values(), key=lambda user: str(user["userId"]))

    def on_status(self, callback: StatusCallback) -> Callable[[], None]:
        """Call `callback(event)` on every status change; returns an unsubscribe
        function. Callbacks run synchronously: keep them fast, never block."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback) if callback in self._callbacks else None

    # -- waiting -------------------------------------------------------------------

    async def synced(self, timeout: float = 10.0) -> None:
        """Wait until the server sent us the whole document (its SyncStep2).

        Raises the session's error if it ended (e.g. `ForbiddenError`), or
        TimeoutError naming the last connection error."""
        await self.wait_until(lambda s: s.is_synced, timeout, what="synced")

    async def wait_until(
        self, predicate: Callable[[Session], bool], timeout: float, *, what: str = "condition"
    ) -> None:
        """Wait until `predicate(session)` holds, re-checked after every status
        change and every update from the server. Raises the session's error if it
        ends first, or TimeoutError."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate(self):
                    if self._ended:
                        raise self._error or SessionClosedError("the session was closed")
                    await self._pulse.wait()
        except TimeoutError:
            last = f"; last error: {self._last_error}" if self._last_error else ""
            raise TimeoutError(
                f"room {self.room!r}: {what} not reached within {timeout} s "
                f"(status {self._status.value}{last})"
            ) from None

    async def closed(self, timeout: float | None = 10.0) -> None:
        """Wait until the session ended: closed by us or by a permanent refusal
        (no more reconnects); `timeout=None` waits for ever. Does not raise the
        session's error: see `error`."""
        async with asyncio.timeout(timeout):
            while not self._ended:
                await self._pulse.wait()

    async def flush(self, timeout: float = 10.0) -> None:
        """Wait until the server has received everything sent so far.

        A sync round trip: our SyncStep1 goes out after every queued edit and
        the server answers it after applying them. Waits through reconnects."""

        async def round_trip() -> None:
            while True:
                await self.synced(timeout)
                link = self._link
                if link is None:
                    continue
                link.requests += 1
                target = link.requests
                link.queue.put_nowait(self._sync.step1())
                while self._link is link and self._sync.steps_received < target:
                    await self._pulse.wait()
                if self._sync.steps_received >= target:
                    return

        async with asyncio.timeout(timeout):
            await round_trip()

    # -- edits ---------------------------------------------------------------------

    @contextlib.contextmanager
    def edit(self, origin: Any = None) -> Iterator[Transaction]:
        """A transaction for local edits that refuses up front instead of diverging:
        raises `ReadOnlyError` on a read-only session, and the session's error
        (or `SessionClosedError`) once it ended."""
        if self.read_only:
            raise ReadOnlyError(self._read_only_message())
        if self._ended:
            raise self._error or SessionClosedError("the session was closed: edits stay local")
        with self.doc.transaction(origin=origin) as txn:
            yield txn

    def _read_only_message(self) -> str:
        why = self.permission_denied or "connected with read_only=True"
        return f"room {self.room!r} is read-only for this session ({why})"

    def _on_doc_change(self, event: TransactionEvent) -> None:
        if self._sync.applying_remote:
            return
        if self.read_only:
            # Raised out of the edit (pycrdt wraps observer errors in an
            # ExceptionGroup: catch with `except* ReadOnlyError`).
            self.rejected_edits += 1
            raise ReadOnlyError(self._read_only_message() + ": this edit stays local")
        self._send(codec.encode_update(event.update))

    # -- I/O -------------------------------------------------------------------------

    def _send(self, frame: bytes) -> None:
        """Queue a frame on the open connection; dropped while offline (the next
        sync handshake carries the document, and we re-announce presence)."""
        link = self._link
        if link is not None and not self._closing:
            link.queue.put_nowait(frame)

    async def _run(self) -> None:
        failures = 0  # failed attempts in a row (reset once a connection syncs)
        auth_retries = 0  # 4401s in a row answered with a fresh token
        while not self._closing:
            self._attempts += 1
            self._set_status(Status.CONNECTING)
            if await self._attempt():  # it had synced: start the backoff afresh
                failures = auth_retries = 0
            if self._closing:
                return
            error = self._last_error
            if error is None:  # unreachable: _attempt sets it whenever a connection ends
                error = ConnectError("connection ended")
            code = error.code if isinstance(error, CloseError) else None
            refresh = isinstance(error, AuthenticationError) and self._has_provider
            if (
                not self._reconnect
                or (isinstance(error, CloseError) and error.terminal and not refresh)
                or (refresh and auth_retries >= self._max_auth_retries)
                or (not refresh and self._backoff.gives_up(failures))
            ):
                self._finish(error)
                return
            if refresh:
                # A fresh token at once; back off only if fresh tokens keep failing.
                delay = 0.0 if auth_retries == 0 else self._backoff.delay(auth_retries - 1)
                auth_retries += 1
            else:
                step = max(failures, _SLOW_DOWN_ATTEMPT) if code in SLOW_DOWN_CODES else failures
                delay = self._backoff.delay(step)
                failures += 1
            log.info("room %r: %s; reconnecting in %.2f s", self.room, error, delay)
            self._set_status(
                Status.DISCONNECTED,
                code=code,
                reason=error.reason if isinstance(error, CloseError) else str(error),
                error=error,
                retry_in=delay,
            )
            if delay > 0:
                await asyncio.sleep(delay)

    async def _attempt(self) -> bool:
        """One connection: open, serve until it closes. Returns whether it reached
        `synced` (the backoff then restarts); sets `_last_error`."""
        try:
            token = self._token_provider()
            if inspect.isawaitable(token):
                token = await token
        except Exception as exc:
            self._last_error = ConnectError(f"token provider failed: {exc!r}")
            return False
        params = dict(self._params)
        if token is not None:
            params[self._token_param] = str(token)
        try:
            ws = await ws_connect(
                room_url(self.url, self.room, params),
                additional_headers=self._headers or None,
                user_agent_header=f"ysync-client/{__version__}",
                max_size=self._max_size,
                compression=None,
                proxy=None,
                open_timeout=self._open_timeout,
                close_timeout=5,
            )
        except InvalidStatus as exc:
            body = exc.response.body.decode("utf-8", "replace") if exc.response.body else ""
            self._last_error = handshake_error(exc.response.status_code, body)
            return False
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            self._last_error = ConnectError(f"cannot connect to {self.url}: {exc}")
            return False
        link = _Link(ws)
        link_synced = False
        try:
            link_synced = await self._serve(link)
        finally:
            if ws.state is not State.CLOSED:
                ws.transport.abort()  # cancelled by close(): never leak the socket
        code = ws.close_code if ws.close_code is not None else CLOSE_ABNORMAL
        reason = ws.close_reason or ""
        self._close_code, self._close_reason = code, reason
        self._last_error = close_error(code, reason)
        return link_synced

    async def _serve(self, link: _Link) -> bool:
        """Serve one connection until it closes; whether it reached `synced`."""
        self._link = link
        self._close_code = self._close_reason = None
        self.connects += 1
        link.writer = asyncio.get_running_loop().create_task(self._write_loop(link))
        self._set_status(Status.CONNECTED)
        # SyncStep1 asks for what we lack; the server's SyncStep1, answered in
        # `_handle`, is what uploads our offline edits.
        link.requests = 1
        link.queue.put_nowait(self._sync.start())
        self.awareness.announce()
        try:
            async for frame in link.ws:
                if isinstance(frame, str):
                    continue
                try:
                    message = codec.decode(frame)
                except codec.ProtocolError as exc:
                    log.warning("room %r: ignoring malformed message: %s", self.room, exc.reason)
                    continue
                try:
                    self._handle(link, message)
                except Exception:
                    log.exception("room %r: error handling a message", self.room)
        except ConnectionClosed:
            pass
        finally:
            self._link = None
            if link.writer is not None:
                link.writer.cancel()  # close() already let it drain
            self.awareness.drop_remote()
            self._pulse.notify()
        return self._sync.synced

    async def _write_loop(self, link: _Link) -> None:
        with contextlib.suppress(ConnectionClosed):
            while (frame := await link.queue.get()) is not None:
                await link.ws.send(frame)

    def _handle(self, link: _Link, message: codec.Message) -> None:
        if isinstance(message, codec.AwarenessUpdate):
            self.awareness.apply(message.entries)
        elif isinstance(message, codec.QueryAwareness):
            self.awareness.announce()
        elif isinstance(message, codec.Auth):
            if self.permission_denied is None:
                log.warning(
                    "room %r: the server made this session read-only: %s", self.room, message.reason
                )
            self.permission_denied = message.reason
            self._sync.read_only = True
            self._pulse.notify()
        else:
            was_synced = self._sync.synced
            reply = self._sync.handle(message)
            if reply is not None:
                link.queue.put_nowait(reply)
            if self._sync.synced and not was_synced:
                self._set_status(Status.SYNCED)
            self._pulse.notify()

    def _renew(self) -> None:
        """Every 15 s: renew our presence and forget presences nobody renewed."""
        if self._link is not None and self.awareness.local_state is not None:
            self.awareness.set_local_state(self.awareness.local_state)
        self.awareness.drop_outdated(time.monotonic())
        if not self._ended:
            self._renew_handle = asyncio.get_running_loop().call_later(RENEW_INTERVAL, self._renew)

    def _set_status(self, status: Status, **fields: Any) -> None:
        self._status = status
        event = StatusEvent(status, self._attempts, **fields)
        for callback in list(self._callbacks):
            try:
                callback(event)
            except Exception:
                log.exception("status callback failed")
        self._pulse.notify()

    def _finish(self, error: ClientError | None) -> None:
        if self._ended:
            return
        self._error = error
        if error is not None:
            log.warning("room %r: session ended: %s", self.room, error)
        code = error.code if isinstance(error, CloseError) else None
        reason = error.reason if isinstance(error, CloseError) else ""
        self._ended = True
        self._set_status(Status.CLOSED, code=code, reason=reason, error=error)


def room_url(url: str, room: str, params: Mapping[str, str] | None = None) -> str:
    """`ws://host:port` + `/room` (+ `?query`), as the JS provider builds it."""
    full = url.rstrip("/") + "/" + quote(room, safe="/")
    return full + ("?" + urlencode(params) if params else "")


def connect(
    url: str,
    room: str,
    *,
    doc: Doc[Any] | None = None,
    params: Mapping[str, str] | None = None,
    token: str | None = None,
    token_provider: TokenProvider | None = None,
    token_param: str = "token",
    headers: Mapping[str, str] | None = None,
    reconnect: bool = True,
    backoff: Backoff | None = None,
    read_only: bool = False,
    max_size: int = 64 * 1024 * 1024,
    open_timeout: float = 10.0,
    max_auth_retries: int = 3,
    on_status: StatusCallback | None = None,
) -> Session:
    """A session on `room` at the server `url` (e.g. "ws://127.0.0.1:1234").

    Use `async with connect(...) as session:` (closes on exit) or
    `session = await connect(...)` and `await session.close()` later; then
    `await session.synced()`. Both return at once: the session connects, and
    reconnects, in the background.

    - `token` or `token_provider`: sent as the `token_param` query parameter.
      The provider (a function, sync or async, returning the token) is called
      before every connection attempt, so a 4401 (expired token) is answered
      with a fresh token and a reconnect (up to `max_auth_retries` refusals of
      fresh tokens in a row, then `AuthenticationError`).
    - `params`: other query parameters; `headers`: extra handshake headers.
    - `reconnect=False`: the first lost connection ends the session; `backoff`
      tunes the delays (see `Backoff`).
    - `read_only=True`: refuse local edits from the start (otherwise the
      session becomes read-only when the server sends permission-denied).
    - `doc`: an existing pycrdt Doc[Any] to sync (e.g. with offline edits already in it).
    """
    return Session(
        url,
        room,
        doc=doc,
        params=params,
        token=token,
        token_provider=token_provider,
        token_param=token_param,
        headers=headers,
        reconnect=reconnect,
        backoff=backoff,
        read_only=read_only,
        max_size=max_size,
        open_timeout=open_timeout,
        max_auth_retries=max_auth_retries,
        on_status=on_status,
    )
