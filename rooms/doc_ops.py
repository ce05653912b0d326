"""JSON operations on a document (`POST /api/rooms/{room}/doc`), applied all or nothing.

    {"ops": [
      {"op": "set", "root": "m", "key": "title", "value": {"any": "JSON"}},
      {"op": "delete", "root": "m", "key": "draft"},
      {"op": "insert", "root": "t", "index": 0, "text": "Hello ", "attributes": {"bold": true}},
      {"op": "insert", "root": "a", "index": 2, "values": [1, "two"]},
      {"op": "insert", "root": "x", "index": 0, "nodes": [{"tag": "paragraph", "children": [{"text": "hi"}]}]},
      {"op": "delete", "root": "t", "index": 0, "length": 6},
      {"op": "replace", "root": "a", "value": [1, 2, 3]}
    ]}

Indexes count characters (Unicode code points) in text, items in arrays and
children in an XmlFragment. A root that does not exist yet takes the type its
first operation implies; `replace` sets a whole root (string: text, object:
map, list: array, or with `"type": "xml"` a list of XML nodes as
`ysync.rooms.doc_render` renders them).

`ops_update(doc, body)` validates and applies every operation to a copy of
`doc` in one transaction and returns the resulting Yjs update; the first bad
operation raises `OpError` naming it, and nothing is changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from ysync.rooms.content import Kind, root_kinds, set_root

MAX_OPS = 10_000
MAX_DEPTH = 64  # nesting of JSON values and XML nodes
_SAFE_INT = 2**53  # Yjs numbers are doubles; yrs panics past 64-bit integers
_KINDS: tuple[Kind, ...] = ("text", "map", "array", "xml")


class OpError(ValueError):
    """A JSON operation that cannot apply; the message names the operation and the field."""


def ops_update(doc: Doc[Any], body: Any, *, client_id: int | None = None) -> bytes:
    """The Yjs update that applies the operations of `body` to `doc` (see the module doc).

    `doc` itself is not changed: apply the update to it (and broadcast it) next.
    `client_id`: the edit's author in the CRDT (default: a random one)."""
    ops = _ops_of(body)
    kinds = root_kinds(doc, sorted({op["root"] for op in ops}))
    copy: Doc[Any] = Doc() if client_id is None else Doc(client_id=client_id)
    copy.apply_update(doc.get_update())
    with copy.transaction():
        for index, op in enumerate(ops):
            try:
                _apply(copy, kinds, op)
            except OpError as exc:
                raise OpError(f"ops[{index}] ({op['op']} on {op['root']!r}): {exc}") from None
    return copy.get_update(doc.get_state())


def _ops_of(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("ops"), list):
        raise OpError('the body must be an object {"ops": [...]}')
    ops: list[dict[str, Any]] = body["ops"]
    if not 1 <= len(ops) <= MAX_OPS:
        raise OpError(f"ops: between 1 and {MAX_OPS} operations, not {len(ops)}")
    for index, op in enumerate(ops):
        if not isinstance(op, dict) or op.get("op") not in _APPLY:
            raise OpError(f"ops[{index}].op must be one of {', '.join(_APPLY)}")
        root = op.get("root")
        if not isinstance(root, str) or not 1 <= len(root) <= 1024:
            raise OpError(f"ops[{index}].root must be a root type's name (1-1024 characters)")
    return ops


def _apply(doc: Doc[Any], kinds: dict[str, Kind | None], op: dict[str, Any]) -> None:
    _APPLY[op["op"]](doc, kinds, op)


def _kind(kinds: dict[str, Kind | None], root: str, wanted: Kind, what: str) -> None:
    """Fix `root`'s type as `wanted`, or refuse when it already is another."""
    known = kinds.get(root)
    if known is None:
        kinds[root] = wanted
    elif known != wanted:
        raise OpError(f"{what} needs a {wanted} root, and {root!r} is a {known}")


def _set(doc: Doc[Any], kinds: dict[str, Kind | None], op: dict[str, Any]) -> None:
    _kind(kinds, op["root"], "map", "set")
    if "value" not in op:
        raise OpError("value is missing")
    doc.get(op["root"], type=Map)[_key(op)] = _value(op["value"], "value")


def _delete(doc: Doc[Any], kinds: dict[str, Kind | None], op: dict[str, Any]) -> None:
    root = op["root"]
    if "key" in op:
        _kind(kinds, root, "map", "delete of a key")
        mapping = doc.get(root, type=Map)
        key = _key(op)
        if key not in mapping:
            raise OpError(f"no key {key!r}")
        del mapping[key]
        return
    kind = kinds.get(root)
    if kind not in ("text", "array", "xml"):
        raise OpError(
            'delete needs "key" (map) or "index" into an existing text, array or xml root'
        )
    length = op.get("length", 1)
    if not _is_int(length) or length < 1:
        raise OpError("length must be an integer >= 1")
    if kind == "text":
        text = doc.get(root, type=Text)
        current = str(text)
        start = _index(op, len(current) - length)
        begin = len(current[:start].encode())  # pycrdt indexes text by UTF-8 bytes
        del text[begin : begin + len(current[start : start + length].encode())]
    elif kind == "array":
        array = doc.get(root, type=Array)
        start = _index(op, len(array) - length)
        del array[start : start + length]
    else:
        children = doc.get(root, type=XmlFragment).children
        start = _index(op, len(children) - length)
        del children[start : start + length]


def _insert(doc: Doc[Any], kinds: dict[str, Kind | None], op: dict[str, Any]) -> None:
    root = op["root"]
    if isinstance(op.get("text"), str):
        _kind(kinds, root, "text", "insert of text")
        text = doc.get(root, type=Text)
        current = str(text)
        at = len(current[: _index(op, len(current))].encode())
        attributes = op.get("attributes")
        if attributes is not None and not isinstance(attributes, dict):
            raise OpError("attributes must be an object")
        if attributes:
            text.insert(at, op["text"], _value(attributes, "attributes"))
        else:
            text.insert(at, op["text"])
    elif isinstance(op.get("values"), list):
        _kind(kinds, root, "array", "insert of values")
        array = doc.get(root, type=Array)
        at = _index(op, len(array))
        for offset, item in enumerate(op["values"]):
            array.insert(at + offset, _value(item, f"values[{offset}]"))
    elif isinstance(op.get("nodes"), list):
        _kind(kinds, root, "xml", "insert of nodes")
        children = doc.get(root, type=XmlFragment).children
        at = _index(op, len(children))
        for offset, node in enumerate(op["nodes"]):
            children.insert(at + offset, xml_prelim(node, f"nodes[{offset}]"))
    else:
        raise OpError('insert needs "text" (a string), "values" (a list) or "nodes" (a list)')


def _replace(doc: Doc[Any], kinds: dict[str, Kind | None], op: dict[str, Any]) -> None:
    if "value" not in op:
        raise OpError("value is missing")
    value = op["value"]
    wanted = op.get("type") or _kind_of_value(value)
    if wanted not in _KINDS:
        raise OpError(f"type must be one of {', '.join(_KINDS)}")
    _kind(kinds, op["root"], wanted, "replace")
    replace_root(doc, op["root"], wanted, value)


def replace_root(doc: Doc[Any], name: str, kind: Kind, value: Any) -> None:
    """Make root `name` (of type `kind`) hold `value`, with minimal edits for text and maps."""
    if kind == "xml":
        if not isinstance(value, list):
            raise OpError("an xml root's value is a list of nodes")
        children = doc.get(name, type=XmlFragment).children
        nodes = [xml_prelim(node, f"value[{i}]") for i, node in enumerate(value)]
        del children[0 : len(children)]
        for node in nodes:
            children.append(node)
        return
    expected = {"text": str, "map": dict, "array": list}[kind]
    if not isinstance(value, expected):
        raise OpError(f"a {kind} root's value is a {expected.__name__}")
    set_root(doc, name, _value(value, "value"))


def _kind_of_value(value: Any) -> Kind:
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "array"
    raise OpError('value must be a string, an object or a list (or give "type": "xml")')


_APPLY = {"set": _set, "delete": _delete, "insert": _insert, "replace": _replace}


def xml_prelim(node: Any, where: str, depth: int = 0) -> XmlElement | XmlText:
    """A new XML node from its JSON form (`{"tag", "attributes"?, "children"?}` or
    `{"text", "delta"?}`), checked before anything is inserted."""
    if depth > MAX_DEPTH:
        raise OpError(f"{where}: nested deeper than {MAX_DEPTH}")
    if not isinstance(node, dict):
        raise OpError(f'{where}: an XML node is an object with "tag" or "text"')
    if isinstance(node.get("text"), str):
        return XmlText(node["text"])
    tag = node.get("tag")
    if not isinstance(tag, str) or not tag:
        raise OpError(f'{where}: an XML node is an object with "tag" or "text"')
    attributes = node.get("attributes", {})
    children = node.get("children", [])
    if not isinstance(attributes, dict) or not isinstance(children, list):
        raise OpError(f"{where}: attributes must be an object and children a list")
    return XmlElement(
        tag,
        {str(k): _value(v, f"{where}.attributes") for k, v in attributes.items()},
        [
            xml_prelim(child, f"{where}.children[{i}]", depth + 1)
            for i, child in enumerate(children)
        ],
    )


def _key(op: Mapping[str, Any]) -> str:
    key = op.get("key")
    if not isinstance(key, str):
        raise OpError("key must be a string")
    return key


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _index(op: Mapping[str, Any], largest: int) -> int:
    index = op.get("index")
    if not isinstance(index, int) or isinstance(index, bool):
        raise OpError("index must be an integer")
    if not 0 <= index <= largest:
        raise OpError(f"index {index} out of range 0..{max(largest, 0)}")
    return int(index)


def _value(value: Any, where: str, depth: int = 0) -> Any:
    """`value` if the CRDT can hold it as JSON (checked: yrs panics on some values)."""
    if depth > MAX_DEPTH:
        raise OpError(f"{where}: nested deeper than {MAX_DEPTH}")
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, int):
        if not -_SAFE_INT <= value <= _SAFE_INT:
            raise OpError(f"{where}: integers beyond ±2**53 do not survive Yjs's doubles")
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise OpError(f"{where}: NaN and infinities are not JSON")
        return value
    if isinstance(value, list):
        return [_value(item, where, depth + 1) for item in value]
    if isinstance(value, dict):
        return {str(k): _value(v, where, depth + 1) for k, v in value.items()}
    raise OpError(f"{where}: not a JSON value")
