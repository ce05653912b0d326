"""Versions: named or automatic immutable snapshots of a room's document (the model).

A version holds the document's full encoded state at one moment (`data`) and
its state vector, with who made it and why: `kind` is "named" (someone asked),
"auto" (`--auto-version-interval`: the room changed since the last one),
"pre-restore" (the document just before a restore) or "restore" (just after
one). Versions never change; retention (`keep`) removes only automatic ones.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

KINDS = ("named", "auto", "pre-restore", "restore")
MAX_NAME = 200
MAX_DESCRIPTION = 2000


class VersionError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Version:
    room: str
    id: str
    name: str
    description: str
    author: str | None
    kind: str
    created_at: float  # Unix time
    state_vector: bytes
    data: bytes  # the whole document, as one Yjs update

    def summary(self) -> dict[str, object]:
        """The version as the API lists it (without its content)."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "author": self.author,
            "kind": self.kind,
            "automatic": self.kind != "named",
            "created_at": self.created_at,
            "size_bytes": len(self.data),
            "state_vector": base64.b64encode(self.state_vector).decode(),
        }


@dataclass(frozen=True, slots=True)
class VersionPage:
    versions: Sequence[Version]
    next_cursor: str | None


def new_version_id() -> str:
    return f"v_{secrets.token_urlsafe(12)}"


def check_text(value: object, field: str, limit: int, *, required: bool) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > limit:
        need = "a non-empty string" if required else "a string"
        raise VersionError(
            f"invalid_{field}", f"{field} must be {need} of at most {limit} characters"
        )
    return value


def encode_cursor(created_at: float, version_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([created_at, version_id])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        created_at, version_id = orjson.loads(raw)
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError):
        raise VersionError("bad_cursor", "cursor is not one this server gave") from None
    if not isinstance(created_at, int | float) or not isinstance(version_id, str):
        raise VersionError("bad_cursor", "cursor is not one this server gave")
    return float(created_at), version_id
