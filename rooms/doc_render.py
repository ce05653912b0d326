"""A document as the JSON the document API answers (`GET /api/rooms/{room}/doc`).

    render(doc)  {"types": {"t": "text", "m": "map", "x": "xml"},
                  "content": {"t": "hi", "m": {"k": 1}, "x": [{"tag": "p", ...}]}}

Text is a string, a map an object, an array a list, and an XmlFragment the
list of its children: an element is `{"tag", "attributes", "children"}`, a
text node `{"text": "..."}` (plus `"delta"` when it carries formatting). With
`html=True` an XmlFragment is its XML/HTML serialisation instead (one string).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from pycrdt import Doc, XmlElement, XmlFragment, XmlText

from ysync.rooms.content import Kind, root_kinds, root_value


def render(doc: Doc[Any], *, html: bool = False) -> dict[str, Any]:
    """Every root of `doc`: its type and its content as JSON, sorted by name."""
    kinds = root_kinds(doc)
    # A copy to read from: reading a root with its type must not retype the room's doc.
    copy: Doc[Any] = Doc()
    copy.apply_update(doc.get_update())
    names = sorted(kinds)
    return {
        "types": {name: kinds[name] for name in names},
        "content": {name: _value(copy, name, kinds[name], html) for name in names},
    }


def _value(doc: Doc[Any], name: str, kind: Kind | None, html: bool) -> Any:
    if kind == "xml" and not html:
        return [xml_node(child) for child in doc.get(name, type=XmlFragment).children]
    return root_value(doc, name, kind)


def xml_node(node: XmlElement | XmlText | XmlFragment) -> dict[str, Any]:
    """One XML node as JSON (see the module doc)."""
    if isinstance(node, XmlText):
        delta = node.diff()
        body: dict[str, Any] = {"text": "".join(str(part) for part, _ in delta)}
        if any(attrs for _, attrs in delta):
            body["delta"] = [
                {"insert": str(part), **({"attributes": attrs} if attrs else {})}
                for part, attrs in delta
            ]
        return body
    if isinstance(node, XmlElement):
        return {
            "tag": node.tag,
            "attributes": dict(cast(Iterable[tuple[str, Any]], node.attributes)),
            "children": [xml_node(child) for child in node.children],
        }
    return {"children": [xml_node(child) for child in node.children]}
