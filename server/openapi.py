"""The HTTP API's OpenAPI 3.1 document, served at `/openapi.json`.

Each endpoint describes itself where it is written, with `@operation(...)`;
`document(routes)` gathers them (`tests/test_openapi.py` fails when an `/api`
route has no description, and fuzzes the API from this document):

    @operation(
        "List the rooms",
        tag="rooms",
        parameters=[query("prefix", "only rooms whose name starts with this")],
        responses={200: json_response("The rooms", {"type": "object"})},
    )
    async def list_rooms(request: Request) -> Response: ...

Every error answer is JSON `{"error": message, "code": machine-readable}`
(`ERROR` below), with 400 for malformed input, 401/403 for authentication and
permission, 404 for unknown ids, 409 for conflicts, 413 for sizes, 429 and 503.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from ysync import __version__

F = TypeVar("F", bound=Callable[..., Any])
OPENAPI = "__openapi__"  # the attribute `operation` sets on an endpoint

ERROR = {
    "type": "object",
    "required": ["error", "code"],
    "properties": {
        "error": {"type": "string", "description": "what was wrong, for people"},
        "code": {"type": "string", "description": "what was wrong, for programs"},
    },
}
_ERRORS = {
    400: "Malformed request: the message names the field",
    401: "Token missing, invalid or expired",
    403: "The token's role does not allow this",
    404: "No such thing",
    409: "Conflicts with the current state",
    413: "Too large",
    429: "Rate limited",
    503: "Not ready (starting, draining, or the store is failing)",
}


def operation(
    summary: str,
    *,
    tag: str,
    parameters: Sequence[Mapping[str, Any]] = (),
    body: Mapping[str, Any] | None = None,
    responses: Mapping[int, Mapping[str, Any]],
    errors: Iterable[int] = (400, 401, 403),
    description: str = "",
) -> Callable[[F], F]:
    """Describe an endpoint (see the module doc); `errors` lists the error statuses it gives."""

    def describe(endpoint: F) -> F:
        spec: dict[str, Any] = {
            "summary": summary,
            "tags": [tag],
            "operationId": endpoint.__name__,
            "parameters": list(parameters),
            "responses": {
                **{str(status): dict(answer) for status, answer in responses.items()},
                **{str(status): error_response(_ERRORS[status]) for status in errors},
            },
        }
        if description or endpoint.__doc__:
            spec["description"] = description or (endpoint.__doc__ or "").strip()
        if body is not None:
            spec["requestBody"] = dict(body)
        setattr(endpoint, OPENAPI, spec)
        return endpoint

    return describe


def path_param(
    name: str, description: str, schema: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": dict(schema or {"type": "string", "minLength": 1}),
    }


ROOM = path_param(
    "room",
    "the room's name; a `/` in it is written `%2F`",
    {"type": "string", "minLength": 1, "maxLength": 512, "pattern": "^[^\\x00-\\x1f\\x7f]+$"},
)


def query(name: str, description: str, schema: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": dict(schema or {"type": "string"}),
    }


def json_response(description: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": dict(schema)}}}


def json_body(schema: Mapping[str, Any], *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": dict(schema)}}}


def error_response(description: str) -> dict[str, Any]:
    return json_response(description, {"$ref": "#/components/schemas/Error"})


def described(routes: Iterable[BaseRoute]) -> list[tuple[str, str, dict[str, Any]]]:
    """(path, method, operation) for every described `Route`."""
    found = []
    for route in routes:
        if not isinstance(route, Route):
            continue
        spec = getattr(route.endpoint, OPENAPI, None)
        if spec is None:
            continue
        path = re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", route.path)
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                found.append((path, method.lower(), spec))
    return found


def document(routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI document of the described routes."""
    paths: dict[str, dict[str, Any]] = {}
    for path, method, spec in described(routes):
        paths.setdefault(path, {})[method] = spec
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ysync",
            "version": __version__,
            "description": "The HTTP API of a ysync node. With `--auth jwt`, send the same JWT "
            "as WebSocket connections in `Authorization: Bearer <token>`.",
        },
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
        "security": [{"bearer": []}, {}],
    }


async def openapi_json(request: Request) -> JSONResponse:
    """This document."""
    return JSONResponse(document(request.app.router.routes))
