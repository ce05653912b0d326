"""The OpenAPI document covers every endpoint, and the API answers fuzzed requests without a 5xx.

The fuzzing (schemathesis, property-based from `/openapi.json`) runs against a
real `ysync serve` process, with auth off and with `--auth jwt` (an owner
token, a viewer token, none): every answer must be a JSON answer below 500.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from starlette.routing import Route

from ysync.server import create_app
from ysync.server.openapi import OPENAPI
from ysync.server.settings import Settings

from support import authtokens as tk
from support.servers import YsyncProcess

# Streams (SSE) never end by themselves: their framing has its own tests.
STREAMING = r".*/events$"
DESCRIBED = ("/api", "/healthz", "/readyz", "/metrics", "/openapi.json")


def test_every_http_endpoint_is_described() -> None:
    app = create_app(Settings(store="memory://"))
    missing = [
        route.path
        for route in app.router.routes
        if isinstance(route, Route)
        and route.path.startswith(DESCRIBED)
        and route.path != "/openapi.json"
        and getattr(route.endpoint, OPENAPI, None) is None
    ]
    assert not missing, f"add @operation(...) to the endpoints of {missing}"


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YsyncProcess]:
    with YsyncProcess(log_path=tmp_path_factory.mktemp("api") / "ysync.log") as process:
        yield process


@pytest.fixture(scope="module")
def jwt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YsyncProcess]:
    log = tmp_path_factory.mktemp("api-jwt") / "ysync.log"
    with YsyncProcess(*tk.JWT_FLAGS, log_path=log) as process:
        yield process


def test_the_document_is_valid_openapi(open_server: YsyncProcess) -> None:
    document = httpx.get(open_server.http_url + "/openapi.json", timeout=10).json()
    assert document["openapi"].startswith("3.1")
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/api/rooms", "/api/rooms/{room}/events"}


def fuzz(server: YsyncProcess, token: str | None, examples: int) -> None:
    schema = schemathesis.openapi.from_url(server.http_url + "/openapi.json")
    schema = schema.exclude(path_regex=STREAMING)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def answers_without_a_server_error(case: schemathesis.Case) -> None:
            response = case.call(base_url=server.http_url, headers=headers, timeout=10)
            label = f"{case.method} {case.formatted_path}"
            assert response.status_code < 500 or response.status_code == 503, (
                f"{label} -> {response.status_code}: {response.text[:300]}"
            )
            if response.status_code >= 400:
                body = response.json()
                assert set(body) >= {"error", "code"}, f"{label}: error body {body}"

        answers_without_a_server_error()


def test_fuzzed_requests_never_get_a_server_error_with_auth_off(open_server: YsyncProcess) -> None:
    fuzz(open_server, None, examples=40)


@pytest.mark.parametrize("who", ["owner", "viewer", "nobody"])
def test_fuzzed_requests_never_get_a_server_error_with_auth_on(
    jwt_server: YsyncProcess, who: str
) -> None:
    token = None if who == "nobody" else tk.token(sub=who, rooms={"*": who})
    fuzz(jwt_server, token, examples=15)
