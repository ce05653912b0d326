"""rooms/structure.py: nesting and pending bounds, as bytes in → refusal or not."""

from __future__ import annotations

from typing import Any

import pytest
from pycrdt import Array, Doc, Map, Text

from ysync.rooms import codec
from ysync.rooms.lib0 import var_string, var_uint
from ysync.rooms.room import Room, RoomConfig, Source
from ysync.rooms.structure import StructureIndex, read_update, repair

from fuzz.poison import deep_any, deep_maps, deep_maps_delete

SERVER = Source.SERVER


def _room(depth: int = 8, **config: Any) -> Room:
    return Room("r", RoomConfig(max_nesting_depth=depth, **config))


def _nested_json(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = {"k": value} if i % 2 else [value]
    return value


def test_json_content_nested_to_the_limit_is_applied_one_more_is_refused() -> None:
    for depth, ok in ((8, True), (9, False)):
        doc = Doc()
        doc.get("a", type=Array).append(_nested_json(depth))
        room = _room()
        if ok:
            room.apply_update(doc.get_update(), SERVER)
            assert room.doc.get("a", type=Array).to_py() == [_nested_json(depth)]
        else:
            with pytest.raises(codec.ProtocolError, match="nests deeper than 8"):
                room.apply_update(doc.get_update(), SERVER)
            assert room.doc.get_state() == b"\x00"  # nothing applied


def test_types_nested_through_array_neighbours_are_counted() -> None:
    # Each new map is inserted after an item of the deepest array: its parent is
    # only known through its left neighbour (origin), which lives in the room.
    src = Doc()
    room = _room(depth=6)
    level = src.get("a", type=Array)
    level.append(0)
    room.apply_update(src.get_update(), SERVER)
    refused = None
    for step in range(10):
        before = src.get_state()
        child: Array[Any] = Array()
        level.append(child)
        child.append(step)
        level = child
        try:
            room.apply_update(src.get_update(before), SERVER)
        except codec.ProtocolError as exc:
            refused = (step, exc.reason)
            break
    assert refused is not None and refused[0] == 6, refused


def test_direct_edits_on_the_document_are_counted_too() -> None:
    room = _room(depth=4)
    level = room.doc.get("m", type=Map)
    for _ in range(4):  # the host app builds 4 levels itself
        child: Map[Any] = Map()
        level["k"] = child
        level = child
    # A client update hanging one more map inside the deepest one.
    peer_doc = Doc()
    peer_doc.apply_update(room.doc.get_update())
    deepest = peer_doc.get("m", type=Map)
    for _ in range(3):
        deepest = deepest["k"]
    before = peer_doc.get_state()
    deepest["k"]["x"] = Map()
    with pytest.raises(codec.ProtocolError, match="nest deeper than 4"):
        room.apply_update(peer_doc.get_update(before), SERVER)


def test_a_pending_chain_is_checked_when_its_gap_is_filled() -> None:
    update = deep_maps(20)
    structs = read_update(update, 100)
    assert len(structs) == 20
    # The same chain as two updates, the deep half first: it waits (pending),
    # then the filler brings it in, and that is what gets refused.
    room = _room(depth=12)
    tail = _slice(update, 10)
    room.apply_update(tail, SERVER)
    assert room.structure.pending_count == 10
    with pytest.raises(codec.ProtocolError, match="nest deeper than 12"):
        room.apply_update(_slice(update, 0, 10), SERVER)


def _slice(update: bytes, start: int, stop: int | None = None) -> bytes:
    """Structs [start, stop) of a one-client `deep_maps` update, as an update."""
    structs = read_update(update, 1 << 30)[start:stop]
    body = b"".join(update[s.offset : s.offset + s.size] for s in structs)
    client, clock = structs[0].client, structs[0].clock
    return b"\x01" + var_uint(len(structs)) + var_uint(client) + var_uint(clock) + body + b"\x00"


def _gapped(clock: int, text: str) -> bytes:
    item = b"\x04" + var_uint(1) + var_string("t") + var_string(text)
    return b"\x01\x01" + var_uint(5) + var_uint(clock) + item + b"\x00"


def test_pending_structs_are_bounded_in_count_and_bytes() -> None:
    room = _room(max_gap_structs=3, max_gap_bytes=1000)
    for i in range(3):
        room.apply_update(_gapped(10 + i * 10, "x"), SERVER)
    assert room.structure.pending_count == 3
    with pytest.raises(codec.ProtocolError, match="max_gap_structs"):
        room.apply_update(_gapped(100, "x"), SERVER)
    room = _room(max_gap_bytes=1000)
    with pytest.raises(codec.ProtocolError, match="max_gap_bytes"):
        room.apply_update(_gapped(10, "x" * 1000), SERVER)
    # Filling the gap integrates what waited and forgets it.
    room.apply_update(_gapped(1, "a" * 9), SERVER)
    assert room.structure.pending_count == 1
    room.apply_update(_gapped(0, "b"), SERVER)
    assert room.structure.pending_count == 0
    assert str(room.doc.get("t", type=Text)) == "baaaaaaaaa"


def test_ordinary_documents_pass_unchanged() -> None:
    src = Doc()
    text, ymap = src.get("t", type=Text), src.get("m", type=Map)
    for i in range(50):
        text.insert(len(text) // 2, f"w{i} ")
        ymap[f"k{i % 5}"] = {"n": i, "l": [i, "é", None, True, 1.5]}
        if i % 10 == 0:
            del text[0:2]
    ymap["nested"] = Map({"inner": Text("x")})
    room = _room()
    room.apply_update(src.get_update(), SERVER)
    assert room.doc.get("t", type=Text).to_py() == text.to_py()
    assert StructureIndex(8).scan(src.get_update()).pending_count == 0


def test_repair_replaces_only_what_is_too_deep() -> None:
    kept = Doc()
    kept.get("t", type=Text).insert(0, "kept")
    stored = [kept.get_update(), deep_maps(300, client=9), deep_any(300, client=11)]
    fixed, replaced = repair(stored, 256)
    assert replaced == 44 + 1  # maps 257..300, and the one deep JSON item
    room = Room("r")
    room.load([*fixed, deep_maps_delete(client=9)])
    assert str(room.doc.get("t", type=Text)) == "kept"


def test_a_client_whose_update_would_overflow_the_pending_bound_gets_4503() -> None:
    from fuzz.fuzz_codec import _Peer

    room = _room(max_gap_structs=1)
    peer = _Peer()
    room.join(peer)
    room.receive(peer, codec.SyncUpdate(_gapped(10, "x")), now=0.0)
    assert peer.closed is None
    room.receive(peer, codec.SyncUpdate(_gapped(20, "y")), now=0.0)
    assert peer.closed is not None and peer.closed[0] == 4503
    assert "max_gap_structs" in peer.closed[1]


def test_client_edits_stop_at_max_document_items() -> None:
    from fuzz.fuzz_codec import _Peer

    room = _room(max_document_items=3)
    peer = _Peer()
    room.join(peer)
    src = Doc()
    text = src.get("t", type=Text)
    for i in range(4):  # four separate items (each inserted at the start)
        before = src.get_state()
        text.insert(0, str(i))
        room.receive(peer, codec.SyncUpdate(src.get_update(before)), now=0.0)
    assert room.structure.items == 3
    assert peer.closed is not None and peer.closed[0] == 4413
    assert "max_document_items" in peer.closed[1]
