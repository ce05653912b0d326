"""Coverage-guided fuzz target: the Hocuspocus codec and a room fed what it decodes (atheris).

Run on demand (not collected by pytest; tests/test_hocuspocus_codec.py runs `feed`
under hypothesis):

    .venv/bin/pip install -e '.[fuzz]'
    .venv/bin/python tests/fuzz/fuzz_hocuspocus.py -max_total_time=60 -rss_limit_mb=2048

An input is split on b"||" into up to 16 frames from one hostile Hocuspocus peer,
in a room it shares with two good peers. The invariants:

- `read_address` and `decode_body` raise nothing but `ProtocolError`, and a frame
  encoded again from what was decoded decodes to the same message;
- the room raises nothing but `ProtocolError` for what decoded (the adapter
  closes that document);
- afterwards the room still relays a good peer's edit to the other good peer.
"""

from __future__ import annotations

import sys

from pycrdt import Doc, Text

from ysync.rooms import codec, hocuspocus
from ysync.rooms.hooks import Identity
from ysync.rooms.room import Room
from ysync.rooms.vocabulary import Refusal

MAX_FRAMES = 16
_ROOM_MESSAGES = (
    codec.SyncStep1,
    codec.SyncStep2,
    codec.SyncUpdate,
    codec.AwarenessUpdate,
    codec.QueryAwareness,
)


class _Peer:
    """Records what the room sends, as Hocuspocus frames for document "fuzz"."""

    __slots__ = ("closed", "frames")
    identity = Identity()
    client = None

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.closed: Refusal | None = None

    def send(self, message: codec.Message) -> None:
        if not isinstance(message, codec.Auth):  # the adapter acks with SyncStatus instead
            self.frames.append(hocuspocus.encode("fuzz", message))

    def close(self, refusal: Refusal) -> None:
        self.closed = refusal


def _decoded(frame: bytes) -> hocuspocus.Message | None:
    try:
        address, message = hocuspocus.decode(frame)
    except codec.ProtocolError:
        return None
    if not isinstance(message, hocuspocus.Unknown | hocuspocus.Close):
        again = hocuspocus.decode(hocuspocus.encode(address, message))
        if again != (address, message):
            raise AssertionError(f"{frame!r} decodes to {message!r}, re-encoded to {again!r}")
    return message


def feed(frames: list[bytes]) -> None:
    """Send `frames` from a hostile peer; raise AssertionError if an invariant breaks."""
    room = Room("fuzz")
    hostile, writer, watcher = _Peer(), _Peer(), _Peer()
    for peer in (hostile, writer, watcher):
        room.join(peer)
    room.receive(watcher, codec.SyncStep1(b"\x00"), now=0.0)
    for frame in frames[:MAX_FRAMES]:
        message = _decoded(frame)
        if isinstance(message, hocuspocus.SyncReply):
            message = message.message
        if not isinstance(message, _ROOM_MESSAGES):
            continue
        try:
            room.receive(hostile, message, now=0.0)
            if isinstance(message, codec.SyncStep2 | codec.SyncUpdate):
                room.contains(message.update)
        except codec.ProtocolError:
            break  # the adapter closes this document here
    room.leave(hostile)
    before = len(watcher.frames)
    edit = Doc()
    edit["good"] = Text("ok")
    room.receive(writer, codec.SyncUpdate(edit.get_update()), now=0.0)
    relayed = [hocuspocus.decode(f)[1] for f in watcher.frames[before:]]
    if not any(isinstance(m, codec.SyncUpdate) for m in relayed):
        raise AssertionError("the room stopped relaying edits after hostile input")
    room.close()


def one_input(data: bytes) -> None:
    feed(data.split(b"||"))


def main() -> None:
    import atheris  # the `fuzz` extra; imported here so pytest can import `feed`

    atheris.instrument_all()
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
