"""The Hocuspocus dialect's connections: one socket, several documents, each admitted on its own.

A `HocuspocusProvider` (v3 or v4, alone or several over one
`HocuspocusProviderWebsocket`) connects to the root path (or `--hocuspocus-path`)
and works unchanged. Per document on a socket, the provider sends Auth,
SyncStep1 and its awareness; the document's frames are queued until its Auth
is decided (bounded: `--hocuspocus-pending-bytes`, `--hocuspocus-pending-messages`,
`--hocuspocus-max-documents`), then the server answers Authenticated (scope
`read-write` or `readonly`) or PermissionDenied (the socket stays: the document
may retry), joins the room (its SyncStep1 and the present awareness states) and
handles what was queued. Every document is a `HocuspocusSession` — the `Peer` its
room sees — so the room and its y-websocket clients never know the difference.

Admission per document is the y-websocket one (`ysync.server.admission`): the
token is the Auth message's (when empty, the URL's or the Authorization header's),
the room is the document name, the JWT roles and host hooks are the same.

What Hocuspocus's provider depends on, and how ysync answers it:

- every SyncStep2 or Update from a client is acknowledged with SyncStatus
  (1 applied, 0 refused) so the provider's `unsyncedChanges` returns to 0; a
  read-only document's edits get 0 (nothing applied), and a read-only
  SyncStep2 that holds nothing new gets 1;
- a client's SyncStep1 (type 0) is answered with the server's SyncStep1 and
  then SyncStep2, as Hocuspocus does (the provider acks only what it answers);
- stateless messages go to the extensions' `on_stateless`, which decide whether
  the document's other clients get them (on every node: over the bus);
- Close (type 7) from the provider ends that document only;
- Ping gets Pong; a v4 provider (it sends its version in Auth) is pinged
  when idle, an older one is sent a frame addressed to no document (it drops it,
  but its 30 s silence timer restarts).

Refusals: a document's permanent refusal (44xx but 4401: malformed message,
document too large, no grant) closes that document only, with a Close message
carrying the reason (what Hocuspocus does for an error in a document); the
socket and its other documents carry on. A transient one (restart 1012, store
1013, full 4503, slow consumer 4508, rate 4529) and an expired token (4401)
close the socket: the provider reconnects by itself (after any close code),
fetching a fresh token. An expiring token is first asked for again (a token
request, which a provider with a `token` function answers with a fresh one);
only if none comes within `--auth-timeout` is the socket closed with 4401.
Past the queueing bounds the socket is closed with 4205, a socket with no
document authenticated within `--auth-timeout` with 4408 (Hocuspocus's codes).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.types import Receive, Scope, Send

from ysync.rooms import codec, hocuspocus
from ysync.rooms.hooks import ConnectionRequest, Identity
from ysync.rooms.lib0 import var_string
from ysync.rooms.protocols import Peer, StoreError
from ysync.rooms.registry import RoomRegistry
from ysync.rooms.room import READ_ONLY, Room
from ysync.rooms.vocabulary import (
    CloseCode,
    FrameKind,
    HocuspocusType,
    Refusal,
    Refused,
    is_permanent,
    peek_type,
)
from ysync.server.admission import request_from_scope, room_name_refusal
from ysync.server.connection import (
    INTERNAL_ERROR,
    TOKEN_EXPIRED,
    ClientConnection,
    RoomSession,
)
from ysync.server.senders import DirectSender, binary_frame
from ysync.server.transport import STORE_UNAVAILABLE, WebSocketEndpoint
from ysync.server.ws_frames import BINARY, frame_header

if TYPE_CHECKING:
    from ysync.rooms.replication import Replicator

log = logging.getLogger("ysync.hocuspocus")

AUTH_TIMEOUT = Refusal(CloseCode.CONNECTION_TIMEOUT, "no document authenticated in time")
BROADCAST_FROM_CLIENT = Refusal(
    CloseCode.MALFORMED, "BroadcastStateless is server-internal: send Stateless (type 5)"
)
PROVIDER_CLOSED = "provider_initiated"  # the reason Hocuspocus echoes to a provider's Close
# Sent when idle: a v4 provider answers a Ping; an older one drops a frame for no document.
NO_DOCUMENT = b"\x00"
PING_FRAME = binary_frame(hocuspocus.PING)
NO_DOCUMENT_FRAME = binary_frame(NO_DOCUMENT)
_SYNC_EDITS = (codec.SyncStep2, codec.SyncUpdate)


@dataclass(frozen=True, slots=True)
class HocuspocusLimits:
    """Bounds on what one socket may hold for documents whose auth is not decided."""

    max_documents: int = 100  # documents open or pending on one socket
    pending_bytes: int = 5 * 1024 * 1024  # Hocuspocus's maxUnauthenticatedQueueSize
    pending_messages: int = 1000  # Hocuspocus's maxUnauthenticatedQueueMessages


class AddressedFrames:
    """Encodes a message once per broadcast, and frames it once per address.

    A broadcast hands one message object to every peer of a room in a row; the
    Hocuspocus body (what follows the address) is the same for all of them and
    so is the address, except for v4 session-aware providers (one each)."""

    __slots__ = ("_body", "_frames", "_message", "_payloads")

    def __init__(self) -> None:
        self._message: object = None
        self._body = b""
        self._frames: dict[bytes, bytes] = {}
        self._payloads: dict[bytes, bytes] = {}

    def _renew(self, message: hocuspocus.Message) -> None:
        if message is not self._message:
            self._message, self._body = message, hocuspocus.encode_body(message)
            self._frames.clear()
            self._payloads.clear()

    def payload(self, message: hocuspocus.Message, address: bytes) -> bytes:
        """`address` (its varString encoding) and the message: the frame's payload."""
        self._renew(message)
        payload = self._payloads.get(address)
        if payload is None:
            payload = self._payloads[address] = address + self._body
        return payload

    def frame(self, message: hocuspocus.Message, address: bytes) -> bytes:
        """The same as one unmasked binary WebSocket frame."""
        self._renew(message)
        frame = self._frames.get(address)
        if frame is None:
            size = len(address) + len(self._body)
            frame = self._frames[address] = frame_header(BINARY, size) + address + self._body
        return frame


class HocuspocusSession(RoomSession):
    """One document of a Hocuspocus socket: the `Peer` its room sees."""

    __slots__ = (
        "_frames",
        "_identity",
        "_sender",
        "address",
        "expiry",
        "greeted",
        "owner",
        "refresh",
        "request",
        "wire",
    )

    def __init__(
        self,
        connection: HocuspocusConnection,
        room: Room,
        frames: AddressedFrames,
        address: str,
        identity: Identity,
        request: ConnectionRequest,
    ) -> None:
        self.connection = self.owner = connection
        self.room = room
        self._sender = connection.sender
        self._frames = frames
        self.edit_denied = False
        self.address = address
        self.wire = var_string(address)
        self._identity = identity
        self.request = request
        self.expiry: asyncio.TimerHandle | None = None
        self.refresh: asyncio.TimerHandle | None = None  # waiting for a fresh token
        self.greeted = True  # the room sent its SyncStep1 when the session joined

    @property
    def identity(self) -> Identity:
        return self._identity

    def send(self, message: codec.Message) -> None:
        self.send_message(message)

    def send_message(self, message: hocuspocus.Message) -> None:
        if message.__class__ is codec.Auth:
            return  # the room's read-only notice: this dialect acknowledges with SyncStatus 0
        sender = self._sender
        if isinstance(sender, DirectSender):
            sender.write(self._frames.frame(message, self.wire))
        else:
            sender.write(self._frames.payload(message, self.wire))

    def close(self, refusal: Refusal) -> None:
        self.owner.close_session(self, refusal)

    def __repr__(self) -> str:
        return f"<HocuspocusSession {self.address!r} conn {self.connection.id}>"


@dataclass(slots=True)
class _Pending:
    """A document whose Auth has not been decided: its frames wait (bounded)."""

    frames: list[bytes] = field(default_factory=list)
    size: int = 0
    authenticating: bool = False


class HocuspocusConnection(ClientConnection):
    """One Hocuspocus socket holding a session per admitted document."""

    __slots__ = (
        "authenticated",
        "deadline",
        "documents",
        "hocus",
        "pending",
        "pending_bytes",
        "pending_frames",
        "request",
        "tasks",
        "v4",
    )

    def _setup(self, hocus: HocuspocusEndpoint, request: ConnectionRequest) -> None:
        self.hocus = hocus
        self.request = request
        self.documents: dict[str, HocuspocusSession] = {}
        self.pending: dict[str, _Pending] = {}
        self.pending_bytes = 0
        self.pending_frames = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.authenticated = False  # any document, ever (Hocuspocus: hasAuthenticated)
        self.v4 = False  # a provider that sent its version: it answers Ping
        loop = asyncio.get_running_loop()
        self.deadline: asyncio.TimerHandle | None = loop.call_later(
            hocus.endpoint.auth_timeout, self._auth_deadline
        )

    # -- frames from the client ------------------------------------------------------------

    def receive(self, frame: bytes | str) -> None:
        screened = self.screen(frame)
        if screened is None:
            return
        frame = screened
        if frame == hocuspocus.PING:
            self._write(hocuspocus.PONG)
            return
        if frame == hocuspocus.PONG:
            return
        try:
            address, offset = hocuspocus.read_address(frame)
        except codec.ProtocolError as exc:
            # Not even the document can be told: the socket is what sent garbage.
            self.close(codec.malformed(exc))
            return
        stats = self.endpoint.stats
        kind = _kind(frame, offset)
        stats.received[kind] += 1
        stats.received_bytes[kind] += len(frame)
        session = self.documents.get(address)
        if session is None:
            self._queue(address, frame, offset)
            return
        started = time.perf_counter()
        self._handle(session, frame, offset)
        stats.observe_handling(time.perf_counter() - started)

    def _handle(self, session: HocuspocusSession, frame: bytes, offset: int) -> None:
        try:
            message = hocuspocus.decode_body(
                frame, offset, max_awareness_entries=self.endpoint.max_awareness_entries
            )
            self._dispatch(session, message)
        except codec.ProtocolError as exc:
            log.info(
                "malformed message: %s",
                exc.reason,
                extra={"room": session.room.name, "conn": self.id},
            )
            self.close_session(session, codec.malformed(exc))
        except Exception:
            log.exception(
                "error handling a message", extra={"room": session.room.name, "conn": self.id}
            )
            self.close(INTERNAL_ERROR)

    def _dispatch(self, session: HocuspocusSession, message: hocuspocus.Message) -> None:
        room = session.room
        if isinstance(message, hocuspocus.SyncReply):
            self._sync(session, message.message)
        elif isinstance(message, codec.SyncStep1):
            # Hocuspocus answers every SyncStep1 with its own, then SyncStep2: the
            # provider's reply to ours is acknowledged, which brings its
            # `unsyncedChanges` to 0 (e.g. after its forceSyncInterval). The first
            # one after joining is answered by the SyncStep1 the room sent on join.
            if session.greeted:
                session.greeted = False
            else:
                session.send(codec.SyncStep1(room.doc.get_state()))
            room.receive(session, message)
        elif isinstance(message, _SYNC_EDITS):
            self._sync(session, message)
        elif isinstance(message, codec.AwarenessUpdate | codec.QueryAwareness):
            room.receive(session, message)
        elif isinstance(message, hocuspocus.Stateless):
            if self.endpoint.extensions.stateless(room, session, message.payload):
                self.hocus.broadcast_stateless(room, message.payload, exclude=session)
        elif isinstance(message, hocuspocus.AuthToken):
            self._spawn(self._refresh(session, message.token))
        elif isinstance(message, hocuspocus.Close):
            self._end(session)
            session.send_message(hocuspocus.Close(PROVIDER_CLOSED))
        elif isinstance(message, hocuspocus.BroadcastStateless):
            self.close_session(session, BROADCAST_FROM_CLIENT)
        elif isinstance(message, hocuspocus.Unknown):
            log.info("message of unknown type %d ignored", message.type, extra={"conn": self.id})
        else:
            # Server-only messages (SyncStatus, Authenticated, ...) from a client.
            raise codec.ProtocolError(f"{type(message).__name__} is sent by servers only")

    def _sync(
        self,
        session: HocuspocusSession,
        message: codec.SyncStep1 | codec.SyncStep2 | codec.SyncUpdate,
    ) -> None:
        room = session.room
        refusal = room.receive(session, message)
        if not isinstance(message, _SYNC_EDITS) or session.address not in self.documents:
            return  # a SyncStep1 needs no status; a closed document gets none
        if refusal is READ_ONLY:
            # Hocuspocus acks a read-only SyncStep2 that brings nothing new.
            applied = isinstance(message, codec.SyncStep2) and room.contains(message.update)
            session.send_message(hocuspocus.SyncStatus(applied))
            if not session.edit_denied and not applied:
                session.edit_denied = True
                self.endpoint.extensions.edit_refused(room, session, refusal)
        elif not self.sender.closing:
            session.send_message(hocuspocus.SyncStatus(True))

    # -- documents waiting for their auth ---------------------------------------------------

    def _queue(self, address: str, frame: bytes, offset: int) -> None:
        pending = self.pending.get(address)
        limits = self.hocus.limits
        is_auth = frame[offset] == HocuspocusType.AUTH
        if pending is None:
            if len(self.documents) + len(self.pending) >= limits.max_documents:
                self._too_many(address, is_auth)
                return
            pending = self.pending[address] = _Pending()
        if is_auth and not pending.authenticating:
            try:
                message = hocuspocus.decode_body(frame, offset)
            except codec.ProtocolError as exc:
                self.close(codec.malformed(exc))
                return
            if isinstance(message, hocuspocus.AuthToken):
                pending.authenticating = True
                self.v4 = self.v4 or message.provider_version is not None
                self._spawn(self._admit(address, message.token))
                return
        if (
            self.pending_bytes + len(frame) > limits.pending_bytes
            or self.pending_frames + 1 > limits.pending_messages
        ):
            self.close(
                Refusal(
                    CloseCode.RESET_CONNECTION,
                    "too much sent before its document's auth was decided "
                    f"(over {limits.pending_messages} messages or {limits.pending_bytes} bytes)",
                )
            )
            return
        pending.frames.append(frame)
        pending.size += len(frame)
        self.pending_bytes += len(frame)
        self.pending_frames += 1

    def _too_many(self, address: str, is_auth: bool) -> None:
        limit = self.hocus.limits.max_documents
        reason = f"too many documents on one connection (max {limit}: hocuspocus_max_documents)"
        if is_auth:
            # Its own answer; the socket and its other documents carry on.
            self._send_to(address, hocuspocus.PermissionDenied(reason))
        else:
            self.close(Refusal(CloseCode.RESET_CONNECTION, reason))

    def _drop_pending(self, address: str) -> list[bytes]:
        pending = self.pending.pop(address, None)
        if pending is None:
            return []
        self.pending_bytes -= pending.size
        self.pending_frames -= len(pending.frames)
        return pending.frames

    async def _admit(self, address: str, token: str) -> None:
        hocus = self.hocus
        request = document_request(self.request, hocuspocus.document_name(address), token)
        refusal = room_name_refusal(request.room)
        admitted = refusal or await hocus.endpoint.admission.admit(request)
        if self._closed:
            return
        if isinstance(admitted, Refusal):
            self._deny(address, request, admitted)
            return
        try:
            room = await hocus.registry.acquire(request.room)
        except StoreError as exc:
            log.error("room could not be loaded: %s", exc, extra={"room": request.room})
            self.close(STORE_UNAVAILABLE)
            return
        if self._closed or address not in self.pending:
            hocus.registry.release(room.name)
            return
        full = hocus.endpoint.admission.room_full(room)
        if full is not None:
            hocus.registry.release(room.name)
            self._deny(address, request, full)
            return
        self._join(address, room, admitted, request)

    def _deny(self, address: str, request: ConnectionRequest, refusal: Refusal) -> None:
        # Forgotten, so a retry on this socket is a fresh first attempt.
        self._drop_pending(address)
        self.endpoint.extensions.refused(request, None, refusal)
        self._send_to(address, hocuspocus.PermissionDenied(refusal.reason))

    def _join(
        self, address: str, room: Room, identity: Identity, request: ConnectionRequest
    ) -> None:
        queued = self._drop_pending(address)
        session = HocuspocusSession(self, room, self.hocus.frames, address, identity, request)
        session.send_message(hocuspocus.Authenticated(read_only=not identity.can_edit))
        self.documents[address] = session
        self.authenticated = True
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        self.endpoint.broadcaster.awareness.attach(room)
        room.join(session, read_only=not identity.can_edit)
        self.endpoint.extensions.joined(room, session, request)
        self._schedule_document_expiry(session)
        for frame in queued:
            if self.sender.closing or self.documents.get(address) is not session:
                break
            self._handle(session, frame, hocuspocus.read_address(frame)[1])

    # -- tokens --------------------------------------------------------------------------

    def _schedule_document_expiry(self, session: HocuspocusSession) -> None:
        for timer in (session.expiry, session.refresh):
            if timer is not None:
                timer.cancel()
        session.expiry = session.refresh = None
        expires_at = session.identity.expires_at
        if expires_at is None:
            return
        delay = expires_at + self.endpoint.token_expiry_grace - time.time()
        loop = asyncio.get_running_loop()
        session.expiry = loop.call_later(max(delay, 0.0), self._token_expired, session)

    def _token_expired(self, session: HocuspocusSession) -> None:
        """Ask the provider for a fresh token; close the socket if none comes in time."""
        session.expiry = None
        if self.documents.get(session.address) is not session:
            return
        session.send_message(hocuspocus.TokenRequest())
        session.refresh = asyncio.get_running_loop().call_later(
            self.endpoint.auth_timeout, self.close, TOKEN_EXPIRED
        )

    async def _refresh(self, session: HocuspocusSession, token: str) -> None:
        """A token sent for a document already open (Hocuspocus's onTokenSync)."""
        request = document_request(self.request, session.room.name, token)
        admitted = await self.endpoint.admission.admit(request)
        if self._closed or self.documents.get(session.address) is not session:
            return
        if isinstance(admitted, Refusal):
            self.endpoint.extensions.refused(request, session.identity, admitted)
            self.close_session(session, admitted)
            return
        read_only = not admitted.can_edit
        if read_only != (not session.identity.can_edit):
            session.room.peers[session].read_only = read_only
            session.send_message(hocuspocus.Authenticated(read_only))
        session._identity = admitted
        session.request = request
        self._schedule_document_expiry(session)

    # -- closing ---------------------------------------------------------------------------

    def close_session(self, session: HocuspocusSession, refusal: Refusal) -> None:
        """End one document for `refusal`: only it when permanent (the socket and
        its other documents carry on), the whole socket otherwise (see the module doc)."""
        if not is_permanent(refusal.code) or refusal.code == CloseCode.UNAUTHORIZED:
            self.close(refusal)
            return
        if self.documents.get(session.address) is not session or self.sender.closing:
            return
        stats = self.endpoint.stats
        stats.closes[refusal.code] = stats.closes.get(refusal.code, 0) + 1
        self.endpoint.extensions.refused(session.request, session.identity, refusal)
        session.send_message(hocuspocus.Close(refusal.reason))
        self._end(session)

    def _end(self, session: HocuspocusSession) -> None:
        """The document ends; the socket stays."""
        if self.documents.get(session.address) is not session:
            return
        del self.documents[session.address]
        for timer in (session.expiry, session.refresh):
            if timer is not None:
                timer.cancel()
        self.endpoint.leave_room(session)

    def closed(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.deadline is not None:
            self.deadline.cancel()
        for task in self.tasks:
            task.cancel()
        for session in list(self.documents.values()):
            self._end(session)
        self.pending.clear()
        self.endpoint.disconnected(self)

    def keep_alive(self) -> None:
        sender = self.sender
        if isinstance(sender, DirectSender):
            sender.keep_alive(PING_FRAME if self.v4 else NO_DOCUMENT_FRAME)

    def _auth_deadline(self) -> None:
        self.deadline = None
        if not self.authenticated:
            self.close(AUTH_TIMEOUT)

    def _send_to(self, address: str, message: hocuspocus.Message) -> None:
        self._write(hocuspocus.encode(address, message))

    def _write(self, payload: bytes) -> None:
        self.sender.write(binary_frame(payload) if self.sender.direct else payload)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("document admission failed", exc_info=task.exception())
            self.close(INTERNAL_ERROR)


def _kind(frame: bytes, offset: int) -> FrameKind:
    # The y-websocket kinds, read after the address (types 0-3 mean the same).
    kind = frame[offset]
    if kind == HocuspocusType.SYNC_REPLY:
        return peek_type(b"\x00" + frame[offset + 1 : offset + 2])
    return peek_type(frame[offset : offset + 2]) if kind <= 3 else FrameKind.OTHER


def document_request(base: ConnectionRequest, document: str, token: str) -> ConnectionRequest:
    """The request a document is admitted with: the socket's, for `document`, with the
    Auth message's token (which, when not empty, replaces the URL's and the header's)."""
    if not token:
        return dataclasses.replace(base, room=document)
    query = {k: v for k, v in base.query.items() if k != "token"}
    headers = {k: v for k, v in base.headers.items() if k != "authorization"}
    return dataclasses.replace(
        base, room=document, query=query, headers=headers, auth_message=token
    )


def send_stateless(peer: Peer, payload: str) -> bool:
    """Send a stateless message to one client (e.g. answer the sender in
    `on_stateless`); False when it does not speak Hocuspocus."""
    if not isinstance(peer, HocuspocusSession):
        return False
    peer.send_message(hocuspocus.Stateless(payload))
    return True


class HocuspocusEndpoint:
    """ASGI app for Hocuspocus sockets; shares the y-websocket endpoint's rooms,
    admission, senders and bookkeeping (connections, drain, keep-alive)."""

    def __init__(
        self,
        endpoint: WebSocketEndpoint,
        replicator: Replicator | None = None,
        limits: HocuspocusLimits | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.registry: RoomRegistry = endpoint.registry
        self.replicator = replicator
        self.limits = limits or HocuspocusLimits()
        self.frames = AddressedFrames()
        if replicator is not None:
            replicator.stateless_handlers.append(self._relay_from_bus)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        connect = await receive()
        if connect["type"] != "websocket.connect":
            return
        endpoint = self.endpoint
        request = request_from_scope(scope, "")
        await send({"type": "websocket.accept"})
        try:
            await endpoint.extensions.connect(request)
        except Refused as exc:
            await endpoint.refuse(send, request, None, exc.refusal)
            return
        sender = endpoint.sender(scope, send, NO_DOCUMENT)
        gate = endpoint.extensions.message_gate(request, Identity())
        connection = HocuspocusConnection(
            endpoint, endpoint.next_id(), request, Identity(), sender, gate
        )
        connection._setup(self, request)
        endpoint.connections += 1
        if endpoint.closing_all is not None:
            connection.close(endpoint.closing_all)
        if not endpoint.attach(scope, connection):
            await endpoint.run_queued(receive, connection)

    def broadcast_stateless(self, room: Room, payload: str, exclude: Peer | None = None) -> int:
        """Send a stateless message to the room's Hocuspocus clients here and on every
        other node; returns how many got it here."""
        if self.replicator is not None:
            self.replicator.publish_stateless(room.name, payload)
        return self.relay_stateless(room, payload, exclude)

    def _relay_from_bus(self, room: Room, payload: str) -> None:
        self.relay_stateless(room, payload)

    def relay_stateless(self, room: Room, payload: str, exclude: Peer | None = None) -> int:
        """Send a stateless message to the room's Hocuspocus clients on this node only."""
        message = hocuspocus.Stateless(payload)  # one object: encoded once per address
        sent = 0
        for peer in room.peers:
            if peer is not exclude and isinstance(peer, HocuspocusSession):
                peer.send_message(message)
                sent += 1
        return sent
