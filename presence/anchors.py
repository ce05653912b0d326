"""Where a thread is anchored in its room's document, and where that is now.

Pure (the document is a pycrdt `Doc` given by the caller). An anchor is one of:

- `{"kind": "range", "type": "text", "start": B64, "end": B64}`: a range of the root
  Y.Text `type`, as two Yjs relative positions, base64 of what
  `Y.encodeRelativePosition(Y.createRelativePositionFromTypeIndex(ytext, index))`
  gives: they stick to the characters, so concurrent edits move them;
- `{"kind": "element", "type": "elements", "key": "e1"}`: an entry of the root Y.Map
  `type`, or `{"kind": "element", "type": "shapes", "id": "s1", "idKey": "id"}`: the
  map in the root Y.Array `type` whose `idKey` (default "id") is `id`;
- `{"kind": "point", "x": 120, "y": 80}`, optionally `"element": {"type", "key" | "id"}`
  it is relative to;
- `{"kind": "none"}` (or no anchor): the thread is about the whole room.

`resolve_all(anchors, doc)` says where it is now: for ranges the start and end
(UTF-16 code units, as JavaScript strings count) and the quoted text; for
elements their index in an array; `"orphaned": true` once the text or element
is gone.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pycrdt import Array, Doc, Map, StickyIndex, Text

from ysync.presence.comments import CommentError
from ysync.rooms.codec import decode_state_vector
from ysync.rooms.lib0 import ProtocolError, Reader, var_string, var_uint

MAX_POSITION_CHARS = 512  # base64 of a relative position is ~20 characters
MAX_NAME = 256

NONE: dict[str, Any] = {"kind": "none"}


@dataclass(frozen=True, slots=True)
class RelativePosition:
    """A decoded Yjs relative position: an item `(client, clock)`, a root type's name,
    or a nested type's id; and its association (>= 0: after, < 0: before)."""

    item: tuple[int, int] | None = None
    tname: str | None = None
    type_id: tuple[int, int] | None = None
    assoc: int = 0

    def encode(self) -> bytes:
        """The canonical encoding (what yrs decodes), assoc included."""
        if self.item is not None:
            head = var_uint(0) + var_uint(self.item[0]) + var_uint(self.item[1])
        elif self.tname is not None:
            head = var_uint(1) + var_string(self.tname)
        else:
            client, clock = self.type_id or (0, 0)
            head = var_uint(2) + var_uint(client) + var_uint(clock)
        return head + _var_int(self.assoc)


def decode_position(data: bytes) -> RelativePosition:
    """Decode `Y.encodeRelativePosition` output; raise `ProtocolError` if it is not one."""
    reader = Reader(data)
    kind = reader.var_uint("relative position kind")
    if kind == 0:
        position = RelativePosition(item=(reader.var_uint("client"), reader.var_uint("clock")))
    elif kind == 1:
        position = RelativePosition(tname=reader.var_string("type name"))
    elif kind == 2:
        position = RelativePosition(type_id=(reader.var_uint("client"), reader.var_uint("clock")))
    else:
        reader.fail(f"unknown relative position kind {kind}")
    if reader.left:  # Yjs >= 13.5 writes the association; older versions did not
        position = RelativePosition(
            position.item, position.tname, position.type_id, _read_var_int(reader)
        )
    reader.end("relative position")
    return position


def _read_var_int(reader: Reader) -> int:
    """lib0 varInt: 6 bits and a sign in the first byte, then 7 bits a byte."""
    if not reader.left:
        reader.fail("truncated association")
    first = reader.data[reader.pos]
    reader.pos += 1
    value, shift = first & 0x3F, 6
    more = first & 0x80
    while more:
        if not reader.left or shift > 53:
            reader.fail("bad association varint")
        byte = reader.data[reader.pos]
        reader.pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        more = byte & 0x80
    return -value if first & 0x40 else value


def _var_int(value: int) -> bytes:
    sign, magnitude = (0x40, -value) if value < 0 else (0, value)
    out = bytearray([sign | (magnitude & 0x3F) | (0x80 if magnitude > 0x3F else 0)])
    magnitude >>= 6
    while magnitude:
        out.append((magnitude & 0x7F) | (0x80 if magnitude > 0x7F else 0))
        magnitude >>= 7
    return bytes(out)


# -- validation ------------------------------------------------------------------------------


def check_anchor(raw: Any) -> dict[str, Any]:
    """`raw` as a normalized anchor, or raise `CommentError` naming what is wrong."""
    if raw is None:
        return dict(NONE)
    if not isinstance(raw, dict):
        raise CommentError("anchor_invalid", "anchor must be an object with a kind")
    kind = raw.get("kind")
    if kind == "none":
        _only(raw, {"kind"})
        return dict(NONE)
    if kind == "range":
        _only(raw, {"kind", "type", "start", "end"})
        start, end = _position(raw, "start"), _position(raw, "end")
        return {"kind": "range", "type": _name(raw.get("type"), "anchor.type"), **start, **end}
    if kind == "element":
        return {"kind": "element", **_element(raw, "anchor", {"kind"})}
    if kind == "point":
        _only(raw, {"kind", "x", "y", "element"})
        point: dict[str, Any] = {"kind": "point", "x": _number(raw, "x"), "y": _number(raw, "y")}
        if raw.get("element") is not None:
            if not isinstance(raw["element"], dict):
                raise CommentError("anchor_invalid", "anchor.element must be an object")
            point["element"] = _element(raw["element"], "anchor.element", set())
        return point
    raise CommentError("anchor_invalid", "anchor.kind must be range, element, point or none")


def _only(raw: Mapping[str, Any], allowed: set[str], where: str = "anchor") -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise CommentError("anchor_invalid", f"unknown field {unknown[0][:40]!r} in {where}")


def _name(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not 0 < len(raw) <= MAX_NAME:
        raise CommentError("anchor_invalid", f"{where} must be a name of 1-{MAX_NAME} characters")
    return raw


def _number(raw: Mapping[str, Any], key: str) -> float:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CommentError("anchor_invalid", f"anchor.{key} must be a finite number")
    return value


def _position(raw: Mapping[str, Any], key: str) -> dict[str, str]:
    value = raw.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= MAX_POSITION_CHARS:
        raise CommentError("anchor_invalid", f"anchor.{key} must be a base64 Yjs relative position")
    try:
        decode_position(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError) as exc:
        reason = exc.reason if isinstance(exc, ProtocolError) else "not base64"
        raise CommentError(
            "anchor_invalid", f"anchor.{key} is not a Yjs relative position: {reason}"
        ) from None
    return {key: value}


def _element(raw: Mapping[str, Any], where: str, extra: set[str]) -> dict[str, Any]:
    if "key" in raw:
        _only(raw, {"type", "key"} | extra, where)
        return {"type": _name(raw.get("type"), f"{where}.type"), "key": _name(raw["key"], where)}
    _only(raw, {"type", "id", "idKey"} | extra, where)
    element_id = raw.get("id")
    if isinstance(element_id, bool) or not isinstance(element_id, str | int):
        raise CommentError("anchor_invalid", f"{where} needs a key (Y.Map) or an id (Y.Array)")
    return {
        "type": _name(raw.get("type"), f"{where}.type"),
        "id": element_id,
        "idKey": _name(raw.get("idKey", "id"), f"{where}.idKey"),
    }


# -- resolution ------------------------------------------------------------------------------


def resolve_all(anchors: Sequence[Mapping[str, Any]], doc: Doc[Any]) -> list[dict[str, Any]]:
    """Where each anchor is in `doc` now (see the module doc). Works on one copy of
    `doc`: reading a root with a type fixes that type in a document, and ranges
    need the copy's items split at their positions (below)."""
    if not anchors:
        return []
    copy: Doc[Any] = Doc()
    copy.apply_update(doc.get_update())
    clocks = decode_state_vector(copy.get_state())
    marker = _Splitter(copy, clocks)
    for anchor in anchors:
        if anchor.get("kind") == "range":
            for key in ("start", "end"):
                marker.split(decode_position(base64.b64decode(anchor[key])))
    return [_resolve(anchor, copy, clocks) for anchor in anchors]


def _resolve(anchor: Mapping[str, Any], doc: Doc[Any], clocks: Mapping[int, int]) -> dict[str, Any]:
    kind = anchor.get("kind")
    if kind == "range":
        return _resolve_range(anchor, doc, clocks)
    if kind == "element":
        return _resolve_element(anchor, doc)
    if kind == "point" and anchor.get("element") is not None:
        return {"orphaned": _resolve_element(anchor["element"], doc)["orphaned"]}
    return {"orphaned": False}


class _Splitter:
    """Splits a copy's text items right before a position's character.

    yrs miscounts a position inside an item that follows multi-byte characters
    (pycrdt counts UTF-8 bytes; the item's clock counts UTF-16 units), but is exact
    for a position at an item's start. So before resolving, each position's item is
    split there, by integrating a formatting marker between the character before it
    and it: formatting items count for no index, so nothing moves.
    """

    def __init__(self, doc: Doc[Any], clocks: Mapping[int, int]) -> None:
        self.doc = doc
        self.clocks = clocks
        self.client = max(clocks, default=0) + 1  # a client this document never saw
        self.clock = 0

    def split(self, position: RelativePosition) -> None:
        if position.item is None:
            return
        client, clock = position.item
        if clock == 0 or clock >= self.clocks.get(client, 0):
            return  # already an item's start, or an item this document lacks
        struct = (
            bytes([_FORMAT | _HAS_ORIGIN | _HAS_RIGHT_ORIGIN])
            + var_uint(client)
            + var_uint(clock - 1)
            + var_uint(client)
            + var_uint(clock)
            + var_string("ysync-anchor")
            + var_string("null")
        )
        update = var_uint(1) + var_uint(1) + var_uint(self.client) + var_uint(self.clock)
        self.doc.apply_update(update + struct + var_uint(0))  # ... and an empty delete set
        self.clock += 1


# Yjs update v1 item info bits (yjs/src/structs/Item.js).
_FORMAT = 6  # ContentFormat
_HAS_RIGHT_ORIGIN = 0x40
_HAS_ORIGIN = 0x80


def _root(doc: Doc[Any], name: str, kind: type[Any]) -> Any:
    if name not in set(doc.keys()):
        return None
    try:
        return doc.get(name, type=kind)
    except Exception:  # the root holds another type
        return None


def _resolve_range(
    anchor: Mapping[str, Any], doc: Doc[Any], clocks: Mapping[int, int]
) -> dict[str, Any]:
    text = _root(doc, anchor["type"], Text)
    orphaned: dict[str, Any] = {"orphaned": True, "start": None, "end": None, "text": None}
    if text is None:
        return orphaned
    start = _offset(text, anchor["start"], anchor["type"], clocks)
    end = _offset(text, anchor["end"], anchor["type"], clocks)
    if start is None or end is None or end <= start:
        return orphaned
    # pycrdt counts UTF-8 bytes; JavaScript (and so every Yjs client) UTF-16 code units.
    data = str(text).encode("utf-8")
    before = data[:start].decode("utf-8", "ignore")
    quote = data[start:end].decode("utf-8", "ignore")
    first = _utf16(before)
    return {"orphaned": False, "start": first, "end": first + _utf16(quote), "text": quote}


def _offset(text: Text, encoded: str, name: str, clocks: Mapping[int, int]) -> int | None:
    position = decode_position(base64.b64decode(encoded))
    # yrs panics on positions it cannot place: rule those out first.
    if position.item is not None and position.item[1] >= clocks.get(position.item[0], 0):
        return None  # an item this document never had
    if position.type_id is not None or (position.tname is not None and position.tname != name):
        return None  # another type than the range's
    try:
        index: int = StickyIndex.decode(position.encode(), text).get_index()
    except BaseException as exc:  # pyo3 panics are BaseExceptions
        if type(exc).__name__ != "PanicException" and not isinstance(exc, Exception):
            raise
        return None
    return index


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _resolve_element(anchor: Mapping[str, Any], doc: Doc[Any]) -> dict[str, Any]:
    if "key" in anchor:
        root = _root(doc, anchor["type"], Map)
        return {"orphaned": root is None or anchor["key"] not in root}
    array = _root(doc, anchor["type"], Array)
    if array is not None:
        for index, element in enumerate(array):
            if isinstance(element, Map) and element.get(anchor["idKey"]) == anchor["id"]:
                return {"orphaned": False, "index": index}
    return {"orphaned": True, "index": None}
