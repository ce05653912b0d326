"""Hostile input into the update path: arbitrary and mutated messages (hypothesis).

Zero unhandled exceptions (only `ProtocolError`, which closes that connection with
4400), and the room keeps serving its other clients. The same `feed` is the
atheris target in tests/fuzz/fuzz_codec.py, for coverage-guided runs on demand.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from ysync.clients import connect, room_url
from ysync.rooms import codec

from fuzz.fuzz_codec import feed
from support import aio
from support.servers import YsyncProcess

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def yjs_updates(draw: st.DrawFn) -> bytes:
    """A real Yjs update: a few edits on text, map and array by some client."""
    doc = Doc(client_id=draw(st.integers(1, 2**32)))
    doc["t"] = text = Text()
    doc["m"] = ymap = Map()
    doc["a"] = array = Array()
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["text", "delete", "map", "array"]))
        if kind == "text":
            text.insert(draw(st.integers(0, len(text))), draw(st.text(min_size=1, max_size=8)))
        elif kind == "delete" and len(text):
            try:
                del text[0 : draw(st.integers(1, len(text)))]
            except BaseException as exc:  # yrs panics on some client-side deletes
                if type(exc).__name__ != "PanicException":
                    raise
                reject()
        elif kind == "map":
            ymap[draw(st.text(max_size=4))] = draw(json_values)
        else:
            array.append(draw(json_values))
    return doc.get_update()


@st.composite
def valid_frames(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["update", "step2", "step1", "awareness", "query", "auth"]))
    if kind == "update":
        return codec.encode_update(draw(yjs_updates()))
    if kind == "step2":
        return codec.encode_sync_step2(draw(yjs_updates()))
    if kind == "step1":
        doc = Doc()
        doc.apply_update(draw(yjs_updates()))
        return codec.encode_sync_step1(doc.get_state())
    if kind == "awareness":
        entries = draw(
            st.lists(
                st.builds(
                    codec.AwarenessEntry,
                    st.integers(0, 2**53 - 1),
                    st.integers(0, 2**53 - 1),
                    json_values.map(json.dumps),
                ),
                max_size=4,
            )
        )
        return codec.encode_awareness(entries)
    if kind == "query":
        return codec.encode_query_awareness()
    return codec.encode_permission_denied(draw(st.text(max_size=20)))


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    """A valid frame, then flipped, truncated, inserted, deleted or spliced bytes."""
    data = bytearray(draw(valid_frames()))
    operations = st.tuples(
        st.sampled_from(["flip", "truncate", "insert", "delete", "splice"]),
        st.integers(0, 10**6),
        st.integers(1, 255),
    )
    for operation, position, value in draw(st.lists(operations, min_size=1, max_size=4)):
        if not data:
            break
        i = position % len(data)
        if operation == "flip":
            data[i] ^= value
        elif operation == "truncate":
            del data[i:]
        elif operation == "insert":
            data.insert(i, value)
        elif operation == "delete":
            del data[i]
        else:
            data[i:] = draw(valid_frames())
    return bytes(data)


hostile_frames = st.one_of(st.binary(max_size=300), mutated_frames(), valid_frames())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(hostile_frames, min_size=1, max_size=8))
def test_hostile_frames_into_a_room_never_raise_and_never_stall_it(frames: list[bytes]) -> None:
    feed(frames)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(hostile_frames, min_size=1, max_size=8))
def test_hostile_frames_with_a_document_size_limit(frames: list[bytes]) -> None:
    feed(frames, max_document_bytes=200)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_protocol_error_only(data: bytes) -> None:
    try:
        message = codec.decode(data)
    except codec.ProtocolError:
        return
    if isinstance(message, codec.AwarenessUpdate):
        # What we accept, we can re-encode into the same message.
        assert codec.decode(codec.encode_awareness(message.entries)) == message


# -- over a real socket --------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YsyncProcess]:
    log = tmp_path_factory.mktemp("fuzz") / "ysync.log"
    with YsyncProcess("--max-document-bytes", "100000", log_path=log) as process:
        yield process


def run(coro: Any) -> Any:
    return aio.run(coro, timeout=30)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.lists(hostile_frames, min_size=1, max_size=6))
def test_hostile_connection_is_closed_cleanly_and_its_room_keeps_serving(
    server: YsyncProcess, frames: list[bytes]
) -> None:
    async def scenario() -> None:
        async with connect(server.ws_url, "fuzzed") as a, connect(server.ws_url, "fuzzed") as b:
            await a.synced()
            await b.synced()
            hostile = await ws_connect(room_url(server.ws_url, "fuzzed"), proxy=None)
            try:
                for frame in frames:
                    await hostile.send(frame)
            except ConnectionClosed:
                pass
            # Our close, if the server did not close first with a code of its own.
            await hostile.close()
            assert hostile.close_code in (1000, 4400, 4413), hostile.close_reason  # never 1011
            # A root name no hostile frame here can create with another type.
            a.doc.get("bystanders", type=Text).insert(0, "x")
            ta, tb = a.doc.get("bystanders", type=Text), b.doc.get("bystanders", type=Text)
            async with asyncio.timeout(5):
                while str(ta) != str(tb):
                    await asyncio.sleep(0.01)

    run(scenario())
    assert server.proc is not None and server.proc.poll() is None
