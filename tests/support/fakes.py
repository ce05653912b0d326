"""The one fake peer: what a room sends it, recorded as the y-websocket frames a client would get."""

from __future__ import annotations

from ysync.rooms import codec
from ysync.rooms.hooks import Identity
from ysync.rooms.room import Room
from ysync.rooms.vocabulary import Refusal


class FakePeer:
    """A `Peer` that records every message the room sends it, encoded as y-websocket
    frames (`sent`), and the refusal it was closed with (`closed`: code, reason)."""

    def __init__(self, name: str = "peer", identity: Identity | None = None) -> None:
        self.name = name
        self.identity = identity or Identity()
        self.client: str | None = None
        self.sent: list[bytes] = []
        self.raw: list[codec.Message] = []  # the message objects themselves, in order
        self.closed: tuple[int, str] | None = None

    def send(self, message: codec.Message) -> None:
        self.raw.append(message)
        self.sent.append(codec.encode(message))

    def close(self, refusal: Refusal) -> None:
        if self.closed is None:
            self.closed = (refusal.code, refusal.reason)

    @property
    def frames(self) -> list[bytes]:
        return self.sent

    def messages(self) -> list[codec.Message]:
        return [codec.decode(frame) for frame in self.sent]

    def take(self) -> list[codec.Message]:
        """The messages sent so far, forgetting them."""
        messages = self.messages()
        self.sent.clear()
        self.raw.clear()
        return messages

    def drain(self) -> list[bytes]:
        """The frames sent so far, forgetting them."""
        frames = list(self.sent)
        self.take()
        return frames

    def __repr__(self) -> str:
        return f"FakePeer({self.name})"


def feed(room: Room, peer: FakePeer, frame: bytes, now: float | None = None) -> Refusal | None:
    """Hand `room` one y-websocket frame from `peer`, as the transport does: decoded first
    (raises `codec.ProtocolError` for bad bytes, as `Room.receive` does for bad content)."""
    return room.receive(peer, codec.decode(frame), now=now)
