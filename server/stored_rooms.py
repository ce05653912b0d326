"""Every room in the store, a page at a time, for `GET /api/rooms` (`stored`, `next_cursor`).

Each entry: name, stored size (snapshot plus log), log entries, last change
(Unix time) and the clients connected to it on this node. Pages go by name;
the cursor is the last name of the previous page (base64url), so rooms
created meanwhile never shift a page.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from ysync.rooms.protocols import StoreError
from ysync.rooms.vocabulary import CloseCode, Refused
from ysync.server.routing import ApiError, limit_of

if TYPE_CHECKING:
    from ysync.server.app import Node

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class Page:
    prefix: str
    after: str  # the last name of the previous page ("" for the first)
    limit: int


def page_of(request: Request) -> Page:
    """The page a request asks for; a JSON 400 naming a bad parameter."""
    query = request.query_params
    limit = limit_of(request, DEFAULT_LIMIT, MAX_LIMIT)
    cursor = query.get("cursor", "")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        after = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, ValueError):
        raise ApiError(400, "bad_cursor", "cursor is not one this server gave") from None
    return Page(query.get("prefix", ""), after, limit)


def cursor_of(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")


async def listed(node: Node, page: Page) -> tuple[list[dict[str, Any]], str | None]:
    """One page of stored rooms and the cursor of the next (None: this was the last)."""
    try:
        infos = await node.store.list_rooms()
    except StoreError:
        raise Refused(CloseCode.TRY_AGAIN_LATER, "the store is unavailable") from None
    matching = sorted(
        (info for info in infos if info.name.startswith(page.prefix) and info.name > page.after),
        key=lambda info: info.name,
    )
    chunk = matching[: page.limit]
    loaded = node.registry.rooms
    rooms = [
        {
            "name": info.name,
            "size_bytes": info.size_bytes,
            "updates": info.updates,
            "last_change": info.last_change,
            "clients": len(loaded[info.name].peers) if info.name in loaded else 0,
        }
        for info in chunk
    ]
    more = len(matching) > page.limit
    return rooms, cursor_of(chunk[-1].name) if more else None
