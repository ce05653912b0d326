"""HTTP endpoints: health, readiness, metrics and the room API. Every answer is JSON.

`/healthz`, `/readyz` and `/metrics` are open (load balancers and Prometheus call
them; they name no room or user). `/api/...` names rooms and users: with
authentication on it needs an owner's token (`ysync.server.auth.authorize_api`);
refusals are JSON 401/403.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ysync import __version__
from ysync.rooms.hooks import Role
from ysync.rooms.room import Room
from ysync.server import stored_rooms
from ysync.server.auth import ALL_ROOMS
from ysync.server.openapi import ROOM, json_response, operation, query
from ysync.server.routing import ApiError, caller, node_of, room_of

if TYPE_CHECKING:
    from ysync.server.app import Node


@operation(
    "Is the process alive",
    tag="health",
    responses={200: json_response("Alive", {"type": "object"})},
    errors=(),
)
async def healthz(request: Request) -> Response:
    """Process alive and serving HTTP."""
    return JSONResponse({"status": "ok"})


_READINESS = {
    "type": "object",
    "required": ["ready", "problems"],
    "properties": {"ready": {"type": "boolean"}, "problems": {"type": "array"}},
}


@operation(
    "Does the node take new clients",
    tag="health",
    responses={
        200: json_response("Ready", _READINESS),
        503: json_response("Not ready, and why", _READINESS),
    },
    errors=(),
)
async def readyz(request: Request) -> Response:
    """Ready for new clients: started, not draining, store writes succeeding."""
    node: Node | None = request.app.state.ysync
    problems = ["not started"] if node is None else node.readiness_problems()
    body = {"ready": not problems, "problems": problems}
    return JSONResponse(body, status_code=200 if not problems else 503)


def _room_summary(node: Node, room: Room, pending: dict[str, int]) -> dict[str, Any]:
    states = room.peers.values()
    return {
        "name": room.name,
        "clients": len(room.peers),
        "read_only": sum(1 for state in states if state.read_only),
        "syncing": sum(1 for state in states if not state.synced),
        "awareness": len(room.awareness),
        "idle": room.is_empty,  # loaded, no clients: unloads after --unload-grace
        "unload_in": node.registry.unload_in(room.name),
        "pending_bytes": pending.get(room.name, 0),
        # Updates its document holds but cannot integrate: a dependency is missing.
        "pending_updates": len(room.pending),
    }


@operation(
    "This node, the rooms loaded on it, and every room in the store",
    tag="rooms",
    parameters=[
        query("prefix", "only rooms whose name starts with this"),
        query("cursor", "`next_cursor` of the previous page"),
        query("limit", "stored rooms per page (1-1000, default 100)", {"type": "integer"}),
    ],
    responses={200: json_response("The node and its rooms", {"type": "object"})},
    errors=(400, 401, 403, 503),
)
async def list_rooms(request: Request) -> Response:
    """This node and the rooms loaded on it (clients, presence, idle, uncommitted bytes),
    and in `stored` a page of every room in the store, by name."""
    node = node_of(request)
    await caller(request, ALL_ROOMS, Role.OWNER)
    page = stored_rooms.page_of(request)
    pending = node.update_log.pending_bytes_by_room()
    rooms = [
        _room_summary(node, room, pending)
        for room in node.registry.rooms.values()
        if room.name.startswith(page.prefix)
    ]
    stored, next_cursor = await stored_rooms.listed(node, page)
    problems = node.readiness_problems()
    now = time.time()
    about = {
        "id": node.bus.node_id,
        "pid": os.getpid(),
        "version": __version__,
        "started_at": node.started_at,
        "uptime_seconds": round(now - node.started_at, 3),
        "ready": not problems,
        "problems": problems,
        "draining": node.draining,
        "store_healthy": node.update_log.healthy,
        "pending_bytes": node.update_log.pending_bytes,
        "store": node.store.describe(),
        "bus": node.bus.describe(),
        "redis": _redis_state(node),
        "loading": node.registry.loading,
    }
    return JSONResponse(
        {
            "node": about,
            "rooms": rooms,
            "connections": node.endpoint.connections,
            "stored": stored,
            "next_cursor": next_cursor,
        }
    )


@operation(
    "One loaded room and its connections",
    tag="rooms",
    parameters=[ROOM],
    responses={200: json_response("The room", {"type": "object"})},
    errors=(400, 401, 403, 404, 503),
)
async def room_detail(request: Request) -> Response:
    """One loaded room: its health and every connection (who, role, from where, since)."""
    node = node_of(request)
    name = room_of(request)
    await caller(request, name, Role.OWNER)
    room = node.registry.rooms.get(name)
    if room is None:
        raise ApiError(404, "room_not_loaded", "room not loaded on this node")
    body = _room_summary(node, room, node.update_log.pending_bytes_by_room())
    body["document_bytes"] = room.document_bytes  # encodes the document once
    try:
        async with asyncio.timeout(1.0):
            body["other_nodes"] = await node.bus.peers_holding(name)
    except TimeoutError:
        body["other_nodes"] = None
    now = time.time()
    connections = []
    for session in node.endpoint.sessions(name):
        connection = session.connection
        frames, queued = connection.sender.queued
        identity = session.identity  # per document for Hocuspocus sockets
        state = room.peers[session]
        connections.append(
            {
                "id": connection.id,
                "user": identity.user_id,
                "name": identity.name,
                "role": identity.role.value,
                "read_only": state.read_only,
                "client": connection.client,
                "connected_at": connection.connected_at,
                "connected_seconds": round(now - connection.connected_at, 3),
                "synced": state.synced,
                "direct_send": connection.sender.direct,
                "queued_frames": frames,
                "queued_bytes": queued,
                "closing": connection.closing,
            }
        )
    body["connections"] = connections
    return JSONResponse(body)


def _redis_state(node: Node) -> str | None:
    """ "connected"/"disconnected" with a Redis bus; None on a single node."""
    if node.bus.alone:
        return None
    return "connected" if node.bus.health() is None else "disconnected"


routes = [
    Route("/healthz", healthz),
    Route("/readyz", readyz),
    Route("/api/rooms", list_rooms),
]
room_detail_route = Route("/api/rooms/{room:path}", room_detail)
