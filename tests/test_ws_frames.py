"""The client-frame reader of ysync's own WebSocket protocol (sans I/O)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ysync.server.ws_frames import (
    BINARY,
    CLOSE,
    CONTINUATION,
    MAX_CONTROL_RUN,
    MAX_FRAGMENTS,
    PING,
    TEXT,
    FrameError,
    FrameReader,
    frame_header,
    parse_close,
)


def client_frame(
    opcode: int, payload: bytes, *, final: bool = True, mask: bytes = b"abcd"
) -> bytes:
    """A masked client frame, as a browser sends it."""
    first = (0x80 if final else 0) | opcode
    length = len(payload)
    if length < 126:
        header = bytes((first, 0x80 | length))
    elif length < 65536:
        header = bytes((first, 0x80 | 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((first, 0x80 | 127)) + length.to_bytes(8, "big")
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


@pytest.mark.parametrize("length", [0, 1, 125, 126, 65535, 65536, 70000])
def test_every_length_form_is_read_back(length: int) -> None:
    payload = os.urandom(length)
    assert FrameReader(1 << 20).feed(client_frame(BINARY, payload)) == [(BINARY, payload)]


@given(st.lists(st.binary(max_size=300), min_size=1, max_size=5), st.data())
def test_frames_split_anywhere_read_the_same(payloads: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(client_frame(BINARY, p) for p in payloads)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    reader = FrameReader(1 << 20)
    got = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        got += reader.feed(stream[start:end])
    assert got == [(BINARY, p) for p in payloads]


def test_fragments_join_and_control_frames_may_come_between_them() -> None:
    stream = (
        client_frame(BINARY, b"hel", final=False)
        + client_frame(PING, b"p")
        + client_frame(CONTINUATION, b"lo", final=False)
        + client_frame(CONTINUATION, b"!")
    )
    assert FrameReader(100).feed(stream) == [(PING, b"p"), (BINARY, b"hello!")]


@pytest.mark.parametrize(
    ("stream", "code", "words"),
    [
        (bytes((0x82, 0x01)) + b"x", 1002, "masked"),
        (bytes((0xC2, 0x80)) + b"abcd", 1002, "reserved"),
        (client_frame(0x3, b"x"), 1002, "opcode"),
        (client_frame(CONTINUATION, b"x"), 1002, "continuation"),
        (client_frame(BINARY, b"a", final=False) + client_frame(TEXT, b"b"), 1002, "before"),
        (client_frame(PING, b"x" * 126), 1002, "control"),
        (client_frame(PING, b"x", final=False), 1002, "control"),
        (client_frame(BINARY, b"x" * 101), 1009, "larger"),
        (
            client_frame(BINARY, b"x" * 60, final=False) + client_frame(CONTINUATION, b"x" * 60),
            1009,
            "larger",
        ),
    ],
)
def test_what_the_rfc_forbids_is_refused_with_a_close_code(
    stream: bytes, code: int, words: str
) -> None:
    with pytest.raises(FrameError) as caught:
        FrameReader(100).feed(stream)
    assert caught.value.code == code and words in caught.value.reason


def test_an_oversized_message_is_refused_from_its_header_alone() -> None:
    header_only = client_frame(BINARY, b"x" * 70000)[:14]
    with pytest.raises(FrameError) as caught:
        FrameReader(65536).feed(header_only)
    assert caught.value.code == 1009


def test_close_payloads() -> None:
    assert parse_close(b"") == (1005, "")
    assert parse_close((4400).to_bytes(2, "big") + "bad ✓".encode()) == (4400, "bad ✓")
    for code in (1000, 1011, 1012, 1013, 1014, 3000, 4999):  # 1012: a client echoing our drain
        assert parse_close(code.to_bytes(2, "big")) == (code, "")
    for bad in (
        b"\x03",
        (999).to_bytes(2, "big"),
        (1005).to_bytes(2, "big"),
        (1015).to_bytes(2, "big"),
        b"\x03\xe8\xff",
    ):
        with pytest.raises(FrameError):
            parse_close(bad)


def test_server_headers_use_the_shortest_length_form() -> None:
    assert frame_header(CLOSE, 2) == b"\x88\x02"
    assert frame_header(BINARY, 126) == b"\x82\x7e\x00\x7e"
    assert frame_header(BINARY, 65536) == b"\x82\x7f" + (65536).to_bytes(8, "big")


def test_a_message_may_come_in_at_most_max_fragments() -> None:
    reader = FrameReader(1 << 20)
    stream = client_frame(BINARY, b"", final=False)
    stream += client_frame(CONTINUATION, b"", final=False) * (MAX_FRAGMENTS - 1)
    assert reader.feed(stream) == []
    with pytest.raises(FrameError, match="fragments") as refused:
        reader.feed(client_frame(CONTINUATION, b""))
    assert refused.value.code == 1009


def test_fragments_are_joined_into_one_message() -> None:
    reader = FrameReader(1 << 20)
    parts = [os.urandom(3) for _ in range(100)]
    stream = client_frame(TEXT, parts[0], final=False)
    stream += b"".join(client_frame(CONTINUATION, p, final=False) for p in parts[1:-1])
    stream += client_frame(CONTINUATION, parts[-1])
    assert reader.feed(stream) == [(TEXT, b"".join(parts))]


def test_a_flood_of_control_frames_is_refused_but_messages_reset_the_count() -> None:
    reader = FrameReader(100)
    pings = client_frame(PING, b"") * MAX_CONTROL_RUN
    assert len(reader.feed(pings + client_frame(BINARY, b"m") + pings)) == 2 * MAX_CONTROL_RUN + 1
    with pytest.raises(FrameError, match="control frames") as refused:
        reader.feed(client_frame(PING, b""))
    assert refused.value.code == 1008


def test_a_large_frame_in_small_reads_is_read_once() -> None:
    payload = os.urandom(300_000)
    stream = client_frame(BINARY, payload) + client_frame(PING, b"after")
    reader = FrameReader(1 << 20)
    got = []
    for start in range(0, len(stream), 8192):
        got += reader.feed(stream[start : start + 8192])
    assert got == [(BINARY, payload), (PING, b"after")]


def test_discarding_drops_data_payloads_and_keeps_control_frames() -> None:
    reader = FrameReader(100)
    reader.discard = True
    stream = client_frame(BINARY, b"x" * 90) + client_frame(CLOSE, b"\x03\xe8")
    got = []
    for start in range(0, len(stream), 7):
        got += reader.feed(stream[start : start + 7])
    assert got == [(CLOSE, b"\x03\xe8")]
    assert not reader._buffer  # nothing of the data frame was kept


def test_the_too_large_refusal_may_name_the_callers_limit() -> None:
    reader = FrameReader(10)
    reader.too_large = (4413, "message larger than 10 bytes before authentication")
    with pytest.raises(FrameError, match="before authentication") as refused:
        reader.feed(client_frame(BINARY, b"x" * 11)[:4])  # the header alone decides
    assert refused.value.code == 4413
