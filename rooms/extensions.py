"""Extensions: optional hooks into every stage of a connection and a room, run in priority order.

As Hocuspocus's extensions: a feature is a subclass of `Extension` that
overrides the hooks it needs; `Extensions` runs them, highest `priority`
first. JWT authentication, limits, audit, metrics and replication are built
this way, and so are a host application's `Hooks` (adapted by `from_hooks`):

    class Greeter(Extension):
        async def on_load_document(self, room: Room) -> None:
            if not room.doc.get("title", type=Text):
                room.doc.get("title", type=Text).insert(0, "Untitled")

    app = create_app(settings, extensions=[Greeter()])

A hook an extension does not override costs nothing: the runner keeps, per
hook, the list of extensions that define it. Hooks, in the order they run:

- connection: `on_connect` (before authentication; raise `Refused` to refuse),
  `authenticate` (the first extension returning an `Identity` decides),
  `message_gate` (a per-connection check of every incoming frame),
  `on_stateless` (a Hocuspocus client's stateless message: relay it or not),
  `on_refused` (a connection or request was refused), `on_join`/`on_leave`
  (a client entered/left a room), `on_edit_refused` (a read-only client's edit);
- room: `on_load_document` (once per load, before any client sees it),
  `on_change` and `on_awareness` (every document and presence change, with its
  origin), `on_store` (after the room's updates are committed, at unload),
  `on_unload`, `on_shutdown`; `on_delete` (the room is being deleted: delete
  what you keep of it), `on_export`/`on_import` (your part of a room's archive);
- node: `on_start` (the node is built: take what you need from it), `routes`
  (HTTP routes to mount), `background` (coroutines to run for the node's life),
  `health` (a readiness problem, or None); `user_role` (the role someone who
  is not the caller has in a room, e.g. whether a mentioned user may be notified).

Notification hooks never break the caller: an exception is logged and the
next extension runs. Gate hooks (`on_connect`, `authenticate`) refuse by
raising `Refused`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any

from ysync.rooms.codec import AwarenessEntry
from ysync.rooms.hooks import ConnectionRequest, Hooks, Identity, Role
from ysync.rooms.protocols import Peer
from ysync.rooms.room import Origin, Room, origin_label
from ysync.rooms.vocabulary import Refusal

log = logging.getLogger("ysync.extensions")

MessageGate = Callable[[bytes], Refusal | None]
"""Checks one incoming frame of a connection; a refusal closes the connection."""

Background = tuple[str, Callable[[], Coroutine[Any, Any, None]]]
"""A named coroutine function the node runs in its task group for its whole life."""


class Extension:
    """Base of every extension; override only the hooks you need."""

    #: Higher runs first (Hocuspocus's convention). Built-ins: auth 1000,
    #: limits 900, replication 800, host hooks 100, audit 10, metrics 0.
    priority: int = 100
    #: True: `authenticate` may be given a token sent in a y-websocket auth
    #: message as the connection's first frame (`request.auth_message`).
    accepts_auth_message: bool = False

    @property
    def name(self) -> str:
        return type(self).__name__

    # -- connections ---------------------------------------------------------------

    async def on_connect(self, request: ConnectionRequest) -> None:
        """Before authentication; raise `Refused` to refuse the connection."""

    async def authenticate(self, request: ConnectionRequest) -> Identity | None:
        """Who the client is and its role in `request.room`; None: not for this
        extension to decide. Raise `Refused` to refuse."""
        return None

    def message_gate(self, request: ConnectionRequest, identity: Identity) -> MessageGate | None:
        """A check run on every frame the admitted connection sends (None: no check)."""
        return None

    def on_refused(
        self, request: ConnectionRequest, identity: Identity | None, refusal: Refusal
    ) -> None:
        """A connection (or an HTTP API request) was refused."""

    def on_join(self, room: Room, peer: Peer, request: ConnectionRequest) -> None:
        """A client joined `room` (before its handshake)."""

    def on_leave(self, room: Room, peer: Peer) -> None:
        """A client left `room` (its awareness states are already removed)."""

    def on_edit_refused(self, room: Room, peer: Peer, refusal: Refusal) -> None:
        """A client sent an edit it may not make (it was told; it stays connected)."""

    def on_stateless(self, room: Room, peer: Peer, payload: str) -> bool:
        """A Hocuspocus client sent a stateless message (any string) in `room`.
        Return True to relay it to the room's other Hocuspocus clients on every
        node; by default nothing is relayed (as Hocuspocus's own default). To answer
        the sender only: `ysync.server.hocuspocus.send_stateless(peer, text)`."""
        return False

    # -- rooms -----------------------------------------------------------------------

    async def on_load_document(self, room: Room) -> None:
        """Once after `room` was loaded from the store, before any client sees it."""

    def on_change(self, room: Room, update: bytes, origin: Origin) -> None:
        """Every change to a loaded room's document (synchronously: keep it fast)."""

    def on_awareness(self, room: Room, entries: list[AwarenessEntry], origin: Origin) -> None:
        """Every change to a room's awareness states (synchronously: keep it fast)."""

    async def on_store(self, room: Room) -> None:
        """The room is unloading and its updates are committed."""

    async def on_unload(self, room: Room) -> None:
        """The room was unloaded (after `on_store`)."""

    def on_shutdown(self) -> None:
        """The node is stopping (before its rooms unload)."""

    async def on_delete(self, room: str) -> None:
        """`room` is being deleted (e.g. GDPR): delete everything you keep of it."""

    async def seed_document(self, room: str) -> bytes | None:
        """The initial content of a room being created (a Yjs update), or None.
        Applied once cluster-wide, by the server (see `ysync.server.seeding`)."""
        return None

    async def on_export(self, room: str) -> Mapping[str, Any] | None:
        """Your part of `room`'s export archive (JSON-able), under your `name`; None: nothing."""
        return None

    async def on_import(self, room: str, data: Mapping[str, Any]) -> None:
        """Restore your part of an archive (what `on_export` gave) into the empty `room`."""

    # -- the node --------------------------------------------------------------------

    async def on_start(self, node: Any) -> None:
        """The node is built (`ysync.server.app.Node`: its store, registry, event hub, ...),
        before any client connects or any background task runs."""

    def routes(self) -> Sequence[Any]:
        """Starlette routes the server mounts (HTTP endpoints of this extension)."""
        return ()

    def background(self) -> Sequence[Background]:
        """Coroutines the node runs for its whole life (cancelled at shutdown)."""
        return ()

    def health(self) -> str | None:
        """A reason the node is not ready right now (None: nothing wrong)."""
        return None

    async def user_role(self, user_id: str, room: str) -> Role | None:
        """The role `user_id` has in `room` when they are not the one asking (e.g. a
        mentioned user: notified only if they may read the room); None: not for
        this extension to say. A host app with a user directory answers here."""
        return None


def _overrides(extension: Extension, hook: str) -> bool:
    defines = getattr(extension, "defines", None)
    if defines is not None:
        return bool(defines(hook))
    return getattr(type(extension), hook) is not getattr(Extension, hook)


class Extensions:
    """Runs a node's extensions, highest priority first (ties: registration order)."""

    def __init__(self, extensions: Iterable[Extension] = ()) -> None:
        self.all: tuple[Extension, ...] = tuple(
            sorted(extensions, key=lambda extension: -extension.priority)
        )
        self.authenticators = self._defining("authenticate")
        self._connect = self._defining("on_connect")
        self._gates = self._defining("message_gate")
        self._refused = self._defining("on_refused")
        self._join = self._defining("on_join")
        self._leave = self._defining("on_leave")
        self._edit_refused = self._defining("on_edit_refused")
        self._stateless = self._defining("on_stateless")
        self._load = self._defining("on_load_document")
        self._change = self._defining("on_change")
        self._awareness = self._defining("on_awareness")
        self._store = self._defining("on_store")
        self._unload = self._defining("on_unload")
        self._shutdown = self._defining("on_shutdown")
        self._start = self._defining("on_start")
        self._delete = self._defining("on_delete")
        self._seed = self._defining("seed_document")
        self._export = self._defining("on_export")
        self._import = self._defining("on_import")
        self._user_role = self._defining("user_role")

    def _defining(self, hook: str) -> tuple[Extension, ...]:
        return tuple(extension for extension in self.all if _overrides(extension, hook))

    @property
    def authenticates(self) -> bool:
        """Whether any extension authenticates (False: auth is off)."""
        return bool(self.authenticators)

    @property
    def accepts_auth_message(self) -> bool:
        return any(extension.accepts_auth_message for extension in self.authenticators)

    def describe_auth(self) -> str:
        return ", ".join(e.name for e in self.authenticators) if self.authenticators else "off"

    # -- connections -------------------------------------------------------------------

    async def connect(self, request: ConnectionRequest) -> None:
        for extension in self._connect:
            await extension.on_connect(request)

    async def authenticate(self, request: ConnectionRequest) -> Identity | None:
        """The first identity an extension returns; None when none decides."""
        for extension in self.authenticators:
            identity = await extension.authenticate(request)
            if identity is not None:
                return identity
        return None

    def message_gate(self, request: ConnectionRequest, identity: Identity) -> MessageGate | None:
        """One check of every incoming frame, made of the extensions' gates (None: none)."""
        gates = [extension.message_gate(request, identity) for extension in self._gates]
        chain = [gate for gate in gates if gate is not None]
        if len(chain) <= 1:
            return chain[0] if chain else None
        return _GateChain(chain)

    def refused(
        self, request: ConnectionRequest, identity: Identity | None, refusal: Refusal
    ) -> None:
        for extension in self._refused:
            _notify(extension.on_refused, request, identity, refusal)

    def joined(self, room: Room, peer: Peer, request: ConnectionRequest) -> None:
        for extension in self._join:
            _notify(extension.on_join, room, peer, request)

    def left(self, room: Room, peer: Peer) -> None:
        for extension in self._leave:
            _notify(extension.on_leave, room, peer)

    def edit_refused(self, room: Room, peer: Peer, refusal: Refusal) -> None:
        for extension in self._edit_refused:
            _notify(extension.on_edit_refused, room, peer, refusal)

    def stateless(self, room: Room, peer: Peer, payload: str) -> bool:
        """Every extension sees the message; relayed if any of them says so."""
        relay = False
        for extension in self._stateless:
            try:
                relay = extension.on_stateless(room, peer, payload) is True or relay
            except Exception:
                log.exception("%s.on_stateless failed", extension.name, extra={"room": room.name})
        return relay

    # -- rooms ---------------------------------------------------------------------------

    async def load_document(self, room: Room) -> None:
        for extension in self._load:
            await extension.on_load_document(room)

    def change(self, room: Room, update: bytes, origin: Origin) -> None:
        for extension in self._change:
            try:
                extension.on_change(room, update, origin)
            except Exception:
                log.exception("%s.on_change failed", extension.name, extra={"room": room.name})

    def awareness(self, room: Room, entries: list[AwarenessEntry], origin: Origin) -> None:
        for extension in self._awareness:
            try:
                extension.on_awareness(room, entries, origin)
            except Exception:
                log.exception("%s.on_awareness failed", extension.name, extra={"room": room.name})

    async def store(self, room: Room) -> None:
        for extension in self._store:
            try:
                await extension.on_store(room)
            except Exception:
                log.exception("%s.on_store failed", extension.name, extra={"room": room.name})

    async def unload(self, room: Room) -> None:
        for extension in self._unload:
            try:
                await extension.on_unload(room)
            except Exception:
                log.exception("%s.on_unload failed", extension.name, extra={"room": room.name})

    def shutdown(self) -> None:
        for extension in self._shutdown:
            _notify(extension.on_shutdown)

    async def delete(self, room: str) -> None:
        """Every extension deletes its data of `room`; the first failure is raised
        (a deletion must not be reported done while data is left)."""
        for extension in self._delete:
            await extension.on_delete(room)

    async def seed(self, room: str) -> bytes | None:
        """The first initial content an extension gives for `room`, or None."""
        for extension in self._seed:
            seed = await extension.seed_document(room)
            if seed is not None:
                return seed
        return None

    async def export(self, room: str) -> dict[str, Mapping[str, Any]]:
        """Each extension's part of `room`'s archive, by extension name."""
        parts: dict[str, Mapping[str, Any]] = {}
        for extension in self._export:
            part = await extension.on_export(room)
            if part is not None:
                parts[extension.name] = part
        return parts

    async def import_(self, room: str, parts: Mapping[str, Mapping[str, Any]]) -> None:
        for extension in self._import:
            part = parts.get(extension.name)
            if part is not None:
                await extension.on_import(room, part)

    # -- the node --------------------------------------------------------------------------

    async def start(self, node: Any) -> None:
        for extension in self._start:
            await extension.on_start(node)

    def routes(self) -> list[Any]:
        return [route for extension in self.all for route in extension.routes()]

    def background(self) -> list[Background]:
        return [task for extension in self.all for task in extension.background()]

    def health(self) -> list[str]:
        problems = (extension.health() for extension in self.all)
        return [problem for problem in problems if problem]

    async def user_role(self, user_id: str, room: str) -> Role | None:
        """The first role an extension knows `user_id` has in `room` (None: none knows)."""
        for extension in self._user_role:
            role = await extension.user_role(user_id, room)
            if role is not None:
                return role
        return None


class _GateChain:
    __slots__ = ("gates",)

    def __init__(self, gates: list[MessageGate]) -> None:
        self.gates = tuple(gates)

    def __call__(self, frame: bytes) -> Refusal | None:
        for gate in self.gates:
            refusal = gate(frame)
            if refusal is not None:
                return refusal
        return None


def _notify(hook: Callable[..., None], *args: Any) -> None:
    try:
        hook(*args)
    except Exception:
        log.exception("%s failed", getattr(hook, "__qualname__", hook))


# -- a host application's Hooks, as an extension -----------------------------------------


# The extension hook each optional `Hooks` method is run by: registered only when the
# host's subclass overrides the method, so an unused hook costs nothing.
_OPTIONAL_HOOKS = {
    "on_stateless": "on_stateless",
    "on_awareness": "on_awareness_update",
    "on_leave": "on_disconnect",
}


class HooksExtension(Extension):
    """A host app's `Hooks` subclass, run as an extension (priority 100)."""

    def __init__(self, hooks: Hooks) -> None:
        self.hooks = hooks

    @property
    def name(self) -> str:
        return type(self.hooks).__name__

    def defines(self, hook: str) -> bool:
        method = _OPTIONAL_HOOKS.get(hook)
        if method is not None:
            return getattr(type(self.hooks), method) is not getattr(Hooks, method)
        return getattr(type(self), hook) is not getattr(Extension, hook)

    def on_stateless(self, room: Room, peer: Peer, payload: str) -> bool:
        return self.hooks.on_stateless(room.name, payload, peer.identity)

    def on_awareness(self, room: Room, entries: list[AwarenessEntry], origin: Origin) -> None:
        self.hooks.on_awareness_update(room.name, entries, origin_label(origin))

    def on_leave(self, room: Room, peer: Peer) -> None:
        self.hooks.on_disconnect(room.name, peer.identity, len(room.peers))

    async def on_load_document(self, room: Room) -> None:
        await self.hooks.load_document(room.name, room.doc)

    async def seed_document(self, room: str) -> bytes | None:
        return await self.hooks.seed_document(room)

    def on_change(self, room: Room, update: bytes, origin: Origin) -> None:
        self.hooks.on_change(room.name, update, origin_label(origin))

    async def on_store(self, room: Room) -> None:
        await self.hooks.store_document(room.name, room.doc)


class _AuthenticatingHooksExtension(HooksExtension):
    """The same, for hooks that override `authenticate`: it decides who connects."""

    priority = 1000  # ahead of --auth jwt, which it replaces

    def __init__(self, hooks: Hooks) -> None:
        super().__init__(hooks)
        self.accepts_auth_message = hooks.accepts_auth_message

    async def authenticate(self, request: ConnectionRequest) -> Identity | None:
        return await self.hooks.authenticate(request)


def from_hooks(hooks: Hooks) -> HooksExtension:
    """The extension that runs `hooks` (their `authenticate` only if they override it)."""
    if hooks.authenticates:
        return _AuthenticatingHooksExtension(hooks)
    return HooksExtension(hooks)
