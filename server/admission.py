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
    ) -> None:
        self.extensions = extensions
        self.registry = registry
        self.max_rooms = max_rooms
        self.max_clients_per_room = max_clients_per_room
        self.token_expiry_grace = token_expiry_grace

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
