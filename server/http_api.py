"""HTTP endpoints: health, readiness and the room API. Every answer is JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from ysync.server.app import Node


def _node(request: Request) -> Node:
    node: Node | None = getattr(request.app.state, "ysync", None)
    if node is None:
        raise HTTPException(503, "ysync is not started: run the app's lifespan")
    return node


async def healthz(request: Request) -> Response:
    """Process alive and serving HTTP."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready for new clients: started, not draining, store writes succeeding."""
    node = getattr(request.app.state, "ysync", None)
    problems = ["not started"] if node is None else node.readiness_problems()
    body = {"ready": not problems, "problems": problems}
    return JSONResponse(body, status_code=200 if not problems else 503)


async def list_rooms(request: Request) -> Response:
    """Rooms loaded on this node with their connected clients."""
    node = _node(request)
    rooms = [
        {"name": room.name, "clients": len(room.peers), "awareness": len(room.awareness)}
        for room in node.registry.rooms.values()
    ]
    return JSONResponse({"rooms": rooms, "connections": node.endpoint.connections})


async def metrics(request: Request) -> Response:
    """Prometheus exposition of this node (all workers' with --workers N)."""
    body, content_type = _node(request).metrics.render()
    return Response(body, media_type=content_type)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's HTTP errors (404, 405, ...) as JSON instead of plain text."""
    status = getattr(exc, "status_code", 500)
    return JSONResponse({"error": getattr(exc, "detail", "internal error")}, status_code=status)


routes = [
    Route("/healthz", healthz),
    Route("/readyz", readyz),
    Route("/api/rooms", list_rooms),
    Route("/metrics", metrics),
]
