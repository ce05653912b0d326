"""The demo's HTTP routes (ysync.server.demo): pages, assets, --no-demo, dev tokens.

No browser here (tests/test_demo_browser.py drives one) and no lifespan: the routes
serve files and sign tokens, they touch no room.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from ysync.server import create_app
from ysync.server.auth import JwtVerifier
from ysync.server.settings import Settings

from support.authtokens import SECRET

JWT = {"auth": "jwt", "jwt_secret": SECRET}


class Client:
    """Requests straight to the ASGI app (httpx's ASGI transport runs no lifespan)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://ysync") as http:
                return await http.request(method, path, **kwargs)

        return asyncio.run(send())

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)


def client(**settings: Any) -> Client:
    return Client(create_app(Settings(store="memory://", **settings)))


def page_config(html: str) -> dict[str, object]:
    found = re.search(r'<script id="ysync-config" type="application/json">(.*?)</script>', html)
    assert found is not None
    return json.loads(found.group(1))


@pytest.mark.parametrize(("path", "script"), [("/", "demo.js"), ("/inspect", "inspect.js")])
def test_pages_are_served_with_their_config_and_a_strict_policy(path: str, script: str) -> None:
    response = client().get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert '<base href="/">' in response.text
    assert f'src="demo/assets/{script}"' in response.text
    assert page_config(response.text) == {
        "auth": "none",
        "devTokens": False,
        "pathPrefix": "/",
        "features": ["comments", "versions"],  # both APIs are always served
    }


def test_assets_have_their_type_and_an_etag() -> None:
    http = client()
    for name, kind in [("demo.js", "text/javascript"), ("style.css", "text/css")]:
        response = http.get(f"/demo/assets/{name}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(kind)
        again = http.get(
            f"/demo/assets/{name}", headers={"If-None-Match": response.headers["etag"]}
        )
        assert again.status_code == 304
    missing = http.get("/demo/assets/index.html")  # only the bundle, not any file in dist/
    assert missing.status_code == 404
    assert missing.json() == {"error": "no such demo asset", "code": "not_found"}


def test_no_demo_leaves_the_paths_to_the_json_404() -> None:
    http = client(demo=False)
    for path in ("/", "/inspect", "/demo/assets/demo.js"):
        response = http.get(path)
        assert response.status_code == 404
        assert "error" in response.json()


def test_mounted_under_a_prefix_the_pages_point_below_it() -> None:
    collab = create_app(Settings(store="memory://", path_prefix="/ws/"))
    host = Starlette(routes=[Mount("/collab", app=collab)])
    response = Client(host).get("/collab/")
    assert '<base href="/collab/">' in response.text
    assert page_config(response.text)["pathPrefix"] == "/ws/"


def test_the_dev_token_endpoint_exists_only_with_its_flag() -> None:
    assert client(**JWT).post("/demo/token", json={}).status_code == 404
    assert page_config(client(**JWT).get("/").text)["auth"] == "jwt"


def test_dev_tokens_are_valid_tokens_for_every_room() -> None:
    settings = Settings(
        store="memory://", demo_dev_tokens=True, jwt_audience="demo", jwt_issuer="me", **JWT
    )
    http = Client(create_app(settings))
    assert page_config(http.get("/").text)["devTokens"] is True
    body = http.post("/demo/token", json={"role": "owner", "name": "  Ada  "}).json()
    claims = JwtVerifier.from_settings(settings).verify(body["token"])
    assert claims["rooms"] == {"*": "owner"}
    assert claims["name"] == "Ada"
    assert claims["sub"].startswith("demo-")
    assert (claims["aud"], claims["iss"]) == ("demo", "me")
    assert claims["exp"] == body["expires_at"]
    editor = JwtVerifier.from_settings(settings).verify(http.post("/demo/token").json()["token"])
    assert editor["rooms"] == {"*": "editor"} and "name" not in editor
    refused = http.post("/demo/token", json={"role": "admin"})
    assert refused.status_code == 400
    assert "role must be one of" in refused.json()["error"]
