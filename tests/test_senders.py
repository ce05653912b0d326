"""How frames leave the server (`ysync.server.senders`), against a recording socket (no sockets)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ysync.rooms import codec
from ysync.server.metrics import TransportStats
from ysync.server.senders import Broadcaster, DirectSender, FrameCache, binary_frame


class RecordingTransport:
    """Stands in for ysync's WebSocket protocol, the connection a direct peer writes to."""

    def __init__(self) -> None:
        self.written: list[Any] = []
        self.buffered = 0
        self.aborted = False
        self.pings = 0

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def writelines(self, data: list[bytes]) -> None:
        self.written.append(list(data))  # type: ignore[arg-type]

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True

    def send_close(self, code: int, reason: str) -> None:
        self.written.append(("close", code, reason))

    def heartbeat(self) -> None:
        self.pings += 1


CACHE = FrameCache(codec.encode)


def send(sender: DirectSender, update: bytes) -> None:
    sender.send(codec.SyncUpdate(update), CACHE)


def frame(update: bytes) -> bytes:
    return binary_frame(codec.encode_update(update))


def direct_peer(transport: RecordingTransport, max_bytes: int = 1000) -> DirectSender:
    return DirectSender(transport, Broadcaster(), max_bytes=max_bytes, stats=TransportStats())


@pytest.mark.parametrize("length", [0, 125, 126, 65535, 65536])
def test_binary_frames_use_the_rfc_6455_length_forms(length: int) -> None:
    payload = bytes(length)
    frame = binary_frame(payload)
    assert frame[0] == 0x82  # FIN, binary
    if length < 126:
        assert frame[1] == length and frame[2:] == payload
    elif length < 65536:
        assert frame[1] == 126 and int.from_bytes(frame[2:4], "big") == length
    else:
        assert frame[1] == 127 and int.from_bytes(frame[2:10], "big") == length
    assert frame.endswith(payload)


def test_a_broadcast_message_is_encoded_and_framed_once() -> None:
    cache = FrameCache(codec.encode)
    message = codec.SyncUpdate(b"\x00\x00")
    first = cache.frame(message)
    assert first == binary_frame(codec.encode(message))
    assert cache.frame(message) is first  # the same object for every recipient
    assert cache.payload(message) is cache.payload(message)
    other = codec.SyncUpdate(b"\x00\x00")  # equal, but another broadcast
    assert cache.frame(other) == first and cache.frame(other) is not first


def test_keep_alive_sends_a_no_op_only_after_silence() -> None:
    async def scenario() -> None:
        transport = RecordingTransport()
        peer = direct_peer(transport)
        noop = binary_frame(codec.EMPTY_AWARENESS)
        send(peer, b"")
        await asyncio.sleep(0)  # frames are written at the end of the loop turn
        peer.keep_alive(noop)  # something was sent since the last check: nothing to add
        await asyncio.sleep(0)
        assert transport.written == [frame(b"")]
        peer.keep_alive(noop)  # silent since: a no-op the JS provider counts as a message
        await asyncio.sleep(0)
        assert transport.written[-1] == binary_frame(codec.EMPTY_AWARENESS)
        assert transport.pings == 2  # and the connection pings on every check

    asyncio.run(scenario())


def test_frames_of_one_turn_are_written_together_in_order() -> None:
    async def scenario() -> None:
        transport = RecordingTransport()
        peer = direct_peer(transport)
        for update in (b"\x01", b"\x02", b"\x03"):
            send(peer, update)
        assert transport.written == []  # nothing written mid-turn
        await asyncio.sleep(0)
        assert transport.written == [[frame(u) for u in (b"\x01", b"\x02", b"\x03")]]

    asyncio.run(scenario())


def test_a_full_buffer_cuts_the_peer_off_with_4508_behind_what_is_buffered() -> None:
    async def scenario() -> None:
        transport = RecordingTransport()
        peer = direct_peer(transport, max_bytes=1000)
        send(peer, b"")  # gathered, not yet written
        transport.buffered = 990
        send(peer, bytes(20))
        assert peer.closing
        # What was gathered goes out first, then the close frame.
        assert transport.written == [
            frame(b""),
            ("close", 4508, "slow consumer: send buffer full"),
        ]
        send(peer, b"more")  # nothing after the close frame
        await asyncio.sleep(0)
        assert len(transport.written) == 2

    asyncio.run(scenario())
