"""The client side of the y-websocket sync handshake, sans I/O (y-protocols/sync.js).

One `DocSync` per local document, for the life of the document; `start()` at
every new connection. Typed messages in (`handle`), frames to send out:

    sync = DocSync(doc)
    send(sync.start())                     # our SyncStep1: what we lack
    for message in incoming:
        reply = sync.handle(message)       # the server's SyncStep1 → our SyncStep2
        if reply is not None:              #   (which uploads our offline edits)
            send(reply)
    sync.synced                            # True once the server's SyncStep2 arrived

Local edits: a doc observer sends `codec.encode_update(event.update)` unless
`sync.applying_remote` (the change came from the server: never echo it).
Used by the SDK session (`ysync.clients.session`) and the load-test client
(`ysync.loadtest.protocol`).
"""

from __future__ import annotations

from typing import Any

from pycrdt import Doc

from ysync.rooms import codec

EMPTY_UPDATE = codec.EMPTY_UPDATE


class DocSync:
    """Sync state of one local document against one server connection at a time."""

    __slots__ = ("applying_remote", "doc", "read_only", "steps_received", "synced")

    def __init__(self, doc: Doc[Any], *, read_only: bool = False) -> None:
        self.doc = doc
        #: Never upload local edits (the server refused them, or the app asked so).
        self.read_only = read_only
        self.synced = False  # the server's SyncStep2 arrived on this connection
        self.steps_received = 0  # SyncStep2s received on this connection
        self.applying_remote = False  # True while a server update is being applied

    def start(self) -> bytes:
        """A new connection: forget the last one's handshake; our SyncStep1 to send."""
        self.synced = False
        self.steps_received = 0
        return self.step1()

    def step1(self) -> bytes:
        """Our SyncStep1: the server answers with what we lack (also a sync round trip)."""
        return codec.encode_sync_step1(self.doc.get_state())

    def handle(self, message: codec.Message) -> bytes | None:
        """Apply a sync message from the server; the frame to answer with, if any.
        Messages other than sync messages are ignored (None)."""
        if isinstance(message, codec.SyncStep1):
            return codec.encode_sync_step2(self._update_for(message.state_vector))
        if isinstance(message, codec.SyncStep2):
            self.apply(message.update)
            self.steps_received += 1
            self.synced = True
        elif isinstance(message, codec.SyncUpdate):
            self.apply(message.update)
        return None

    def apply(self, update: bytes) -> None:
        """Apply a server update without echoing it back."""
        self.applying_remote = True
        try:
            self.doc.apply_update(update)
        finally:
            self.applying_remote = False

    def _update_for(self, state_vector: bytes) -> bytes:
        if self.read_only:
            return EMPTY_UPDATE  # never upload edits the server refused
        try:
            return self.doc.get_update(state_vector)
        except ValueError:
            return self.doc.get_update()
