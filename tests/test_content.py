"""rooms.content: the document as plain JSON (`ysync doc get`) and JSON applied with minimal edits."""

from __future__ import annotations

from typing import Any

import pytest
from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from ysync.rooms.content import apply_json, describe, doc_to_json, root_kinds


def client_doc() -> Doc[Any]:
    """A document as a server sees one a client wrote: roots untyped until read."""
    source: Doc[Any] = Doc()
    source.get("t", type=Text).insert(0, "hello")
    source.get("m", type=Map)["k"] = 1.0
    source.get("a", type=Array).append(2)
    source.get("x", type=XmlFragment).children.append(XmlElement("p", {}, [XmlText("hi")]))
    doc: Doc[Any] = Doc()
    doc.apply_update(source.get_update())
    return doc


def test_roots_are_typed_from_their_content_and_rendered_plainly() -> None:
    doc = client_doc()
    assert root_kinds(doc) == {"t": "text", "m": "map", "a": "array", "x": "xml"}
    assert doc_to_json(doc) == {"a": [2], "m": {"k": 1}, "t": "hello", "x": "<p>hi</p>"}
    assert describe(doc) == "a: array, 1 items; m: map, 1 keys; t: 5 chars; x: 9 chars"
    assert describe(Doc()) == "empty document"


def test_apply_json_changes_only_what_differs_and_refuses_a_wrong_type_first() -> None:
    doc = client_doc()
    assert apply_json(doc, {"t": "hello", "m": {"k": 1}}) == []
    assert apply_json(doc, {"t": "help", "m": {"n": True}, "a": [3, 4], "new": "x"}) == [
        "t",
        "m",
        "a",
        "new",
    ]
    assert doc_to_json(doc)["m"] == {"n": True} and doc_to_json(doc)["a"] == [3, 4]
    before = doc.get_update()
    with pytest.raises(ValueError, match="is a map on the server"):
        apply_json(doc, {"t": "changed", "m": "not a map"})
    with pytest.raises(ValueError, match="top-level value"):
        apply_json(doc, {"n": 1})
    assert doc.get_update() == before
