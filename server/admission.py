"""Admission: the ordered checks a connection passes before it may see a byte of its room.

    screen(request)  room name → the extensions' `on_connect` (per-address
                     throttle, Origin list: `ysync.server.limits`)
    ... the endpoint may now wait for a token in a y-websocket auth message ...
    admit(request)   authentication (the extensions' `authenticate`: JWT, or
                     the host's hook; nobody: an anonymous editor) → the
                     token's expiry → the node's room capacity
    room_full(room)  after the room is loaded: its client capacity

Each step answers with the one `Refusal` that ends the connection, or lets
the request through. Nothing here touches the socket.
"""

from __future__ import annotations

import time
from collections import Counter
from urllib.parse import parse_qsl

from starlette.types import Scope

from ysync.rooms.extensions import Extensions
from ysync.rooms.hooks import ConnectionRequest, Identity
from ysync.rooms.registry import RoomRegistry
from ysync.rooms.room import Room
from ysync.rooms.vocabulary import CloseCode, Refusal, Refused

MAX_ROOM_NAME = 512
TOKEN_EXPIRED = Refusal(CloseCode.UNAUTHORIZED, "token expired")


class Admission:
    """The checks of one endpoint (see the module doc)."""

    def __init__(
        self,
        extensions: Extensions,
        registry: RoomRegistry,
        *,
        max_rooms: int = 0,
        max_clients_per_room: int = 0,
        token_expiry_grace: float = 0.0,
        max_connections_per_user: int = 0,
        max_rooms_per_user: int = 0,
    ) -> None:
        self.extensions = extensions
        self.registry = registry
        self.max_rooms = max_rooms
        self.max_clients_per_room = max_clients_per_room
        self.token_expiry_grace = token_expiry_grace
        self.quota = UserQuota(max_connections_per_user, max_rooms_per_user)

    @property
    def waits_for_auth_message(self) -> bool:
        """Whether a request without a token may send one as its first frame."""
        return self.extensions.accepts_auth_message

    async def screen(self, request: ConnectionRequest) -> Refusal | None:
        """The checks before authentication."""
        refusal = room_name_refusal(request.room)
        if refusal is not None:
            return refusal
        try:
            await self.extensions.connect(request)
        except Refused as exc:
            return exc.refusal
        return None

    async def admit(self, request: ConnectionRequest) -> Identity | Refusal:
        """Who the client is, or why it may not connect."""
        try:
            identity = await self.extensions.authenticate(request)
        except Refused as exc:
            return exc.refusal
        if identity is None:
            identity = Identity()  # auth off: everyone is an anonymous editor
        expires_at = identity.expires_at
        if expires_at is not None and expires_at + self.token_expiry_grace <= time.time():
            return TOKEN_EXPIRED
        return self._node_full(request.room) or identity

    def room_full(self, room: Room) -> Refusal | None:
        limit = self.max_clients_per_room
        if limit and len(room.peers) >= limit:
            return Refusal(
                CloseCode.OVER_CAPACITY,
                f"room full: {limit} clients (max_clients_per_room), retry later",
            )
        return None

    def _node_full(self, room_name: str) -> Refusal | None:
        # Rooms being loaded right now are not counted: concurrent first joins of
        # different rooms can overshoot by the number in flight.
        rooms = self.registry.rooms
        limit = self.max_rooms
        if limit and room_name not in rooms and len(rooms) >= limit:
            return Refusal(
                CloseCode.OVER_CAPACITY, f"node full: {limit} rooms open (max_rooms), retry later"
            )
        return None


class UserQuota:
    """What one authenticated user (a token's `sub`) may hold on this node: open
    connections, and distinct rooms among them — so a viewer with a glob grant
    cannot fill `max_rooms` or the node's sockets alone. Anonymous connections
    (auth off) have no user to count: the per-address limits apply to them."""

    def __init__(self, max_connections: int = 0, max_rooms: int = 0) -> None:
        self.max_connections = max_connections  # 0: no bound
        self.max_rooms = max_rooms
        self._rooms: dict[str, Counter[str]] = {}  # user -> room -> connections
        self._held: dict[object, tuple[str, str]] = {}  # session -> (user, room)

    def refusal(self, identity: Identity, room: str) -> Refusal | None:
        """Why `identity` may not open one more connection to `room`, or None."""
        user = identity.user_id
        rooms = self._rooms.get(user) if user is not None else None
        if rooms is None:
            return None
        if self.max_connections and rooms.total() >= self.max_connections:
            return Refusal(
                CloseCode.OVER_CAPACITY,
                f"{self.max_connections} connections open for this user "
                "(max_connections_per_user), retry later",
            )
        if self.max_rooms and room not in rooms and len(rooms) >= self.max_rooms:
            return Refusal(
                CloseCode.OVER_CAPACITY,
                f"{self.max_rooms} rooms open for this user (max_rooms_per_user), retry later",
            )
        return None

    def add(self, session: object, identity: Identity, room: str) -> None:
        user = identity.user_id
        if user is None:
            return
        self._rooms.setdefault(user, Counter())[room] += 1
        self._held[session] = (user, room)

    def remove(self, session: object) -> None:
        held = self._held.pop(session, None)
        if held is None:
            return
        user, room = held
        rooms = self._rooms[user]
        rooms[room] -= 1
        if rooms[room] <= 0:
            del rooms[room]
        if not rooms:
            del self._rooms[user]


def room_name_refusal(name: str) -> Refusal | None:
    if not name:
        return Refusal(CloseCode.MALFORMED, "room name missing: connect to ws://host:port/<room>")
    if len(name) > MAX_ROOM_NAME:
        return Refusal(CloseCode.MALFORMED, f"room name longer than {MAX_ROOM_NAME} characters")
    if any(ord(c) < 0x20 or c == "\x7f" for c in name):
        return Refusal(CloseCode.MALFORMED, "room name contains control characters")
    return None


def request_from_scope(scope: Scope, room: str) -> ConnectionRequest:
    """What a WebSocket (or HTTP) scope tells about its client, for admission and hooks."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
    client = scope.get("client")
    return ConnectionRequest(
        room=room,
        query=query,
        headers=headers,
        client=f"{client[0]}:{client[1]}" if client else None,
    )
