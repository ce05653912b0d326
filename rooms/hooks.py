"""Hooks a host application implements to plug into ysync (like Hocuspocus's).

Subclass `Hooks` and override only what you need; each default does nothing.
Pass the instance to `ysync.server.create_app(settings, hooks)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pycrdt import Doc


@dataclass(frozen=True, slots=True)
class ConnectionRequest:
    """What is known about a WebSocket connection before it is accepted."""

    room: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # names lower-cased
    client: str | None = None  # "host:port" of the peer, when known


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a connection is and what it may do, per connection (never per room)."""

    user_id: str | None = None
    name: str | None = None
    read_only: bool = False


class Refused(Exception):
    """Raise from `Hooks.authenticate` to refuse a connection.

    The client is closed with `code` and `reason`; use 4401 (bad or missing
    token: the app fetches a new one) or 4403 (no access to this room): the JS
    provider does not retry codes 4400-4499.
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Hooks:
    """Extension points, called in this order for a room: authenticate (per
    connection), load_document (once per load), on_change (every change),
    store_document (when the room unloads or the server stops)."""

    async def authenticate(self, request: ConnectionRequest) -> Identity:
        """Decide who may connect; raise `Refused` to deny. Default: anyone edits."""
        return Identity()

    async def load_document(self, room: str, doc: Doc) -> None:
        """Called once after `room` was loaded from the store, before any client
        sees it. Create initial content here (once, on the server: clients that
        each seed content would duplicate it); it is stored like any edit."""

    def on_change(self, room: str, update: bytes, origin: str) -> None:
        """Called synchronously for every change to a loaded room's document.
        `origin` is "client", "bus" or "server". Keep it fast; never raises into ysync."""

    async def store_document(self, room: str, doc: Doc) -> None:
        """Called when a room unloads (and at shutdown) after its updates are
        committed to the store; e.g. export the document to your own database."""
