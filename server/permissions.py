"""From verified token claims to an `Identity`: who the client is and its role in a room.

Claims read (see README "Authentication"):

- `sub` (required): the user id.
- `name` (optional): the display name.
- `rooms`: an object mapping a room name or glob pattern to a role, e.g.
  ``{"team-a/*": "editor", "public/readme": "viewer", "*": "viewer"}``.

Patterns: ``*`` matches any run of characters, ``/`` included (so ``"*"`` is a
catch-all and ``"team-a/*"`` covers ``team-a/x/y``); ``?`` matches exactly one
character; every other character matches itself.

The most specific match wins:

1. an exact room name (no wildcard) beats every pattern;
2. otherwise the pattern with the most literal (non-wildcard) characters wins:
   ``team-a/specs/*`` beats ``team-a/*`` beats ``*``;
3. on a tie, the least powerful role wins: a tie never grants more.

No matching entry (or no `rooms` claim): the connection is refused with 4403.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ysync.rooms.hooks import Identity, Role

_ROLES = {role.value: role for role in Role}
ALL_ROOMS = "*"  # as a room name: the whole node (node-wide HTTP API endpoints)


class ClaimsError(ValueError):
    """The token's claims are not usable (close 4401: the app must mint a better one)."""


class NoAccess(Exception):
    """The token grants no role in the room (close 4403)."""


@dataclass(frozen=True, slots=True)
class _Grant:
    pattern: str
    role: Role
    exact: bool
    literal_chars: int


def glob_match(pattern: str, name: str) -> bool:
    """`*` any run (`/` included), `?` one character, the rest literal.

    Backtracks only to the latest `*`: O(len(pattern) * len(name)) at worst,
    whatever the pattern (a regex of many `.*` can take exponential time).
    """
    p = n = 0
    star = -1  # index in pattern just after the latest '*'
    resume = 0  # where in name that '*' match would extend next
    while n < len(name):
        if p < len(pattern) and pattern[p] == "*":
            star, resume = p + 1, n
            p += 1
        elif p < len(pattern) and (pattern[p] == "?" or pattern[p] == name[n]):
            p += 1
            n += 1
        elif star >= 0:
            resume += 1
            p, n = star, resume
        else:
            return False
    return all(c == "*" for c in pattern[p:])


def parse_grants(rooms: Any) -> list[_Grant]:
    """The `rooms` claim as grants; raise `ClaimsError` if it is malformed."""
    if rooms is None:
        return []
    if not isinstance(rooms, Mapping):
        raise ClaimsError("claim 'rooms' must be an object of pattern -> role")
    grants = []
    for pattern, role_name in rooms.items():
        role = _ROLES.get(role_name) if isinstance(role_name, str) else None
        if not isinstance(pattern, str) or not pattern or role is None:
            raise ClaimsError(
                f"claim 'rooms': {str(pattern)[:40]!r} -> {str(role_name)[:20]!r} "
                f"is not pattern -> one of {'/'.join(_ROLES)}"
            )
        exact = "*" not in pattern and "?" not in pattern
        literal = sum(1 for c in pattern if c not in "*?")
        grants.append(_Grant(pattern, role, exact, literal))
    return grants


def role_for(grants: list[_Grant], room: str) -> Role | None:
    """The role the most specific matching grant gives in `room` (see module doc)."""
    best: _Grant | None = None
    for grant in grants:
        if grant.pattern != room and (grant.exact or not glob_match(grant.pattern, room)):
            continue
        if best is None or _more_specific(grant, best):
            best = grant
    return None if best is None else best.role


def exact_role(grants: list[_Grant], pattern: str) -> Role | None:
    """The least powerful role granted on exactly `pattern`."""
    roles = [grant.role for grant in grants if grant.pattern == pattern]
    return min(roles, key=lambda role: role.rank) if roles else None


def _more_specific(a: _Grant, b: _Grant) -> bool:
    if a.exact != b.exact:
        return a.exact
    if a.literal_chars != b.literal_chars:
        return a.literal_chars > b.literal_chars
    return a.role.rank < b.role.rank  # tie: the least powerful wins


def identity_from_claims(
    claims: Mapping[str, Any], room: str, *, expires_at: float | None
) -> Identity:
    """The connection's identity in `room`. Raises `ClaimsError` (4401) or `NoAccess` (4403)."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise ClaimsError("token has no 'sub' (user id) claim")
    name, avatar, color = (_optional_text(claims, key) for key in ("name", "avatar", "color"))
    grants = parse_grants(claims.get("rooms"))
    # "*" as a room is the whole node (HTTP API): only a grant of exactly "*" covers it.
    role = role_for(grants, room) if room != ALL_ROOMS else exact_role(grants, ALL_ROOMS)
    if role is None:
        raise NoAccess(f"token of {sub[:40]!r} grants no access to this room")
    return Identity(
        user_id=sub, name=name, role=role, expires_at=expires_at, avatar=avatar, color=color
    )


def _optional_text(claims: Mapping[str, Any], key: str) -> str | None:
    """A string claim shown in presence (name, avatar, color), or None when absent."""
    value = claims.get(key)
    if value is not None and (not isinstance(value, str) or len(value) > 2048):
        raise ClaimsError(f"claim {key!r} must be a string of at most 2048 characters")
    return value
