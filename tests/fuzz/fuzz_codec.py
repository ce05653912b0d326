"""Coverage-guided fuzz target: the y-websocket codec and a room's update path (atheris).

Run on demand (not collected by pytest; the suite runs `feed` under hypothesis):

    .venv/bin/pip install -e '.[fuzz]'
    .venv/bin/python tests/fuzz/fuzz_codec.py -max_total_time=60 -rss_limit_mb=2048 [CORPUS_DIR]

An input is split on b"||" into up to 16 frames, which one hostile peer sends to a
fresh room that two well-behaved peers share. The invariants:

- the only exception that escapes `Room.receive` is `codec.ProtocolError` (the
  transport turns it into close 4400; anything else would be a 1011 and a bug);
- afterwards the room still relays a good peer's edit to the other good peer (unless
  the hostile edits filled the document to its size limit: then that edit gets 4413).
"""

from __future__ import annotations

import sys

from pycrdt import Doc, Text

from ysync.rooms import codec
from ysync.rooms.hooks import Identity
from ysync.rooms.room import Room, RoomConfig
from ysync.rooms.vocabulary import Refusal

MAX_FRAMES = 16


class _Peer:
    """Records what the room sends as y-websocket frames (self-contained: this file
    also runs as a script, outside pytest's path)."""

    __slots__ = ("closed", "frames")
    identity = Identity()
    client = None

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.closed: tuple[int, str] | None = None

    def send(self, message: codec.Message) -> None:
        self.frames.append(codec.encode(message))

    def close(self, refusal: Refusal) -> None:
        self.closed = (refusal.code, refusal.reason)


def _good_edit() -> bytes:
    # A fresh random client id each time: the hostile peer cannot pre-empt it.
    doc = Doc()
    doc["good"] = text = Text()
    text += "ok"
    return codec.encode_update(doc.get_update())


def feed(frames: list[bytes], *, max_document_bytes: int = 0) -> None:
    """Send `frames` from a hostile peer; raise AssertionError if an invariant breaks."""
    room = Room("fuzz", RoomConfig(max_document_bytes=max_document_bytes))
    hostile, writer, watcher = _Peer(), _Peer(), _Peer()
    for peer in (hostile, writer, watcher):
        room.join(peer)
    room.receive(watcher, codec.SyncStep1(b"\x00"), now=0.0)
    for frame in frames[:MAX_FRAMES]:
        try:
            room.receive(hostile, codec.decode(frame), now=0.0)
        except codec.ProtocolError:
            break  # the transport closes the connection with 4400 here
        if hostile.closed is not None:
            break
    room.leave(hostile)
    before = len(watcher.frames)
    room.receive(writer, codec.decode(_good_edit()), now=0.0)
    if writer.closed is not None and writer.closed[0] == 4413:
        # The hostile peer's accepted edits filled the document to its size limit:
        # refusing further growth is that limit working, not a stalled room.
        room.close()
        return
    relayed = [codec.decode(f) for f in watcher.frames[before:]]
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
