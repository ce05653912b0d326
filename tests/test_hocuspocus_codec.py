"""The Hocuspocus codec (rooms/hocuspocus.py): bytes in, typed messages out, and back.

Known frames are written out from the provider's and server's sources
(`@hocuspocus/provider` OutgoingMessages/, `@hocuspocus/server` OutgoingMessage.ts);
hypothesis checks round trips and that any bytes decode or raise `ProtocolError`.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Text

from ysync.rooms import codec, hocuspocus
from ysync.rooms.hocuspocus import ProtocolError
from ysync.rooms.lib0 import var_string
from ysync.rooms.vocabulary import HocuspocusType

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize(
    ("frame", "address", "message"),
    [
        # AuthenticationMessage: documentName, Auth, Token, token [, version (v4)]
        (b"\x01d\x02\x00\x03abc", "d", hocuspocus.AuthToken("abc")),
        (b"\x01d\x02\x00\x00\x054.8.0", "d", hocuspocus.AuthToken("", "4.8.0")),
        # server: writeTokenSyncRequest, writePermissionDenied, writeAuthenticated
        (b"\x01d\x02\x00", "d", hocuspocus.TokenRequest()),
        (b"\x01d\x02\x01\x02no", "d", hocuspocus.PermissionDenied("no")),
        (b"\x01d\x02\x02\x08readonly", "d", hocuspocus.Authenticated(read_only=True)),
        (b"\x01d\x02\x02\x0aread-write", "d", hocuspocus.Authenticated(read_only=False)),
        (b"\x01d\x00\x00\x01\x00", "d", codec.SyncStep1(b"\x00")),
        (b"\x01d\x04\x01\x02\x00\x00", "d", hocuspocus.SyncReply(codec.SyncStep2(b"\x00\x00"))),
        (b"\x01d\x01\x01\x00", "d", codec.AwarenessUpdate(())),
        (b"\x01d\x03", "d", codec.QueryAwareness()),
        (b"\x01d\x05\x02hi", "d", hocuspocus.Stateless("hi")),
        (b"\x01d\x06\x02hi", "d", hocuspocus.BroadcastStateless("hi")),
        (b"\x01d\x07", "d", hocuspocus.Close()),  # the provider's CloseMessage: no reason
        (b"\x01d\x07\x03bye", "d", hocuspocus.Close("bye")),
        (b"\x01d\x08\x01", "d", hocuspocus.SyncStatus(applied=True)),
        (b"\x01d\x08\x00", "d", hocuspocus.SyncStatus(applied=False)),
        (b"\x09", None, hocuspocus.Ping()),
        (b"\x0a", None, hocuspocus.Pong()),
        (b"\x03d\x00s\x03", "d\x00s", codec.QueryAwareness()),  # v4 session address
    ],
)
def test_known_frames(frame: bytes, address: str | None, message: hocuspocus.Message) -> None:
    assert hocuspocus.decode(frame) == (address, message)
    if not (isinstance(message, hocuspocus.Close) and not message.reason):
        assert hocuspocus.encode(address, message) == frame


def test_sync_and_awareness_bodies_are_y_websocket_messages() -> None:
    doc = Doc()
    doc["t"] = Text("hi")
    update = doc.get_update()
    for message in (codec.SyncUpdate(update), codec.SyncStep2(update)):
        frame = hocuspocus.encode("room/a", message)
        address, offset = hocuspocus.read_address(frame)
        assert address == "room/a" and frame[offset:] == codec.encode(message)


def test_the_document_of_an_address() -> None:
    assert hocuspocus.document_name("notes") == "notes"
    assert hocuspocus.document_name("notes\0abc123") == "notes"


def test_unknown_types_decode_as_unknown_whatever_follows() -> None:
    assert hocuspocus.decode(b"\x01d\x2a\xff\xff") == ("d", hocuspocus.Unknown(42))
    # Pong (10) with an address is just a type this server has no handler for.
    assert hocuspocus.decode(b"\x01d\x0a") == ("d", hocuspocus.Unknown(10))


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"", "truncated document address"),
        (b"\x05ab", "exceeds"),
        (b"\x01d", "truncated message type"),
        (b"\x01\xff\x00", "not valid UTF-8"),
        (b"\x01d\x02\x07", "unknown auth message type 7"),
        (b"\x01d\x02\x02\x03rw!", "unknown authorized scope"),
        (b"\x01d\x05\x09hi", "exceeds"),
        (b"\x01d\x08\x02", "neither 0 nor 1"),
        (b"\x01d\x08\x01\x00", "trailing"),
        (b"\x01d\x00\x07\x00", "unknown sync message type 7"),
        (b"\x01d\x04\x05\x00", "unknown sync message type 5"),
    ],
)
def test_bad_frames_raise_protocol_error(frame: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        hocuspocus.decode(frame)


def test_server_only_messages_need_an_address_and_y_websocket_auth_has_no_encoding() -> None:
    with pytest.raises(ValueError, match="address"):
        hocuspocus.encode(None, hocuspocus.SyncStatus(True))
    with pytest.raises(ValueError, match="no Hocuspocus encoding"):
        hocuspocus.encode_body(codec.permission_denied("read-only"))


texts = st.text(max_size=20)
messages = st.one_of(
    st.builds(hocuspocus.AuthToken, texts, st.none() | texts),
    st.builds(hocuspocus.PermissionDenied, texts),
    st.builds(hocuspocus.Authenticated, st.booleans()),
    st.builds(hocuspocus.Stateless, texts),
    st.builds(hocuspocus.BroadcastStateless, texts),
    st.builds(hocuspocus.Close, texts.filter(bool)),
    st.builds(hocuspocus.SyncStatus, st.booleans()),
    st.just(hocuspocus.TokenRequest()),
    st.builds(codec.SyncStep1, st.just(b"\x00")),
    st.builds(codec.SyncUpdate, st.binary(max_size=30)),
    st.builds(hocuspocus.SyncReply, st.builds(codec.SyncStep2, st.binary(max_size=30))),
)


@given(texts, messages)
@FAST
def test_round_trip(address: str, message: hocuspocus.Message) -> None:
    assert hocuspocus.decode(hocuspocus.encode(address, message)) == (address, message)


@given(st.binary(max_size=64))
@FAST
def test_any_bytes_decode_or_raise_protocol_error(frame: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        hocuspocus.decode(frame)


@given(texts, st.sampled_from(list(HocuspocusType)), st.binary(max_size=48))
@FAST
def test_any_payload_after_a_known_type_decodes_or_raises_protocol_error(
    address: str, kind: int, payload: bytes
) -> None:
    with contextlib.suppress(ProtocolError):
        hocuspocus.decode(var_string(address) + bytes((kind,)) + payload)


@given(st.lists(st.binary(max_size=40), max_size=8))
@FAST
def test_fuzz_target_invariants_hold(frames: list[bytes]) -> None:
    from fuzz.fuzz_hocuspocus import feed

    feed(frames)


def test_fuzz_target_runs_on_well_formed_frames() -> None:
    from fuzz.fuzz_hocuspocus import feed

    feed([b"\x01d\x05\x02hi", b"\x01d\x00\x00\x01\x00", b"\x02zz\x08\x01"])
