"""Diffs of two document states and the update that restores a state (rooms.doc_diff)."""

from __future__ import annotations

from typing import Any

from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from ysync.rooms.doc_diff import diff, doc_of, restore_update
from ysync.rooms.doc_render import render


def state(**roots: Any) -> bytes:
    doc: Doc[Any] = Doc()
    for name, value in roots.items():
        if isinstance(value, str):
            doc.get(name, type=Text).insert(0, value)
        elif isinstance(value, dict):
            doc.get(name, type=Map).update(value)
        else:
            doc.get(name, type=Array).extend(value)
    return doc.get_update()


def test_diff_names_exactly_the_runs_keys_and_items_that_changed() -> None:
    a = state(t="the cat sat", m={"k": 1, "gone": True}, a=[1, 2, 3], same="x")
    b = state(t="the big cat", m={"k": 2, "new": [1]}, a=[1, 3, 4], same="x")
    assert diff(a, b) == {
        "a": {
            "type": "array",
            "inserted": [{"index": 2, "items": [4]}],
            "deleted": [{"index": 1, "items": [2]}],
        },
        "m": {
            "type": "map",
            "added": {"new": [1]},
            "removed": {"gone": True},
            "changed": {"k": {"from": 1, "to": 2}},
        },
        "t": {
            "type": "text",
            "inserted": [{"index": 4, "text": "big "}],
            "deleted": [{"index": 7, "text": " sat"}],
        },
    }


def test_roots_that_appear_disappear_or_change_type_say_so() -> None:
    changes = diff(state(old="x", kind="text"), state(fresh=[1], kind={"k": 1}))
    assert changes["fresh"]["status"] == "added" and changes["fresh"]["inserted"] == [
        {"index": 0, "items": [1]}
    ]
    assert changes["old"] == {
        "type": "text",
        "inserted": [],
        "deleted": [{"index": 0, "text": "x"}],
        "status": "removed",
    }
    assert changes["kind"] == {"type": "map", "from_type": "text"}
    assert diff(state(t="same"), state(t="same")) == {}


def test_restoring_brings_back_every_root_with_formatting_and_empties_new_ones() -> None:
    doc: Doc[Any] = Doc()
    doc.get("t", type=Text).insert(0, "version one")
    doc.get("m", type=Map)["k"] = 1
    paragraph = XmlElement("paragraph", {}, [XmlText("bold plain")])
    doc.get("x", type=XmlFragment).children.append(paragraph)
    next(iter(paragraph.children)).format(0, 4, {"strong": {}})
    v1 = doc.get_update()
    wanted = render(doc_of(v1))
    doc.get("t", type=Text).insert(0, "Not ")
    doc.get("m", type=Map)["n"] = 2
    doc.get("added", type=Array).append(1)
    del doc.get("x", type=XmlFragment).children[0]
    doc.apply_update(restore_update(doc, v1))
    now = render(doc)
    assert now["content"] == {**wanted["content"], "added": []}
    assert now["content"]["x"][0]["children"][0]["delta"][0] == {
        "insert": "bold",
        "attributes": {"strong": {}},
    }


def test_restoring_keeps_nested_maps_shared_maps_and_merges_into_them() -> None:
    # The demo's canvas keeps one Y.Map per element in the `elements` map.
    doc: Doc[Any] = Doc()
    elements = doc.get("elements", type=Map)
    elements["a"] = Map({"x": 1, "color": "yellow", "tags": Array(["t"])})
    elements["b"] = Map({"x": 5})
    v1 = doc.get_update()
    elements["a"]["x"] = 30
    elements["a"]["color"] = "blue"
    del elements["b"]
    elements["c"] = Map({"x": 9})
    # Meanwhile an offline client writes a key of "a" the restore does not touch.
    offline: Doc[Any] = Doc()
    offline.apply_update(doc.get_update())
    offline.get("elements", type=Map)["a"]["text"] = "offline"
    doc.apply_update(restore_update(doc, v1))
    assert elements.to_py() == {"a": {"x": 1, "color": "yellow", "tags": ["t"]}, "b": {"x": 5}}
    assert isinstance(elements["a"], Map) and isinstance(elements["b"], Map)
    assert isinstance(elements["a"]["tags"], Array)
    # "a" was restored in place, key by key, so the offline edit merges into it.
    doc.apply_update(offline.get_update(doc.get_state()))
    assert elements["a"].to_py() == {"x": 1, "color": "yellow", "tags": ["t"], "text": "offline"}
