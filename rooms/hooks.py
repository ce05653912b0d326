"""Who connects (`ConnectionRequest`, `Identity`, `Role`) and the host application's `Hooks`.

`Hooks` is the simple way for a host app to plug in: subclass it, override only
what you need, pass the instance to `ysync.server.create_app(settings, hooks)`.
It runs as one extension (`ysync.rooms.extensions.from_hooks`); for more hooks,
or several features that each react to changes, write `Extension`s instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pycrdt import Doc

from ysync.rooms.vocabulary import Refused as Refused

if TYPE_CHECKING:
    from ysync.rooms.codec import AwarenessEntry


@dataclass(frozen=True, slots=True)
class ConnectionRequest:
    """What is known about a WebSocket connection before it is accepted."""

    room: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # names lower-cased
    client: str | None = None  # "host:port" of the peer, when known
    # The token a client sent in a y-websocket auth message as its first frame
    # (`varUint(2) varUint(0) varString(token)`), when the server waited for one.
    auth_message: str | None = None

    @property
    def token(self) -> str | None:
        """The bearer token, from the first of: `Authorization: Bearer` header,
        `token` query parameter (what browsers can send), auth message."""
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return self.query.get("token") or self.auth_message or None


class Role(StrEnum):
    """What a connection may do in a room, from most to least powerful."""

    OWNER = "owner"  # everything, incl. deleting/restoring the room via the HTTP API
    EDITOR = "editor"  # edit the document
    COMMENTER = "commenter"  # presence and comments, no document edits
    VIEWER = "viewer"  # read the document and presence; may send its own cursor

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {Role.VIEWER: 0, Role.COMMENTER: 1, Role.EDITOR: 2, Role.OWNER: 3}


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a connection is and what it may do, per connection (never per room).

    `Identity()` is an anonymous editor (what every client is with auth off).
    `read_only=True` forbids document edits whatever the role.
    """

    user_id: str | None = None
    name: str | None = None
    read_only: bool = False
    role: Role = Role.EDITOR
    avatar: str | None = None  # picture URL, shown with the name in presence
    color: str | None = None  # cursor colour, e.g. "#e11d48"
    # Unix time after which the connection is closed with 4401 (token expiry),
    # plus the server's --token-expiry-grace; None: never.
    expires_at: float | None = None

    @property
    def can_edit(self) -> bool:
        """May change the document (owner, editor)."""
        return not self.read_only and self.role.rank >= _RANKS[Role.EDITOR]

    @property
    def can_comment(self) -> bool:
        """May add comments (owner, editor, commenter)."""
        return self.role.rank >= _RANKS[Role.COMMENTER]

    @property
    def can_manage(self) -> bool:
        """May delete or restore the room via the HTTP API (owner)."""
        return self.role is Role.OWNER

    # Every role may read the document and the presence states, and send its
    # own presence (cursor): presence write is a separate right from document write.


class Hooks:
    """Extension points, called in this order for a room: authenticate (per
    connection), load_document (once per load), on_change (every change),
    store_document (when the room unloads or the server stops)."""

    #: True: a connection without a token in its header or query may send it as
    #: its first frame, a y-websocket auth message (`request.auth_message`); the
    #: server waits --auth-timeout seconds for it, sending nothing of the room.
    accepts_auth_message: bool = False

    @property
    def authenticates(self) -> bool:
        """True when this subclass overrides `authenticate`: it then decides who
        connects, instead of --auth jwt."""
        return type(self).authenticate is not Hooks.authenticate

    async def authenticate(self, request: ConnectionRequest) -> Identity:
        """Decide who may connect; raise `Refused` to deny. Default: anyone edits."""
        return Identity()

    async def load_document(self, room: str, doc: Doc[Any]) -> None:
        """Called once after `room` was loaded from the store, before any client
        sees it. Create initial content here (once, on the server: clients that
        each seed content would duplicate it); it is stored like any edit."""

    async def seed_document(self, room: str) -> bytes | None:
        """The initial content of `room` when it is first created (a Yjs update), or
        None. Applied by the server exactly once cluster-wide, however many clients
        on however many nodes join at the same moment (`--seed-document` wins)."""
        return None

    def on_change(self, room: str, update: bytes, origin: str) -> None:
        """Called synchronously for every change to a loaded room's document.
        `origin` is "client", "bus" or "server". Keep it fast; never raises into ysync."""

    async def store_document(self, room: str, doc: Doc[Any]) -> None:
        """Called when a room unloads (and at shutdown) after its updates are
        committed to the store; e.g. export the document to your own database."""

    # Optional hooks (Hocuspocus's onStateless, onAwarenessUpdate, onDisconnect):
    # only run when overridden.

    def on_stateless(self, room: str, payload: str, identity: Identity) -> bool:
        """A Hocuspocus client sent a stateless message. Return True to relay it to
        the room's other Hocuspocus clients on every node (default: not relayed)."""
        return False

    def on_awareness_update(
        self, room: str, changes: Sequence[AwarenessEntry], origin: str
    ) -> None:
        """Awareness states changed (`entry.state` is the JSON text, "null" when
        removed); `origin` as for `on_change`. Keep it fast."""

    def on_disconnect(self, room: str, identity: Identity, clients: int) -> None:
        """A client left `room`; `clients` are still connected to it on this node."""
