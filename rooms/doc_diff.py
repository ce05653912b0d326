"""What changed between two states of a document, and the update that restores a state.

`diff(a, b)` (two encoded states, e.g. two versions) answers, for each root
that differs:

    {"t": {"type": "text", "inserted": [{"index": 6, "text": "big "}],
                           "deleted": [{"index": 0, "text": "A "}]},
     "m": {"type": "map", "added": {"k": 1}, "removed": {"old": 2},
                          "changed": {"title": {"from": "a", "to": "b"}}},
     "a": {"type": "array", "inserted": [{"index": 1, "items": [3]}],
                            "deleted": [{"index": 0, "items": [1]}]},
     "x": {"type": "xml", "inserted": [{"index": 0, "nodes": [...]}], "deleted": [...]}}

Deleted runs are indexed in `a`, inserted ones in `b` (characters, items, or
an XmlFragment's top-level nodes as `ysync.rooms.doc_render` renders them). A
root that appears or disappears has `"status": "added"` or `"removed"` beside
its runs, and a root whose type changed only `{"type", "from_type", ...}`.

`restore_update(doc, target)` is the update that makes `doc` hold `target`'s
content: computed against `doc`'s current state and applied like any edit, so
every client converges on it and no history is rewritten (clients offline
meanwhile merge their own edits on top).
"""

from __future__ import annotations

from difflib import SequenceMatcher
from typing import Any

import orjson
from pycrdt import Array, Doc, Map, Text, XmlFragment

from ysync.rooms.content import Kind, root_kinds
from ysync.rooms.doc_ops import replace_root
from ysync.rooms.doc_render import render

_EMPTY: dict[Kind, Any] = {"text": "", "map": {}, "array": [], "xml": []}


def doc_of(update: bytes) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    doc.apply_update(update)
    return doc


def diff(a: bytes, b: bytes) -> dict[str, Any]:
    """Per root, what changed from state `a` to state `b` (see the module doc)."""
    before, after = render(doc_of(a)), render(doc_of(b))
    changes: dict[str, Any] = {}
    for name in sorted({*before["types"], *after["types"]}):
        old_kind, new_kind = before["types"].get(name), after["types"].get(name)
        kind = new_kind or old_kind
        if kind is None:
            continue
        if old_kind is not None and new_kind is not None and old_kind != new_kind:
            changes[name] = {"type": new_kind, "from_type": old_kind}
            continue
        old = before["content"].get(name) if old_kind else None
        new = after["content"].get(name) if new_kind else None
        if old == new:
            continue
        change = _change(
            kind, _EMPTY[kind] if old is None else old, _EMPTY[kind] if new is None else new
        )
        if old_kind is None or new_kind is None:
            change["status"] = "added" if old_kind is None else "removed"
        changes[name] = change
    return changes


def _change(kind: Kind, old: Any, new: Any) -> dict[str, Any]:
    if kind == "map":
        return {
            "type": "map",
            "added": {k: v for k, v in new.items() if k not in old},
            "removed": {k: v for k, v in old.items() if k not in new},
            "changed": {
                k: {"from": old[k], "to": v} for k, v in new.items() if k in old and old[k] != v
            },
        }
    if kind in ("array", "xml"):
        field = "items" if kind == "array" else "nodes"
        inserted, deleted = _runs([_key(item) for item in old], [_key(item) for item in new])
        return {
            "type": kind,
            "inserted": [{"index": j, field: new[j : j + n]} for j, n in inserted],
            "deleted": [{"index": i, field: old[i : i + n]} for i, n in deleted],
        }
    inserted, deleted = _runs(old, new)
    return {
        "type": "text",
        "inserted": [{"index": j, "text": new[j : j + n]} for j, n in inserted],
        "deleted": [{"index": i, "text": old[i : i + n]} for i, n in deleted],
    }


def _key(item: Any) -> bytes:
    return orjson.dumps(item, option=orjson.OPT_SORT_KEYS)


def _runs(old: Any, new: Any) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(inserted (index in new, length), deleted (index in old, length)) runs."""
    inserted, deleted = [], []
    matcher = SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag in ("delete", "replace"):
            deleted.append((i1, i2 - i1))
        if tag in ("insert", "replace"):
            inserted.append((j1, j2 - j1))
    return inserted, deleted


def restore_update(doc: Doc[Any], target: bytes) -> bytes:
    """The update that makes `doc` hold the content of state `target` (see the module doc).

    Roots `target` lacks are emptied (a Yjs root cannot be removed); a root whose
    type differs keeps its current type and is emptied."""
    typed = doc_of(target)
    wanted = render(typed)
    current = root_kinds(doc)
    copy = doc_of(doc.get_update())
    with copy.transaction():
        for name in sorted({*wanted["types"], *current}):
            kind = current.get(name) or wanted["types"].get(name)
            if kind is None:
                continue
            value = wanted["content"].get(name)
            if kind == "map" and wanted["types"].get(name) == kind:
                restore_map(copy.get(name, type=Map), typed.get(name, type=Map))
                continue
            if wanted["types"].get(name) != kind:
                value = _EMPTY[kind]
            replace_root(copy, name, kind, value)
            if kind == "xml":
                fill_formatting(copy.get(name, type=XmlFragment), value)
    return copy.get_update(doc.get_state())


def restore_map(current: Map[Any], wanted: Map[Any]) -> None:
    """Make `current` hold `wanted`'s entries, key by key. A nested shared map stays one:
    restored in place when it is one now (so edits to its other keys merge), or rebuilt
    as a shared map, not flattened to a JSON object (clients that keep, say, one Y.Map
    per canvas element need it to still be a Y.Map)."""
    want = dict(wanted.items())
    for key in sorted(set(current.keys()) - want.keys()):
        del current[key]
    for key, value in want.items():
        old = current.get(key)
        if isinstance(value, Map) and isinstance(old, Map):
            restore_map(old, value)
        elif isinstance(value, Map | Array | Text):
            if not isinstance(old, type(value)) or old.to_py() != value.to_py():
                current[key] = _prelim(value)
        elif isinstance(old, Map | Array | Text | XmlFragment) or old != value:
            current[key] = value


def _prelim(value: Any) -> Any:
    """A new shared type with `value`'s content (nested shared maps, arrays and texts
    included; formatting of nested texts is not kept)."""
    if isinstance(value, Map):
        return Map({k: _prelim(v) for k, v in value.items()})
    if isinstance(value, Array):
        return Array([_prelim(v) for v in value])
    if isinstance(value, Text):
        return Text(str(value))
    return value


def fill_formatting(fragment: Any, nodes: list[Any]) -> None:
    """Re-apply the formatting runs (`delta`) of XML text nodes just inserted from JSON."""
    for child, node in zip(fragment.children, nodes, strict=False):
        if "delta" in node and hasattr(child, "format"):
            offset = 0
            for run in node["delta"]:
                size = len(run["insert"].encode())  # pycrdt indexes text by UTF-8 bytes
                if run.get("attributes"):
                    child.format(offset, offset + size, run["attributes"])
                offset += size
        elif "children" in node and hasattr(child, "children"):
            fill_formatting(child, node["children"])
