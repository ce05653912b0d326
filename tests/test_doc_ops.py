"""The document as JSON (rooms.doc_render) and JSON operations applied all or nothing (rooms.doc_ops)."""

from __future__ import annotations

from typing import Any

import pytest
from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from ysync.rooms.doc_ops import OpError, ops_update
from ysync.rooms.doc_render import render


def document() -> Doc[Any]:
    doc: Doc[Any] = Doc()
    doc.get("t", type=Text).insert(0, "héllo")
    doc.get("m", type=Map)["k"] = 1
    doc.get("a", type=Array).extend([1, "two"])
    paragraph = XmlElement("paragraph", {"level": "1"}, [XmlText("hi")])
    doc.get("x", type=XmlFragment).children.append(paragraph)
    return doc


def applied(doc: Doc[Any], *ops: dict[str, Any]) -> dict[str, Any]:
    doc.apply_update(ops_update(doc, {"ops": list(ops)}))
    return render(doc)["content"]


def test_render_gives_every_root_its_type_and_json_and_xml_as_a_tree_or_html() -> None:
    doc = document()
    body = render(doc)
    assert body["types"] == {"a": "array", "m": "map", "t": "text", "x": "xml"}
    assert body["content"] == {
        "a": [1, "two"],
        "m": {"k": 1},
        "t": "héllo",
        "x": [{"tag": "paragraph", "attributes": {"level": "1"}, "children": [{"text": "hi"}]}],
    }
    assert render(doc, html=True)["content"]["x"] == '<paragraph level="1">hi</paragraph>'


def test_rendering_a_document_a_client_wrote_leaves_its_roots_untyped() -> None:
    source = document()
    doc: Doc[Any] = Doc()
    doc.apply_update(source.get_update())
    assert render(doc)["types"]["x"] == "xml"
    assert set(dict(doc.items()).values()) == {None}  # rendered from a copy: none typed here


def test_every_operation_applies_with_code_point_indexes() -> None:
    doc = document()
    content = applied(
        doc,
        {"op": "insert", "root": "t", "index": 5, "text": "!"},
        {"op": "delete", "root": "t", "index": 0, "length": 1},
        {"op": "set", "root": "m", "key": "new", "value": {"deep": [1, None]}},
        {"op": "delete", "root": "m", "key": "k"},
        {"op": "insert", "root": "a", "index": 1, "values": [True, 2.5]},
        {"op": "delete", "root": "a", "index": 0},
        {
            "op": "insert",
            "root": "x",
            "index": 1,
            "nodes": [{"tag": "p", "children": [{"text": "z"}]}],
        },
        {"op": "insert", "root": "fresh", "index": 0, "text": "new root"},
        {"op": "replace", "root": "r", "value": [3, 2, 1]},
    )
    assert content["t"] == "éllo!"
    assert content["m"] == {"new": {"deep": [1, None]}}
    assert content["a"] == [True, 2.5, "two"]
    assert [node["tag"] for node in content["x"]] == ["paragraph", "p"]
    assert content["fresh"] == "new root"
    assert content["r"] == [3, 2, 1]


def test_replace_sets_a_whole_root_including_an_xml_fragment() -> None:
    doc = document()
    nodes = [{"tag": "heading", "attributes": {"level": 2}, "children": [{"text": "T"}]}]
    content = applied(
        doc,
        {"op": "replace", "root": "t", "value": "other"},
        {"op": "replace", "root": "m", "value": {"a": 1}},
        {"op": "replace", "root": "x", "type": "xml", "value": nodes},
    )
    assert content["t"] == "other" and content["m"] == {"a": 1}
    assert content["x"] == [
        {"tag": "heading", "attributes": {"level": 2}, "children": [{"text": "T"}]}
    ]


@pytest.mark.parametrize(
    ("op", "message"),
    [
        ({"op": "set", "root": "t", "key": "k", "value": 1}, "needs a map root"),
        ({"op": "insert", "root": "m", "index": 0, "text": "x"}, "needs a text root"),
        ({"op": "insert", "root": "t", "index": 99, "text": "x"}, "out of range"),
        ({"op": "delete", "root": "a", "index": 1, "length": 5}, "out of range"),
        ({"op": "delete", "root": "m", "key": "missing"}, "no key"),
        ({"op": "set", "root": "m", "key": "k", "value": 2**60}, "beyond"),
        ({"op": "insert", "root": "a", "index": True, "values": [1]}, "index must be an integer"),
        ({"op": "insert", "root": "x", "index": 0, "nodes": [{"tag": ""}]}, '"tag" or "text"'),
        ({"op": "replace", "root": "m", "value": "text now"}, "needs a text root"),
        ({"op": "move", "root": "m"}, "must be one of"),
        ({"op": "delete", "root": "nothing", "index": 0}, "delete needs"),
    ],
)
def test_one_bad_operation_refuses_the_list_and_changes_nothing(
    op: dict[str, Any], message: str
) -> None:
    doc = document()
    before = doc.get_update()
    good = {"op": "set", "root": "m", "key": "first", "value": "applied?"}
    with pytest.raises(OpError, match=message) as caught:
        ops_update(doc, {"ops": [good, op]})
    assert str(caught.value).startswith("ops[1]")
    assert doc.get_update() == before


@pytest.mark.parametrize("body", [None, [], {"ops": []}, {"ops": "x"}, {"ops": [{"op": "set"}]}])
def test_a_body_that_is_no_operation_list_is_refused(body: Any) -> None:
    with pytest.raises(OpError):
        ops_update(document(), body)


@pytest.mark.parametrize(
    ("op", "message"),
    [
        ({"op": "set", "root": "m", "key": "k"}, "value is missing"),
        ({"op": "set", "root": "m", "key": 1, "value": 1}, "key must be a string"),
        ({"op": "set", "root": "m", "key": "k", "value": float("inf")}, "NaN"),
        ({"op": "set", "root": "m", "key": "k", "value": {1, 2}}, "not a JSON value"),
        ({"op": "set", "root": "m", "key": "k", "value": [[[[[]]]]]}, None),
        ({"op": "delete", "root": "t", "index": 0, "length": 0}, "length must be"),
        ({"op": "insert", "root": "t", "index": 0, "text": "x", "attributes": 1}, "attributes"),
        ({"op": "insert", "root": "t", "index": 0}, "insert needs"),
        ({"op": "insert", "root": "x", "index": 0, "nodes": [1]}, "an XML node"),
        (
            {"op": "insert", "root": "x", "index": 0, "nodes": [{"tag": "p", "children": 1}]},
            "children",
        ),
        ({"op": "replace", "root": "m"}, "value is missing"),
        ({"op": "replace", "root": "n", "value": 1}, "value must be"),
        ({"op": "replace", "root": "n", "type": "blob", "value": 1}, "type must be"),
        ({"op": "replace", "root": "x", "type": "xml", "value": "p"}, "list of nodes"),
        ({"op": "replace", "root": "m", "type": "map", "value": []}, "a map root's value"),
    ],
)
def test_each_malformed_field_is_named(op: dict[str, Any], message: str | None) -> None:
    doc = document()
    if message is None:  # nesting within the bound is fine
        doc.apply_update(ops_update(doc, {"ops": [op]}))
        return
    with pytest.raises(OpError, match=message):
        ops_update(doc, {"ops": [op]})


def test_deep_values_and_deletes_in_text_arrays_and_xml() -> None:
    deep: Any = 1
    for _ in range(70):
        deep = [deep]
    with pytest.raises(OpError, match="deeper"):
        ops_update(document(), {"ops": [{"op": "set", "root": "m", "key": "k", "value": deep}]})
    doc = document()
    content = applied(
        doc,
        {"op": "delete", "root": "x", "index": 0},
        {"op": "delete", "root": "t", "index": 1, "length": 2},
        {"op": "insert", "root": "t", "index": 0, "text": "b", "attributes": {"bold": True}},
    )
    assert content["x"] == [] and content["t"] == "bhlo"
    formatted = render(doc)["content"]["t"]
    assert formatted == "bhlo"
