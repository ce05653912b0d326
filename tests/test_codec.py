"""The y-websocket codec: bytes in, one message out; anything malformed is a `ProtocolError`.

Pure and fast: no sockets, no sleeps. Known byte strings pin the wire format
(lib0 varUints, y-protocols sync/awareness, y-websocket auth); hypothesis
fuzzes `decode` with arbitrary and mutated frames.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import (
    Array,
    Awareness,
    Doc,
    Map,
    Text,
    create_awareness_message,
    create_sync_message,
    create_update_message,
)

from ysync.rooms import codec
from ysync.rooms.codec import (
    Auth,
    AwarenessEntry,
    AwarenessUpdate,
    ProtocolError,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode,
)

MAX_SAFE_INTEGER = 2**53 - 1
MESSAGE_TYPES = (SyncStep1, SyncStep2, SyncUpdate, AwarenessUpdate, QueryAwareness, Auth)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROUND_TRIP = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- helpers (inline: tests run with --import-mode=importlib) ----------------------------------


def raw_awareness(*entries: tuple[int, int, bytes], count: int | None = None) -> bytes:
    """An awareness frame built by hand, so bad states can be put on the wire."""
    payload = codec.var_uint(len(entries) if count is None else count)
    for client_id, clock, state in entries:
        payload += codec.var_uint(client_id) + codec.var_uint(clock) + codec.var_bytes(state)
    return bytes([codec.MESSAGE_AWARENESS]) + codec.var_bytes(payload)


def aw_state(state: str | bytes) -> bytes:
    """A one-entry awareness frame carrying `state` as its (raw) JSON text."""
    return raw_awareness((1, 1, state.encode() if isinstance(state, str) else state))


def encode(message: codec.Message) -> bytes:
    """Encode any decoded message with the codec's own encoders."""
    if isinstance(message, SyncStep1):
        return codec.encode_sync_step1(message.state_vector)
    if isinstance(message, SyncStep2):
        return codec.encode_sync_step2(message.update)
    if isinstance(message, SyncUpdate):
        return codec.encode_update(message.update)
    if isinstance(message, AwarenessUpdate):
        return codec.encode_awareness(message.entries)
    if isinstance(message, QueryAwareness):
        return codec.encode_query_awareness()
    if message.kind == codec.AUTH_PERMISSION_DENIED:
        return codec.encode_permission_denied(message.reason)
    # Other auth kinds decode (y-websocket ignores them) but have no encoder.
    reason = codec.var_bytes(message.reason.encode())
    return bytes([codec.MESSAGE_AUTH]) + codec.var_uint(message.kind) + reason


def decode_or_protocol_error(frame: bytes) -> codec.Message | None:
    """The contract of `decode`: a message, or ProtocolError (with a reason) and nothing else."""
    try:
        message = decode(frame)
    except ProtocolError as exc:
        assert exc.reason
        assert str(exc) == exc.reason
        assert codec.malformed(exc).code == 4400
        return None
    assert isinstance(message, MESSAGE_TYPES)
    return message


def sample_doc() -> Doc:
    """A document edited by two clients: text, a map with nesting, an array, deletions."""
    doc: Doc = Doc(client_id=11)
    text = doc.get("text", type=Text)
    text += "hello wörld ✓"
    doc.get("map", type=Map)["k"] = {"x": [1, 2], "y": "z"}
    doc.get("array", type=Array).extend([1, "two", None])
    del text[0:2]
    other: Doc = Doc(client_id=2**40)
    other.apply_update(doc.get_update())
    other.get("text", type=Text).insert(3, "🙂")
    doc.apply_update(other.get_update(doc.get_state()))
    return doc


SAMPLE = sample_doc()
SAMPLE_UPDATE = SAMPLE.get_update()
SAMPLE_STATE = SAMPLE.get_state()

VALID_FRAMES = [
    codec.encode_sync_step1(b"\x00"),
    codec.encode_sync_step1(SAMPLE_STATE),
    codec.encode_sync_step2(SAMPLE_UPDATE),
    codec.encode_sync_step2(b"\x00\x00"),
    codec.encode_update(SAMPLE_UPDATE),
    codec.encode_awareness(
        [
            AwarenessEntry(1, 0, "{}"),
            AwarenessEntry(2**32, 300, '{"user":{"name":"Zoë","color":"#ff0"},"cursor":[1,2.5]}'),
            AwarenessEntry(MAX_SAFE_INTEGER, MAX_SAFE_INTEGER, "null"),
        ]
    ),
    codec.EMPTY_AWARENESS,
    codec.encode_query_awareness(),
    codec.encode_permission_denied("read-only: document edits not allowed"),
]


# -- lib0 varUint ------------------------------------------------------------------------------

KNOWN_VARUINTS = [
    (0, "00"),
    (1, "01"),
    (127, "7f"),
    (128, "8001"),
    (255, "ff01"),
    (300, "ac02"),
    (16383, "ff7f"),
    (16384, "808001"),
    (2**32, "8080808010"),
    (MAX_SAFE_INTEGER, "ffffffffffffff0f"),
]


@pytest.mark.parametrize(("value", "hex_bytes"), KNOWN_VARUINTS)
def test_var_uint_matches_lib0(value: int, hex_bytes: str) -> None:
    assert codec.var_uint(value).hex() == hex_bytes


@pytest.mark.parametrize(("value", "hex_bytes"), KNOWN_VARUINTS)
def test_var_uint_decodes_lib0_bytes(value: int, hex_bytes: str) -> None:
    raw = bytes.fromhex(hex_bytes)
    payload = b"\x01" + raw + raw + codec.var_bytes(b"{}")  # client id and clock
    frame = b"\x01" + codec.var_bytes(payload)
    assert decode(frame) == AwarenessUpdate((AwarenessEntry(value, value, "{}"),))


def test_var_uint_agrees_with_pycrdt() -> None:
    from pycrdt import write_var_uint

    for value in [0, 1, 127, 128, 129, 300, 2**14, 2**21 - 1, 2**35 + 7, MAX_SAFE_INTEGER]:
        assert codec.var_uint(value) == write_var_uint(value)


@given(st.integers(min_value=0, max_value=MAX_SAFE_INTEGER))
@ROUND_TRIP
def test_var_uint_shape_and_round_trip(value: int) -> None:
    raw = codec.var_uint(value)
    assert 1 <= len(raw) <= 8
    assert all(byte >= 0x80 for byte in raw[:-1])
    assert raw[-1] < 0x80
    entry = AwarenessEntry(value, value, "1")
    assert decode(codec.encode_awareness([entry])) == AwarenessUpdate((entry,))


def test_var_bytes_prefixes_the_length() -> None:
    assert codec.var_bytes(b"") == b"\x00"
    assert codec.var_bytes(b"abc") == b"\x03abc"
    assert codec.var_bytes(b"x" * 200)[:2] == bytes.fromhex("c801")


# -- known frames ------------------------------------------------------------------------------


def test_known_frames() -> None:
    assert codec.encode_sync_step1(b"\x00") == b"\x00\x00\x01\x00"
    assert codec.encode_sync_step2(b"\x00\x00") == b"\x00\x01\x02\x00\x00"
    assert codec.encode_update(b"\x00\x00") == b"\x00\x02\x02\x00\x00"
    assert codec.encode_query_awareness() == b"\x03"
    assert codec.encode_permission_denied("no") == b"\x02\x00\x02no"
    assert codec.EMPTY_AWARENESS == b"\x01\x01\x00"
    assert codec.encode_awareness([AwarenessEntry(1, 2, "{}")]) == bytes.fromhex("0106010102027b7d")
    assert codec.encode_awareness([AwarenessEntry(5, 3, "null")]) == bytes.fromhex(
        "0108010503046e756c6c"
    )


def test_empty_awareness_is_a_valid_no_op() -> None:
    assert decode(codec.EMPTY_AWARENESS) == AwarenessUpdate(())


def test_frames_agree_with_pycrdt_sync_helpers() -> None:
    assert create_sync_message(SAMPLE) == codec.encode_sync_step1(SAMPLE_STATE)
    assert create_update_message(SAMPLE_UPDATE) == codec.encode_update(SAMPLE_UPDATE)
    assert decode(create_sync_message(SAMPLE)) == SyncStep1(SAMPLE_STATE)


def test_decodes_pycrdt_awareness_messages() -> None:
    awareness = Awareness(Doc(client_id=42))
    awareness.set_local_state({"user": {"name": "ada"}, "cursor": None})
    frame = create_awareness_message(awareness.encode_awareness_update([42]))
    (entry,) = decode(frame).entries  # type: ignore[union-attr]
    assert (entry.client_id, entry.clock) == (42, 1)
    assert json.loads(entry.state) == {"user": {"name": "ada"}, "cursor": None}
    assert not entry.removed


def test_removed_entry() -> None:
    assert AwarenessEntry(1, 1, "null").removed
    assert not AwarenessEntry(1, 1, "{}").removed
    assert not AwarenessEntry(1, 1, '"null"').removed


def test_whitespace_around_null_is_a_removal() -> None:
    # JSON.parse(" null ") === null: a JS client treats this as a removal, so must we.
    (entry,) = decode(aw_state(" null\n")).entries  # type: ignore[union-attr]
    assert entry.removed


# -- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        SyncStep1(b"\x00"),
        SyncStep1(SAMPLE_STATE),
        SyncStep1(b"\x02" + codec.var_uint(MAX_SAFE_INTEGER) + b"\x05\x00\x00"),
        SyncStep2(SAMPLE_UPDATE),
        SyncStep2(b"\x00\x00"),
        SyncStep2(b""),
        SyncUpdate(SAMPLE_UPDATE),
        SyncUpdate(b"\x00\x00"),
        AwarenessUpdate(()),
        AwarenessUpdate((AwarenessEntry(7, 0, "{}"),)),
        AwarenessUpdate(
            (
                AwarenessEntry(1, 5, '{"name":"Zoë 🙂","pos":{"anchor":1,"head":[2,3]}}'),
                AwarenessEntry(2, 9, "null"),
                AwarenessEntry(MAX_SAFE_INTEGER, MAX_SAFE_INTEGER, '"s"'),
                AwarenessEntry(3, 1, "[true,false,null,-1.5e-7]"),
            )
        ),
        QueryAwareness(),
        Auth(codec.AUTH_PERMISSION_DENIED, ""),
        Auth(codec.AUTH_PERMISSION_DENIED, "read-only: no edits ✋"),
    ],
    ids=repr,
)
def test_round_trip(message: codec.Message) -> None:
    frame = encode(message)
    assert decode(frame) == message
    assert encode(decode(frame)) == frame


def test_sync_step2_from_pycrdt_rebuilds_the_document() -> None:
    message = decode(codec.encode_sync_step2(SAMPLE.get_update(b"\x00")))
    assert isinstance(message, SyncStep2)
    doc: Doc = Doc()
    doc.apply_update(message.update)
    assert str(doc.get("text", type=Text)) == str(SAMPLE.get("text", type=Text))
    assert doc.get("map", type=Map).to_py() == {"k": {"x": [1.0, 2.0], "y": "z"}}


@pytest.mark.parametrize("size", [127, 128, 16384, 5 * 1024 * 1024])
def test_large_payloads(size: int) -> None:
    # Documents are synced in one message: frames of several MB must decode.
    update = bytes(range(256)) * (size // 256) + b"\x01" * (size % 256)
    assert decode(codec.encode_sync_step2(update)) == SyncStep2(update)
    state = json.dumps({"blob": "x" * size})
    entry = AwarenessEntry(1, 1, state)
    assert decode(codec.encode_awareness([entry])) == AwarenessUpdate((entry,))


def test_decode_accepts_sync_payload_types_as_bytes() -> None:
    message = decode(codec.encode_update(SAMPLE_UPDATE))
    assert isinstance(message, SyncUpdate)
    assert type(message.update) is bytes


# -- bad input: one ProtocolError with a reason ------------------------------------------------

BAD_FRAMES = [
    # (id, frame, part of the reason)
    ("empty frame", b"", "truncated message type"),
    ("truncated varint", b"\x80", "truncated message type"),
    ("truncated long varint", b"\xff\xff\xff", "truncated message type"),
    ("varint is 2**53", b"\x80" * 7 + b"\x10", "larger than 2**53"),
    ("varint is 2**56-1", b"\xff" * 7 + b"\x7f", "larger than 2**53"),
    ("varint of 9 bytes", b"\x80" * 8 + b"\x00", "longer than 8 bytes"),
    ("varint of 9 bytes, small value", b"\x81" + b"\x80" * 7 + b"\x00", "longer than 8 bytes"),
    ("unknown message type 4", b"\x04", "unknown message type 4"),
    ("unknown message type 127", b"\x7f\x00", "unknown message type 127"),
    ("unknown message type 300", b"\xac\x02", "unknown message type 300"),
    ("sync without subtype", b"\x00", "truncated sync message type"),
    ("sync without payload", b"\x00\x02", "truncated sync payload length"),
    ("sync truncated length", b"\x00\x02\x80", "truncated sync payload length"),
    ("sync length > data", b"\x00\x02\x05ab", "sync payload length 5 exceeds the 2 bytes left"),
    ("sync huge length", b"\x00\x01" + b"\xff" * 7 + b"\x0f", "exceeds"),
    ("unknown sync subtype", b"\x00\x03\x00", "unknown sync message type 3"),
    ("unknown sync subtype 128", b"\x00\x80\x01\x00", "unknown sync message type 128"),
    ("sync trailing bytes", codec.encode_update(b"\x00\x00") + b"\x00", "trailing"),
    ("sync step2 trailing bytes", codec.encode_sync_step2(b"\x00\x00") + b"xy", "2 unexpected"),
    ("query-awareness trailing bytes", b"\x03\x00", "trailing bytes after query-awareness"),
    ("awareness without payload", b"\x01", "truncated awareness payload length"),
    ("awareness length > data", b"\x01\x09\x01", "exceeds"),
    ("awareness trailing bytes", codec.EMPTY_AWARENESS + b"\x00", "after awareness message"),
    ("awareness payload trailing", b"\x01\x02\x00\x00", "after awareness update"),
    ("awareness empty payload", b"\x01\x00", "truncated awareness entry count"),
    ("awareness count too large", b"\x01\x06" + b"\xff" * 5 + b"\x0f", "claims"),
    ("awareness count beyond entries", raw_awareness((1, 1, b"{}"), count=2), "truncated"),
    ("awareness truncated client id", b"\x01\x02\x01\x80", "truncated awareness client id"),
    ("awareness truncated clock", b"\x01\x02\x01\x01", "truncated awareness clock"),
    ("awareness client id > 2**53", raw_awareness((2**53, 1, b"{}")), "larger than 2**53"),
    ("awareness clock > 2**53", raw_awareness((1, 2**55, b"{}")), "larger than 2**53"),
    ("awareness state length > data", b"\x01\x04\x01\x01\x01\x09", "exceeds"),
    ("invalid UTF-8", aw_state(b"\xff"), "not valid UTF-8"),
    ("UTF-8 surrogate", aw_state(b'"\xed\xa0\x80"'), "not valid UTF-8"),
    ("overlong UTF-8", aw_state(b'"\xc0\xaf"'), "not valid UTF-8"),
    ("truncated UTF-8", aw_state(b'"\xe2\x9c"'), "not valid UTF-8"),
    ("empty state", aw_state(""), "not valid JSON"),
    ("non-JSON state", aw_state("{"), "not valid JSON"),
    ("undefined", aw_state("undefined"), "not valid JSON"),
    ("single quotes", aw_state("{'a': 1}"), "not valid JSON"),
    ("trailing comma", aw_state("[1,]"), "not valid JSON"),
    ("two values", aw_state("{} {}"), "not valid JSON"),
    ("raw control character", aw_state('"a\nb"'), "not valid JSON"),
    ("NaN", aw_state("NaN"), "not valid JSON"),
    ("nested NaN", aw_state('{"x": [1, NaN]}'), "not valid JSON"),
    ("Infinity", aw_state("Infinity"), "not valid JSON"),
    ("-Infinity", aw_state('{"a": -Infinity}'), "not valid JSON"),
    ("deeply nested arrays", aw_state("[" * 100_000), "not valid JSON"),
    ("deeply nested closed arrays", aw_state("[" * 50_000 + "]" * 50_000), "not valid JSON"),
    ("deeply nested objects", aw_state('{"a":' * 50_000 + "1" + "}" * 50_000), "not valid JSON"),
    ("bad second entry", raw_awareness((1, 1, b"{}"), (2, 1, b"nope")), "not valid JSON"),
    ("SyncStep1 empty state vector", codec.encode_sync_step1(b""), "truncated state vector size"),
    ("SyncStep1 missing clock", codec.encode_sync_step1(b"\x01\x05"), "truncated state vector"),
    ("SyncStep1 truncated id", codec.encode_sync_step1(b"\x01\x80"), "truncated state vector"),
    ("SyncStep1 trailing", codec.encode_sync_step1(b"\x00\x00"), "after state vector"),
    ("SyncStep1 count too large", codec.encode_sync_step1(b"\x7f\x01\x01"), "claims 127"),
    (
        "SyncStep1 client id > 2**53",
        codec.encode_sync_step1(b"\x01" + b"\xff" * 7 + b"\x7f" + b"\x01"),
        "larger than 2**53",
    ),
    (
        "SyncStep1 clock varint too long",
        codec.encode_sync_step1(b"\x01\x01" + b"\x80" * 8 + b"\x00"),
        "longer than 8 bytes",
    ),
    ("SyncStep1 is an update", codec.encode_sync_step1(SAMPLE_UPDATE), "state vector"),
    ("auth without subtype", b"\x02", "truncated auth message type"),
    ("auth without reason", b"\x02\x00", "truncated auth reason length"),
    ("auth reason not UTF-8", b"\x02\x00\x01\xff", "auth reason is not valid UTF-8"),
    ("auth trailing", codec.encode_permission_denied("x") + b"\x00", "after auth message"),
]


@pytest.mark.parametrize(
    ("frame", "reason"), [case[1:] for case in BAD_FRAMES], ids=[case[0] for case in BAD_FRAMES]
)
def test_bad_frames_raise_protocol_error(frame: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode(frame)
    assert reason in info.value.reason
    assert str(info.value) == info.value.reason
    assert codec.malformed(info.value).code == 4400


def test_protocol_error_is_a_value_error() -> None:
    # Callers that guard with `except ValueError` still catch it.
    assert issubclass(ProtocolError, ValueError)


def test_reason_says_where() -> None:
    with pytest.raises(ProtocolError, match=r"at byte 3$"):
        decode(b"\x00\x02\x05ab")


def test_decode_awareness_alone() -> None:
    assert codec.decode_awareness(b"\x00") == AwarenessUpdate(())
    with pytest.raises(ProtocolError, match="not valid JSON"):
        codec.decode_awareness(b"\x01\x01\x01\x03NaN")


def test_check_state_vector() -> None:
    codec.check_state_vector(b"\x00")
    codec.check_state_vector(SAMPLE_STATE)
    with pytest.raises(ProtocolError):
        codec.check_state_vector(b"\x01\x01")


@pytest.mark.parametrize("frame", VALID_FRAMES, ids=range(len(VALID_FRAMES)))
def test_every_strict_prefix_of_a_valid_frame_is_rejected(frame: bytes) -> None:
    for end in range(len(frame)):
        with pytest.raises(ProtocolError):
            decode(frame[:end])


@pytest.mark.parametrize("frame", VALID_FRAMES, ids=range(len(VALID_FRAMES)))
def test_trailing_bytes_after_any_valid_frame_are_rejected(frame: bytes) -> None:
    # One message per frame: the JS provider would silently ignore the rest.
    for extra in (b"\x00", b"\x03", frame):
        with pytest.raises(ProtocolError, match="trailing"):
            decode(frame + extra)


# -- fuzzing -----------------------------------------------------------------------------------


@given(st.binary(max_size=64))
@FUZZ
def test_any_bytes_decode_or_raise_protocol_error(frame: bytes) -> None:
    message = decode_or_protocol_error(frame)
    if message is not None:
        # Whatever decodes re-encodes to something that decodes to the same message.
        assert decode(encode(message)) == message


@given(st.sampled_from([0, 1, 2, 3]), st.binary(max_size=64))
@FUZZ
def test_any_payload_after_a_known_type_decodes_or_raises_protocol_error(
    kind: int, payload: bytes
) -> None:
    message = decode_or_protocol_error(bytes([kind]) + payload)
    if message is not None:
        assert decode(encode(message)) == message


@given(st.sampled_from([0, 1, 2]), st.binary(max_size=48))
@FUZZ
def test_any_length_prefixed_sync_payload_decodes_or_raises(subtype: int, payload: bytes) -> None:
    message = decode_or_protocol_error(bytes([0, subtype]) + codec.var_bytes(payload))
    if subtype != codec.SYNC_STEP1:
        assert message in (SyncStep2(payload), SyncUpdate(payload))


@given(st.binary(max_size=48))
@FUZZ
def test_any_awareness_payload_decodes_or_raises(payload: bytes) -> None:
    decode_or_protocol_error(b"\x01" + codec.var_bytes(payload))


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    frame = bytearray(draw(st.sampled_from(VALID_FRAMES)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "append"]))
        pos = draw(st.integers(min_value=0, max_value=max(len(frame) - 1, 0)))
        if op == "flip" and frame:
            frame[pos] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif op == "set" and frame:
            frame[pos] = draw(st.integers(min_value=0, max_value=255))
        elif op == "insert":
            frame[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete" and frame:
            del frame[pos : pos + draw(st.integers(min_value=1, max_value=3))]
        elif op == "truncate":
            del frame[pos:]
        elif op == "append":
            frame += draw(st.binary(min_size=1, max_size=4))
    return bytes(frame)


@given(mutated_frames())
@FUZZ
def test_mutated_valid_frames_decode_or_raise_protocol_error(frame: bytes) -> None:
    message = decode_or_protocol_error(frame)
    if message is not None:
        assert decode(encode(message)) == message


# -- generated round trips ---------------------------------------------------------------------

client_ids = st.integers(min_value=0, max_value=MAX_SAFE_INTEGER)

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=16,
)


@st.composite
def awareness_entries(draw: st.DrawFn) -> AwarenessEntry:
    value = draw(json_values)
    state = json.dumps(
        value,
        ensure_ascii=draw(st.booleans()),
        separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])),
    )
    return AwarenessEntry(draw(client_ids), draw(client_ids), state)


@given(st.lists(awareness_entries(), max_size=6))
@ROUND_TRIP
def test_awareness_round_trip(entries: list[AwarenessEntry]) -> None:
    frame = codec.encode_awareness(entries)
    message = decode(frame)
    assert message == AwarenessUpdate(tuple(entries))
    assert codec.encode_awareness(message.entries) == frame  # type: ignore[union-attr]
    for entry in message.entries:  # type: ignore[union-attr]
        assert entry.removed == (json.loads(entry.state) is None)


@given(st.lists(st.tuples(client_ids, client_ids), max_size=8))
@ROUND_TRIP
def test_sync_step1_round_trip(pairs: list[tuple[int, int]]) -> None:
    state_vector = codec.var_uint(len(pairs)) + b"".join(
        codec.var_uint(client) + codec.var_uint(clock) for client, clock in pairs
    )
    frame = codec.encode_sync_step1(state_vector)
    assert decode(frame) == SyncStep1(state_vector)


@given(st.sampled_from([SyncStep2, SyncUpdate]), st.binary(max_size=600))
@ROUND_TRIP
def test_sync_update_round_trip(kind: type[SyncStep2 | SyncUpdate], update: bytes) -> None:
    message = kind(update)
    assert decode(encode(message)) == message


@given(st.text(max_size=40))
@ROUND_TRIP
def test_permission_denied_round_trip(reason: str) -> None:
    assert decode(codec.encode_permission_denied(reason)) == Auth(0, reason)


@given(
    st.lists(
        st.tuples(st.sampled_from(["text", "map", "array"]), st.text(min_size=1, max_size=5)),
        min_size=1,
        max_size=6,
    )
)
@settings(max_examples=40, deadline=None)
def test_real_updates_and_state_vectors_round_trip(edits: list[tuple[str, str]]) -> None:
    doc: Doc = Doc()
    for kind, value in edits:
        if kind == "text":
            doc.get("text", type=Text).insert(0, value)
        elif kind == "map":
            doc.get("map", type=Map)[value] = value
        else:
            doc.get("array", type=Array).append(value)
    update, state = doc.get_update(), doc.get_state()
    assert decode(codec.encode_update(update)) == SyncUpdate(update)
    assert decode(codec.encode_sync_step2(update)) == SyncStep2(update)
    assert decode(codec.encode_sync_step1(state)) == SyncStep1(state)


def test_state_vectors_are_bounded_and_checked_without_a_python_loop() -> None:
    many = (
        codec.var_uint(codec.MAX_STATE_VECTOR_ENTRIES)
        + b"\x01\x01" * codec.MAX_STATE_VECTOR_ENTRIES
    )
    codec.check_state_vector(many)
    over = codec.var_uint(codec.MAX_STATE_VECTOR_ENTRIES + 1) + b"\x01\x01" * (
        codec.MAX_STATE_VECTOR_ENTRIES + 1
    )
    with pytest.raises(codec.ProtocolError, match="over 100000"):
        codec.decode(codec.encode_sync_step1(over))
    with pytest.raises(codec.ProtocolError, match="truncated"):
        codec.check_state_vector(b"\x02\x01\x01\x01")
