"""`/api/webhooks...`: register, list and delete webhook endpoints; their delivery log.

Node-wide: the caller needs the owner role on every room ("*"). A new
endpoint's secret (`whsec_...`) is answered once, at creation. See docs/webhooks.md.
"""

from __future__ import annotations

import secrets
import time
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ysync.persistence.webhook_sql import Endpoint
from ysync.rooms.hooks import Role
from ysync.server.auth import ALL_ROOMS
from ysync.server.openapi import json_body, json_response, operation, path_param, query
from ysync.server.routing import ApiError, caller, extension_of, limit_of, node_of
from ysync.server.threads_api import read_json
from ysync.server.webhooks import EVENT_TYPES, WebhooksExtension, new_secret

WEBHOOK_ID = path_param("webhookId", "the endpoint's id (`wh_...`)")
_ENDPOINT = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "url": {"type": "string"},
        "events": {"type": "array", "items": {"type": "string"}},
        "created_at": {"type": "number"},
        "secret": {"type": "string", "description": "only when created"},
    },
}
_NEW = {
    "type": "object",
    "required": ["url"],
    "properties": {
        "url": {"type": "string", "format": "uri"},
        "events": {"type": "array", "items": {"enum": ["*", *EVENT_TYPES]}},
    },
}


async def _webhooks(request: Request) -> WebhooksExtension:
    node = node_of(request)
    await caller(request, ALL_ROOMS, Role.OWNER)
    return extension_of(node, WebhooksExtension)


def _url(value: object) -> str:
    if not isinstance(value, str) or len(value) > 2000:
        raise ApiError(400, "invalid_url", "url must be an http(s) URL")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError(400, "invalid_url", "url must be an http(s) URL with a host")
    return value


def _events(value: object) -> str:
    if value is None:
        return "*"
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, str) and v in ("*", *EVENT_TYPES) for v in value)
    ):
        raise ApiError(400, "invalid_events", f"events: a list of {', '.join(EVENT_TYPES)} or *")
    return "*" if "*" in value else ",".join(dict.fromkeys(value))


@operation(
    "Register a webhook endpoint",
    tag="webhooks",
    body=json_body(_NEW),
    responses={201: json_response("The endpoint, with its secret (shown only now)", _ENDPOINT)},
    errors=(400, 401, 403, 413, 503),
)
async def create_webhook(request: Request) -> Response:
    """Events are POSTed to `url`, signed with the returned `whsec_` secret."""
    webhooks = await _webhooks(request)
    body = await read_json(request, 16 * 1024)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", 'the body must be an object {"url": ...}')
    endpoint = Endpoint(
        "wh_" + secrets.token_urlsafe(12),
        _url(body.get("url")),
        new_secret(),
        _events(body.get("events")),
        time.time(),
    )
    await webhooks.store.put_endpoint(endpoint)
    await webhooks.refresh()
    return JSONResponse({**endpoint.public(), "secret": endpoint.secret}, status_code=201)


@operation(
    "The webhook endpoints",
    tag="webhooks",
    responses={200: json_response("The endpoints (no secrets)", {"type": "object"})},
    errors=(401, 403, 503),
)
async def list_webhooks(request: Request) -> Response:
    webhooks = await _webhooks(request)
    return JSONResponse({"webhooks": [e.public() for e in await webhooks.store.endpoints()]})


@operation(
    "Delete a webhook endpoint (and its pending deliveries)",
    tag="webhooks",
    parameters=[WEBHOOK_ID],
    responses={200: json_response("Deleted", {"type": "object"})},
    errors=(401, 403, 404, 503),
)
async def delete_webhook(request: Request) -> Response:
    webhooks = await _webhooks(request)
    endpoint_id = str(request.path_params["webhookId"])
    if not await webhooks.store.delete_endpoint(endpoint_id):
        raise ApiError(404, "webhook_not_found", f"no webhook {endpoint_id[:70]!r}")
    await webhooks.refresh()
    return JSONResponse({"deleted": endpoint_id})


@operation(
    "An endpoint's delivery log, newest first",
    tag="webhooks",
    parameters=[
        WEBHOOK_ID,
        query("limit", "entries (1-500, default 100)", {"type": "integer"}),
    ],
    responses={200: json_response("Deliveries", {"type": "object"})},
    errors=(400, 401, 403, 404, 503),
)
async def list_deliveries(request: Request) -> Response:
    """Each event: attempts, state (pending, delivered, failed), last status or error."""
    webhooks = await _webhooks(request)
    endpoint_id = str(request.path_params["webhookId"])
    limit = limit_of(request, 100, 500)
    if endpoint_id not in {e.id for e in await webhooks.store.endpoints()}:
        raise ApiError(404, "webhook_not_found", f"no webhook {endpoint_id[:70]!r}")
    found = await webhooks.store.deliveries(endpoint_id, limit)
    return JSONResponse({"deliveries": [d.public() for d in found]})


routes = [
    Route("/api/webhooks", list_webhooks, methods=["GET"]),
    Route("/api/webhooks", create_webhook, methods=["POST"]),
    Route("/api/webhooks/{webhookId}", delete_webhook, methods=["DELETE"]),
    Route("/api/webhooks/{webhookId}/deliveries", list_deliveries, methods=["GET"]),
]
