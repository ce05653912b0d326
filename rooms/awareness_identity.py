"""The verified identity the server merges into every awareness state it relays.

Awareness JSON is the client's and says nothing trustworthy about who sent it.
Under the reserved key `"ysync"` the server writes who the connection really is
(from its token or the host's `authenticate` hook), overwriting whatever the
client put there, so any y-protocols client can show a name nobody can forge:

    {"user": {"name": "whatever the client says"}, "cursor": {...},
     "ysync": {"userId": "u-42", "name": "Ada", "role": "editor"}}

`avatar` and `color` appear when the token carries them; a connection with no
user id (auth off, or a hook that names nobody) gets a per-connection
anonymous identity: `{"userId": "anon-<hex>", "name": "Anonymous", "anonymous": true}`.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable

import orjson

from ysync.rooms.hooks import Identity

IDENTITY_KEY = "ysync"  # the server-owned field of every awareness state


def identity_fields(identity: Identity) -> dict[str, object]:
    """The `"ysync"` object for a connection with `identity`."""
    if identity.user_id:
        fields: dict[str, object] = {
            "userId": identity.user_id,
            "name": identity.name or identity.user_id,
            "role": identity.role.value,
        }
        if identity.avatar:
            fields["avatar"] = identity.avatar
        if identity.color:
            fields["color"] = identity.color
        return fields
    return {
        "userId": f"anon-{secrets.token_hex(6)}",
        "name": "Anonymous",
        "role": identity.role.value,
        "anonymous": True,
    }


def stamper(fields: dict[str, object]) -> Callable[[str], str | None]:
    """A function that merges `fields` under "ysync" into one JSON state text;
    None for a state that is not a JSON object (nowhere to put them)."""

    def stamp(state: str) -> str | None:
        try:
            value = orjson.loads(state)
        except orjson.JSONDecodeError:
            return _stamp_slowly(state, fields)  # e.g. integers past 64 bits
        if not isinstance(value, dict):
            return None
        value[IDENTITY_KEY] = fields
        return orjson.dumps(value).decode()

    return stamp


def _stamp_slowly(state: str, fields: dict[str, object]) -> str | None:
    try:
        value = json.loads(state)
        if not isinstance(value, dict):
            return None
        value[IDENTITY_KEY] = fields
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (ValueError, RecursionError):
        return None
