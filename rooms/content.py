"""A document's content as JSON, and JSON applied to a document (`ysync doc`, the document API).

A Yjs document has named root types, and a client that did not create a root
does not know its type. `root_kinds` infers it from the content: "text",
"map", "array" or "xml" (None for an empty root, whose type cannot be told).

    doc_to_json(doc)            {"t": "hello", "m": {"k": 1}, "a": [1, 2], "x": "<p>hi</p>"}
    apply_json(doc, {...})      make roots hold these values, with minimal edits
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pycrdt import Array, Doc, Map, Text, XmlFragment

Kind = Literal["text", "map", "array", "xml"]


def _probe(update: bytes, name: str, kind: type[Any]) -> Any:
    doc: Doc[Any] = Doc()
    doc.apply_update(update)
    return doc.get(name, type=kind)


def root_kinds(doc: Doc[Any], names: Iterable[str] | None = None) -> dict[str, Kind | None]:
    """Each root's type (of every root, or of `names`), from how it is used
    locally or else from its content.

    Probes run on copies: getting a root with a type fixes that type in a doc."""
    kinds: dict[str, Kind | None] = {}
    update: bytes | None = None
    roots = dict(doc.items())
    for name in roots if names is None else names:
        root = roots.get(name)
        known = _kind_of(root)
        if known is not None:
            kinds[name] = known
            continue
        if update is None:
            update = doc.get_update()
        kinds[name] = _infer(update, name)
    return kinds


def _kind_of(root: Any) -> Kind | None:
    if isinstance(root, Text):
        return "text"
    if isinstance(root, Map):
        return "map"
    if isinstance(root, Array):
        return "array"
    if isinstance(root, XmlFragment):
        return "xml"
    return None


def _infer(update: bytes, name: str) -> Kind | None:
    if len(_probe(update, name, Map)) > 0:
        return "map"
    if str(_probe(update, name, Text)):
        return "text"
    try:
        items = _probe(update, name, Array).to_py()
    except ValueError:  # XmlElement/XmlText content has no Python equivalent
        return "xml"
    return "array" if items else None


def plain(value: Any) -> Any:
    """JSON-friendly values: Yjs numbers are doubles, so 1.0 becomes 1 again."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def root_value(doc: Doc[Any], name: str, kind: Kind | None) -> Any:
    """A root's value as JSON (text and XML as strings); None when empty."""
    if kind == "text":
        return str(doc.get(name, type=Text))
    if kind == "map":
        return plain(doc.get(name, type=Map).to_py())
    if kind == "array":
        return plain(doc.get(name, type=Array).to_py())
    if kind == "xml":
        return str(doc.get(name, type=XmlFragment))
    return None


def doc_to_json(doc: Doc[Any]) -> dict[str, Any]:
    """Every root as JSON, sorted by name."""
    kinds = root_kinds(doc)
    # A copy to read from: reading a root with its type must not retype ours.
    copy: Doc[Any] = Doc()
    copy.apply_update(doc.get_update())
    return {name: root_value(copy, name, kinds[name]) for name in sorted(kinds)}


def describe(doc: Doc[Any]) -> str:
    """A one-line summary: `t: text, 12 chars; m: map, 2 keys`."""
    parts = []
    for name, value in doc_to_json(doc).items():
        if isinstance(value, str):
            parts.append(f"{name}: {len(value)} chars")
        elif isinstance(value, dict):
            parts.append(f"{name}: map, {len(value)} keys")
        elif isinstance(value, list):
            parts.append(f"{name}: array, {len(value)} items")
        else:
            parts.append(f"{name}: empty")
    return "; ".join(parts) or "empty document"


def apply_json(doc: Doc[Any], data: Mapping[str, Any]) -> list[str]:
    """Make each named root hold the given value; return the names that changed.

    A string sets a text root (only the differing middle is replaced, so
    unchanged text keeps its identity), an object sets a map's keys (and
    removes the others), a list replaces an array's items. Roots not named
    are left alone. Raises ValueError on a type that does not match the
    root's, before changing anything."""
    kinds = root_kinds(doc)
    for name, value in data.items():
        wanted = _json_kind(name, value)
        if kinds.get(name) not in (None, wanted):
            raise ValueError(f"root {name!r} is a {kinds[name]} on the server, not a {wanted}")
    changed = []
    with doc.transaction():
        for name, value in data.items():
            if set_root(doc, name, value):
                changed.append(name)
    return changed


def _json_kind(name: str, value: Any) -> Kind:
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "array"
    raise ValueError(
        f"root {name!r}: a top-level value must be a string (text), an object (map) "
        f"or a list (array), not {type(value).__name__}"
    )


def set_root(doc: Doc[Any], name: str, value: Any) -> bool:
    if isinstance(value, str):
        return _set_text(doc.get(name, type=Text), value)
    if isinstance(value, dict):
        mapping = doc.get(name, type=Map)
        current = plain(mapping.to_py())
        for key in [k for k in current if k not in value]:
            del mapping[key]
        for key, item in value.items():
            if key not in current or current[key] != item:
                mapping[key] = item
        return bool(current != value)
    array = doc.get(name, type=Array)
    if plain(array.to_py()) == value:
        return False
    array.clear()
    array.extend(value)
    return True


def _set_text(text: Text, value: str) -> bool:
    old = str(text)
    if old == value:
        return False
    prefix = 0
    limit = min(len(old), len(value))
    while prefix < limit and old[prefix] == value[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and old[-1 - suffix] == value[-1 - suffix]:
        suffix += 1
    # pycrdt 0.14 indexes text by UTF-8 bytes, not by code points.
    start = len(old[:prefix].encode())
    end = len(old[: len(old) - suffix].encode())
    if end > start:
        del text[start:end]
    middle = value[prefix : len(value) - suffix]
    if middle:
        text.insert(start, middle)
    return True
