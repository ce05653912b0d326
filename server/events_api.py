"""`GET /api/rooms/{room}/events`: a room's event feed as Server-Sent Events.

Each event is `id: <node>-<n>`, `event: <type>` (e.g. `presence.joined`),
`data: {"type", "room", "data", "at"}`. A subscriber that reconnects with
`Last-Event-ID` (browsers' EventSource does it by itself) first gets what it
missed, or a `reset` event carrying the room's current state when that cannot
be told (the id is from another node, or older than the replay buffer). One
that stops reading is cut off at `--event-queue` events (the stream ends with an
`error` event) and never holds more memory than that. Readers of the room
(viewer and up) may follow it; with `--auth none`, anyone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.routing import Route

from ysync.presence.events import Subscription
from ysync.rooms.hooks import Role
from ysync.server.openapi import ROOM, operation
from ysync.server.routing import caller, node_of, room_of

PING_SECONDS = 15  # a comment line now and then: proxies close silent streams
RETRY_MS = 1000  # how long a browser's EventSource waits before reconnecting


@operation(
    "Follow a room's events (Server-Sent Events)",
    tag="events",
    parameters=[
        ROOM,
        {
            "name": "Last-Event-ID",
            "in": "header",
            "required": False,
            "description": "resume after this event",
            "schema": {"type": "string"},
        },
    ],
    responses={200: {"description": "The event stream", "content": {"text/event-stream": {}}}},
    errors=(400, 401, 403, 503),
)
async def room_events(request: Request) -> EventSourceResponse:
    """The room's events from now on (after `Last-Event-ID` when given)."""
    room = room_of(request)
    await caller(request, room, Role.VIEWER)
    node = node_of(request)
    last = request.headers.get("last-event-id") or request.query_params.get("lastEventId")
    subscription = await node.events.subscribe(room, last)
    return EventSourceResponse(_stream(subscription), ping=PING_SECONDS, send_timeout=30)


async def _stream(subscription: Subscription) -> AsyncIterator[ServerSentEvent]:
    try:
        # At once, so the response starts now (EventSource reports `open`), with the
        # delay a browser waits before it reconnects.
        yield ServerSentEvent(comment="ysync event feed", retry=RETRY_MS)
        async for delivered in subscription:
            event = delivered.event
            body = {"type": event.type, "room": event.room, "data": event.data, "at": event.at}
            yield ServerSentEvent(
                data=orjson.dumps(body).decode(), event=event.type, id=delivered.id
            )
        if subscription.closed not in (None, "closed"):
            yield ServerSentEvent(
                data=orjson.dumps({"error": subscription.closed}).decode(), event="error"
            )
    finally:
        subscription.close()


routes = [Route("/api/rooms/{room}/events", room_events)]
