"""The demo at `/` and the inspector at `/inspect`: static pages, no server state of their own.

The pages are bundled from `server/web/src` into `server/web/dist` (committed, shipped as
package data: running the server needs no Node.js; rebuild with
`npm --prefix server/web run build`). They talk to ysync like any client: the demo joins
a room with the y-websocket provider; the inspector reads `/api/rooms` and joins the room
it shows without an awareness state. With authentication on they ask for a token, or,
with `--demo-dev-tokens`, get one from `POST /demo/token`.

`DemoExtension` serves them (`create_app` adds it unless `--no-demo`). They are
HTTP-only `Route`s, so they never shadow the WebSocket route, whatever the
`--path-prefix`.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ysync.rooms.extensions import Extension
from ysync.rooms.hooks import Role
from ysync.server.settings import Settings

log = logging.getLogger("ysync.demo")

Endpoint = Callable[[Request], Awaitable[Response]]

DIST = Path(__file__).parent / "web" / "dist"
ASSETS = {"demo.js": "text/javascript", "inspect.js": "text/javascript", "style.css": "text/css"}
PAGES = {"/": "index.html", "/inspect": "inspect.html"}
DEV_TOKEN_SECONDS = 3600
MAX_NAME = 40

# The pages load only their own scripts and styles; colors are set in style attributes.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: https:; connect-src 'self' ws: wss:; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True, slots=True)
class _Asset:
    body: bytes
    media_type: str
    etag: str


def _load(name: str, media_type: str) -> _Asset:
    path = DIST / name
    try:
        body = path.read_bytes()
    except FileNotFoundError:
        raise RuntimeError(
            f"the demo bundle is missing ({path}): build it with `npm --prefix server/web run "
            "build`, or run with --no-demo"
        ) from None
    return _Asset(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:16] + '"')


def routes(settings: Settings, features: Sequence[str] = ()) -> list[Route]:
    """The demo's routes; reads the bundle now, so a missing one fails at start-up.

    `features` are the server parts the optional bits of the pages need (`comments`, `versions`);
    a part whose feature is not listed stays hidden.
    """
    assets = {name: _load(name, kind) for name, kind in ASSETS.items()}
    config = json.dumps(
        {
            "auth": settings.auth,
            "devTokens": settings.demo_dev_tokens,
            "pathPrefix": settings.path_prefix,
            "features": list(features),
        }
    ).replace("<", "\\u003c")  # never ends the <script> it sits in

    async def asset(request: Request) -> Response:
        found = assets.get(request.path_params["name"])
        if found is None:
            raise HTTPException(404, "no such demo asset")
        headers = {
            "ETag": found.etag,
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
        }
        if request.headers.get("if-none-match") == found.etag:
            return Response(status_code=304, headers=headers)
        return Response(found.body, media_type=found.media_type, headers=headers)

    found = [
        Route(path, _page(_load(name, "text/html").body.decode().replace("%CONFIG%", config)))
        for path, name in PAGES.items()
    ]
    found.append(Route("/demo/assets/{name}", asset))
    if settings.demo_dev_tokens:
        log.warning(
            "--demo-dev-tokens: POST /demo/token gives anyone who can reach this port a "
            "token for every room, as owner if asked; never use it in production"
        )
        found.append(Route("/demo/token", _dev_token_endpoint(settings), methods=["POST"]))
    return found


def _page(template: str) -> Endpoint:
    async def page(request: Request) -> Response:
        # <base href> is the app's root, so the pages work mounted under a prefix too.
        root = request.scope.get("root_path", "").rstrip("/") + "/"
        body = template.replace("%BASE%", html.escape(root, quote=True))
        return HTMLResponse(body, headers=_PAGE_HEADERS)

    return page


def _dev_token_endpoint(settings: Settings) -> Endpoint:
    roles = [role.value for role in Role]

    async def endpoint(request: Request) -> Response:
        """`{"role": ..., "name": ...}` (both optional) -> a token for every room."""
        try:
            body = await request.json()
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else {}
        role = body.get("role", Role.EDITOR.value)
        if role not in roles:
            raise HTTPException(400, f"role must be one of {', '.join(roles)}")
        name = body.get("name")
        name = name.strip()[:MAX_NAME] if isinstance(name, str) and name.strip() else None
        return JSONResponse(dev_token(settings, role, name))

    return endpoint


def dev_token(settings: Settings, role: str, name: str | None = None) -> dict[str, Any]:
    """`{"token", "expires_at", "role"}`: an HS256 token that maps every room to `role`."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "demo-" + secrets.token_hex(4),
        "rooms": {"*": role},
        "iat": now,
        "exp": now + DEV_TOKEN_SECONDS,
    }
    if name:
        claims["name"] = name
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    token = jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
    return {"token": token, "expires_at": claims["exp"], "role": role}


class DemoExtension(Extension):
    """The demo and the inspector, as an extension serving HTTP routes only."""

    def __init__(self, settings: Settings, features: Sequence[str] = ()) -> None:
        # Reads the bundle now: a missing one fails here.
        self._routes = routes(settings, features)

    def routes(self) -> Sequence[Any]:
        return self._routes
