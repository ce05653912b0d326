"""Comment threads: the model, the validation of what clients send, and plain-text rendering.

Pure: no I/O. A *thread* belongs to a room and holds its comments in order; a
*comment*'s body is structured rich text in the shape Liveblocks uses:

    {"version": 1, "content": [{"type": "paragraph", "children": [
        {"text": "see "}, {"type": "mention", "id": "user-ada"}, {"text": "!", "bold": true}]}]}

validated against `BODY_SCHEMA` after a size and a depth check (so a hostile
body is refused before any validator walks it). Mentions are derived from the
body, never taken from the client separately. Every refusal is a
`CommentError` naming the field; `too_large` ones answer 413, the others 400.
"""

from __future__ import annotations

import base64
import binascii
import math
import secrets
import time
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

MAX_BODY_BYTES = 16 * 1024  # default of --max-comment-bytes
MAX_METADATA_BYTES = 4 * 1024  # default of --max-metadata-bytes
MAX_BODY_DEPTH = 6  # body > content > paragraph > children > inline > value
MAX_EMOJI_BYTES = 32
MAX_METADATA_KEY = 128
MAX_USER_ID = 256

_STYLES = ("bold", "italic", "strikethrough", "code")
BODY_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["version", "content"],
    "additionalProperties": False,
    "properties": {
        "version": {"const": 1},
        "content": {
            "type": "array",
            "minItems": 1,
            "maxItems": 500,
            "items": {"$ref": "#/$defs/paragraph"},
        },
    },
    "$defs": {
        "paragraph": {
            "type": "object",
            "required": ["type", "children"],
            "additionalProperties": False,
            "properties": {
                "type": {"const": "paragraph"},
                "children": {
                    "type": "array",
                    "maxItems": 1000,
                    "items": {"$ref": "#/$defs/inline"},
                },
            },
        },
        "inline": {
            "oneOf": [
                {"$ref": "#/$defs/text"},
                {"$ref": "#/$defs/mention"},
                {"$ref": "#/$defs/link"},
            ]
        },
        "text": {
            "type": "object",
            "required": ["text"],
            "additionalProperties": False,
            "properties": {"text": {"type": "string"}} | {s: {"type": "boolean"} for s in _STYLES},
        },
        "mention": {
            "type": "object",
            "required": ["type", "id"],
            "additionalProperties": False,
            "properties": {
                "type": {"const": "mention"},
                "id": {"type": "string", "minLength": 1, "maxLength": MAX_USER_ID},
            },
        },
        "link": {
            "type": "object",
            "required": ["type", "url"],
            "additionalProperties": False,
            "properties": {
                "type": {"const": "link"},
                "url": {"type": "string", "minLength": 1, "maxLength": 2048},
                "text": {"type": "string"},
            },
        },
    },
}
_BODY_VALIDATOR = Draft202012Validator(BODY_SCHEMA)


class CommentError(ValueError):
    """What a client sent cannot be stored; `code` is machine-readable, the message
    names the field. `too_large`: a size limit (HTTP 413), else malformed (400)."""

    def __init__(self, code: str, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.too_large = too_large


# -- the model -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Comment:
    """One comment; a deleted one keeps its place in the thread, without its body."""

    id: str
    thread_id: str
    author: str
    body: Mapping[str, Any] | None
    created_at: float  # Unix time
    edited_at: float | None = None
    deleted_at: float | None = None
    reactions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # emoji -> users
    mentions: tuple[str, ...] = ()

    @property
    def text(self) -> str | None:
        return None if self.body is None else plain_text(self.body)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "threadId": self.thread_id,
            "author": self.author,
            "body": self.body,
            "text": self.text,
            "createdAt": iso(self.created_at),
            "editedAt": iso(self.edited_at),
            "deletedAt": iso(self.deleted_at),
            "reactions": {emoji: list(users) for emoji, users in self.reactions.items()},
            "mentions": list(self.mentions),
        }


@dataclass(frozen=True, slots=True)
class Thread:
    """A room's comment thread, its anchor in the document and its comments in order."""

    id: str
    room: str
    anchor: Mapping[str, Any]
    metadata: Mapping[str, Any]
    created_by: str
    created_at: float
    updated_at: float
    resolved: bool = False
    resolved_by: str | None = None
    resolved_at: float | None = None
    comments: tuple[Comment, ...] = ()

    def comment(self, comment_id: str) -> Comment | None:
        return next((c for c in self.comments if c.id == comment_id), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "room": self.room,
            "anchor": self.anchor,
            "metadata": self.metadata,
            "createdBy": self.created_by,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "resolved": self.resolved,
            "resolvedBy": self.resolved_by,
            "resolvedAt": iso(self.resolved_at),
            "comments": [comment.to_json() for comment in self.comments],
        }


def new_id(prefix: str) -> str:
    """A fresh random id (`th_…`, `cm_…`, `nt_…`): 96 bits, URL-safe."""
    return f"{prefix}_{secrets.token_urlsafe(12)}"


def new_comment(thread_id: str, author: str, body: Mapping[str, Any], now: float) -> Comment:
    return Comment(new_id("cm"), thread_id, author, body, now, mentions=mentions_of(body))


def edited(comment: Comment, body: Mapping[str, Any], now: float) -> Comment:
    return replace(comment, body=body, edited_at=now, mentions=mentions_of(body))


def iso(at: float | None) -> str | None:
    """Unix time as ISO 8601 UTC with milliseconds (what JS `Date` parses)."""
    if at is None:
        return None
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(raw: str, name: str) -> float:
    """ISO 8601 (`2024-05-01T12:00:00Z`) or Unix seconds, as Unix time."""
    try:
        value = float(raw)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise CommentError(
                "bad_time", f"{name} must be ISO 8601 or Unix seconds, not {raw[:40]!r}"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    if not math.isfinite(value):
        raise CommentError("bad_time", f"{name} must be a finite time")
    return value


def now() -> float:
    return time.time()


# -- bodies ----------------------------------------------------------------------------------


def check_body(raw: Any, *, max_bytes: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """`raw` as a valid comment body, or raise `CommentError` naming what is wrong."""
    if raw is None:
        raise CommentError("body_missing", "body is required: {version: 1, content: [...]}")
    size = len(orjson.dumps(raw))
    if size > max_bytes:
        raise CommentError(
            "body_too_large", f"body is {size} bytes, over the {max_bytes} allowed", too_large=True
        )
    if depth(raw) > MAX_BODY_DEPTH:
        raise CommentError("body_too_deep", f"body nests deeper than {MAX_BODY_DEPTH} levels")
    error = best_match(_BODY_VALIDATOR.iter_errors(raw))
    if error is not None:
        where = "body" + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path
        )
        raise CommentError("body_invalid", f"{where}: {error.message[:200]}")
    if not plain_text(raw).strip() and not mentions_of(raw):
        raise CommentError("body_empty", "body has no text")
    body: dict[str, Any] = raw
    return body


def depth(value: Any) -> int:
    """How deeply `value` nests lists and objects (a scalar: 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            level += 1
            deepest = max(deepest, level)
            if level > MAX_BODY_DEPTH:
                return level  # deep enough to refuse: stop walking
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level) for child in children)
    return deepest


def plain_text(body: Mapping[str, Any]) -> str:
    """The body as plain text (notifications, webhooks): paragraphs on their own
    lines, mentions as `@id`, links as their text (or URL)."""
    lines = []
    for paragraph in body.get("content", ()):
        parts = []
        for inline in paragraph.get("children", ()):
            kind = inline.get("type")
            if kind == "mention":
                parts.append("@" + str(inline.get("id", "")))
            elif kind == "link":
                parts.append(str(inline.get("text") or inline.get("url", "")))
            else:
                parts.append(str(inline.get("text", "")))
        lines.append("".join(parts))
    return "\n".join(lines)


def text_body(text: str) -> dict[str, Any]:
    """A body of plain text, one paragraph per line (what the SDK and CLI send for a str)."""
    lines = text.split("\n")
    return {
        "version": 1,
        "content": [{"type": "paragraph", "children": [{"text": line}]} for line in lines],
    }


def mentions_of(body: Mapping[str, Any]) -> tuple[str, ...]:
    """The user ids the body mentions, each once, in order of appearance."""
    found: dict[str, None] = {}
    for paragraph in body.get("content", ()):
        for inline in paragraph.get("children", ()):
            if inline.get("type") == "mention" and isinstance(inline.get("id"), str):
                found[inline["id"]] = None
    return tuple(found)


# -- metadata, emoji, flags ------------------------------------------------------------------


def check_metadata(
    raw: Any, *, max_bytes: int = MAX_METADATA_BYTES, patch: bool = False
) -> dict[str, Any]:
    """A flat object of string keys to strings, finite numbers or booleans (in a
    patch, null removes a key). Raise `CommentError` naming the offending key."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise CommentError("metadata_invalid", "metadata must be an object")
    size = len(orjson.dumps(raw))
    if size > max_bytes:
        raise CommentError(
            "metadata_too_large",
            f"metadata is {size} bytes, over the {max_bytes} allowed",
            too_large=True,
        )
    for key, value in raw.items():
        if not key or len(key) > MAX_METADATA_KEY:
            raise CommentError(
                "metadata_invalid", f"metadata keys must be 1-{MAX_METADATA_KEY} characters"
            )
        if value is None and patch:
            continue
        scalar = isinstance(value, str | bool) or (
            isinstance(value, int | float) and math.isfinite(value)
        )
        if not scalar:
            raise CommentError(
                "metadata_invalid",
                f"metadata.{key[:40]} must be a string, a finite number or a boolean",
            )
    metadata: dict[str, Any] = raw
    return metadata


def merged_metadata(
    current: Mapping[str, Any], patch: Mapping[str, Any], *, max_bytes: int = MAX_METADATA_BYTES
) -> dict[str, Any]:
    """`current` with `patch` applied (null removes a key), within the size limit."""
    result = {**current, **patch}
    for key, value in patch.items():
        if value is None:
            del result[key]
    return check_metadata(result, max_bytes=max_bytes)


def metadata_filter_value(value: Any) -> str:
    """How a metadata value is compared with a `metadata.<key>=` filter: strings as
    they are, numbers and booleans as JSON (`120`, `true`)."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def check_emoji(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise CommentError("emoji_invalid", "emoji must be a non-empty string")
    if len(raw.encode("utf-8")) > MAX_EMOJI_BYTES:
        raise CommentError("emoji_invalid", f"emoji is over {MAX_EMOJI_BYTES} bytes of UTF-8")
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") or c.isspace() for c in raw):
        raise CommentError("emoji_invalid", "emoji must not hold spaces or control characters")
    return raw


def check_flag(raw: Any, name: str) -> bool:
    if not isinstance(raw, bool):
        raise CommentError("not_boolean", f"{name} must be true or false")
    return raw


def check_fields(body: Any, allowed: Iterable[str], what: str) -> Mapping[str, Any]:
    """A request body that is a JSON object holding only `allowed` fields."""
    if not isinstance(body, dict):
        raise CommentError("body_not_object", f"the request body must be a JSON object ({what})")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise CommentError("unknown_field", f"unknown field {unknown[0][:40]!r} in {what}")
    return body


# -- list cursors ----------------------------------------------------------------------------


def encode_cursor(created_at: float, thread_id: str) -> str:
    raw = orjson.dumps([created_at, thread_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, thread_id = orjson.loads(raw)
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError):
        raise CommentError("bad_cursor", "cursor is not one this server gave") from None
    if not isinstance(created_at, int | float) or not isinstance(thread_id, str):
        raise CommentError("bad_cursor", "cursor is not one this server gave")
    return float(created_at), thread_id
