"""The document over HTTP against real nodes: JSON operations a connected JS client sees,
an invalid list that changes nothing, binary updates, formats, the stored-room listing,
permissions from the token, and an edit POSTed to one node reaching a client of another."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from pycrdt import Doc, Text

from support import authtokens as tk
from support.aio import run
from support.jsclient import JSClient
from support.servers import RedisProcess, YsyncProcess


def doc_path(room: str, sub: str = "doc") -> str:
    return f"/api/rooms/{room.replace('/', '%2F')}/{sub}"


async def joined(client: JSClient, server: YsyncProcess, room: str) -> JSClient:
    await client.call("connect", url=server.ws_url, room=room)
    await client.call("wait_synced")
    return client


def test_json_operations_reach_a_connected_js_client_and_a_bad_list_changes_nothing(
    server: YsyncProcess, js_clients_dir: Path
) -> None:
    room = "docs/ops"

    async def main() -> None:
        async with (
            JSClient.start(js_clients_dir) as js,
            httpx.AsyncClient(base_url=server.http_url, timeout=10) as api,
        ):
            await joined(js, server, room)
            await js.call("text_insert", name="t", index=0, value="hello")
            await polled(  # the JS edit reaches the server before the index refers to it
                lambda: api.get(doc_path(room)), lambda r: r.json()["content"].get("t") == "hello"
            )
            ops = [
                {"op": "insert", "root": "t", "index": 5, "text": " world"},
                {"op": "set", "root": "m", "key": "title", "value": "Plan"},
                {"op": "insert", "root": "a", "index": 0, "values": [1, 2]},
            ]
            answer = await api.post(doc_path(room), json={"ops": ops})
            assert answer.status_code == 200, answer.text
            assert base64.b64decode(answer.json()["state_vector"])
            await js.call("wait_for", name="t", kind="text", equals="hello world")
            await js.call("wait_for", name="m", kind="map", equals={"title": "Plan"})
            await js.call("wait_for", name="a", kind="array", equals=[1, 2])

            before = (await api.get(doc_path(room))).json()
            bad = [
                {"op": "set", "root": "m", "key": "title", "value": "changed?"},
                {"op": "insert", "root": "m", "index": 0, "text": "a map is no text"},
            ]
            refused = await api.post(doc_path(room), json={"ops": bad})
            assert refused.status_code == 400
            assert refused.json()["code"] == "invalid_ops"
            assert "ops[1]" in refused.json()["error"] and "map" in refused.json()["error"]
            assert (await api.get(doc_path(room))).json() == before
            state = await js.call("state", names={"m": "map"})
            assert state["values"]["m"] == {"title": "Plan"}

    run(main())


def test_formats_state_vectors_and_binary_updates(server: YsyncProcess) -> None:
    room = "docs/formats"
    with httpx.Client(base_url=server.http_url, timeout=10) as api:
        nodes = [{"tag": "paragraph", "children": [{"text": "hi"}]}]
        assert (
            api.post(
                doc_path(room),
                json={"ops": [{"op": "replace", "root": "x", "type": "xml", "value": nodes}]},
            ).status_code
            == 200
        )
        body = api.get(doc_path(room)).json()
        assert body["types"] == {"x": "xml"}
        assert body["content"]["x"] == [
            {"tag": "paragraph", "attributes": {}, "children": [{"text": "hi"}]}
        ]
        html = api.get(doc_path(room), params={"format": "html"}).json()
        assert html["content"]["x"] == "<paragraph>hi</paragraph>"

        # A binary update made offline, POSTed as octet-stream, then read back as a diff.
        mine: Doc[Any] = Doc()
        mine.apply_update(api.get(doc_path(room), params={"format": "update"}).content)
        vector = api.get(doc_path(room, "state-vector")).json()["state_vector"]
        mine.get("t", type=Text).insert(0, "binary")
        update = mine.get_update(base64.b64decode(vector))
        posted = api.post(
            doc_path(room), content=update, headers={"content-type": "application/octet-stream"}
        )
        assert posted.status_code == 200, posted.text
        assert api.get(doc_path(room)).json()["content"]["t"] == "binary"
        diff = api.get(doc_path(room), params={"format": "update", "stateVector": vector})
        assert diff.headers["content-type"] == "application/octet-stream"
        fresh: Doc[Any] = Doc()
        fresh.apply_update(diff.content)
        assert str(fresh.get("t", type=Text)) == "binary"

        garbage = api.post(
            doc_path(room),
            content=b"\xff\x01not yjs",
            headers={"content-type": "application/octet-stream"},
        )
        assert garbage.status_code == 400 and garbage.json()["code"] == "invalid_update"
        assert api.get(doc_path(room), params={"stateVector": "%%%"}).json()["code"] == (
            "invalid_state_vector"
        )
        assert api.get(doc_path(room), params={"format": "pdf"}).status_code == 400
        assert api.post(doc_path(room), content=b"{not json").json()["code"] == "invalid_json"


def test_the_listing_pages_every_stored_room_by_name_with_a_prefix(tmp_path: Path) -> None:
    with (
        YsyncProcess(store=f"sqlite:///{tmp_path}/list.db") as server,
        httpx.Client(base_url=server.http_url, timeout=10) as api,
    ):
        for name in ("list/a", "list/b", "list/c", "other"):
            op = {"op": "set", "root": "m", "key": "k", "value": name}
            assert api.post(doc_path(name), json={"ops": [op]}).status_code == 200

        def names(**params: Any) -> tuple[list[str], str | None]:
            body = api.get("/api/rooms", params=params).json()
            return [room["name"] for room in body["stored"]], body["next_cursor"]

        run(
            polled(  # committed within the flush window
                lambda: asyncio.to_thread(api.get, "/api/rooms"),
                lambda r: len(r.json()["stored"]) == 4,
            )
        )
        first, cursor = names(prefix="list/", limit=2)
        assert first == ["list/a", "list/b"] and cursor is not None
        rest, end = names(prefix="list/", limit=2, cursor=cursor)
        assert rest == ["list/c"] and end is None
        room = api.get("/api/rooms", params={"prefix": "other"}).json()["stored"][0]
        assert room["size_bytes"] > 0 and room["last_change"] > 0 and room["clients"] == 0
        assert api.get("/api/rooms", params={"limit": "0"}).json()["code"] == "invalid_limit"
        assert api.get("/api/rooms", params={"cursor": "%%"}).status_code == 400


def test_viewers_read_editors_write() -> None:
    with (
        YsyncProcess(*tk.JWT_FLAGS) as server,
        httpx.Client(base_url=server.http_url, timeout=10) as api,
    ):
        room = "docs/perms"
        viewer = {"authorization": "Bearer " + tk.token("vi", {room: "viewer"})}
        editor = {"authorization": "Bearer " + tk.token("ed", {room: "editor"})}
        op = {"ops": [{"op": "set", "root": "m", "key": "k", "value": 1}]}
        assert api.post(doc_path(room), json=op, headers=viewer).status_code == 403
        assert api.get(doc_path(room), headers=viewer).json()["content"] == {}
        assert api.post(doc_path(room), json=op, headers=editor).status_code == 200
        assert api.get(doc_path(room), headers=viewer).json()["content"] == {"m": {"k": 1}}
        assert api.get(doc_path(room)).status_code == 401
        assert api.get(doc_path("elsewhere"), headers=editor).status_code == 403


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[list[YsyncProcess]]:
    with RedisProcess() as redis, ExitStack() as stack:
        store = f"sqlite:///{tmp_path}/shared.db"
        nodes = [YsyncProcess("--redis-url", redis.url, store=store) for _ in range(2)]
        for node in nodes:
            stack.enter_context(node)
        yield nodes


def test_an_edit_posted_to_one_node_reaches_a_client_of_the_other(
    two_nodes: list[YsyncProcess], js_clients_dir: Path
) -> None:
    a, b = two_nodes
    room = "docs/cluster"

    async def main() -> None:
        async with (
            JSClient.start(js_clients_dir) as js,
            httpx.AsyncClient(base_url=b.http_url, timeout=10) as api,
        ):
            await joined(js, a, room)
            await js.call("map_set", name="m", key="from", value="js")
            # Node B loads the room for the request and catches up with node A first.
            await polled(
                lambda: api.get(doc_path(room)),
                lambda r: r.json()["content"].get("m") == {"from": "js"},
            )
            op = {"op": "set", "root": "m", "key": "from_http", "value": "node b"}
            assert (await api.post(doc_path(room), json={"ops": [op]})).status_code == 200
            await js.call(
                "wait_for", name="m", kind="map", equals={"from": "js", "from_http": "node b"}
            )

    run(main())


async def polled(request: Any, done: Any, attempts: int = 50) -> Any:
    """Repeat `request()` (at most `attempts` times, 0.1 s apart) until `done(answer)`."""
    for _ in range(attempts):
        answer = await request()
        if done(answer):
            return answer
        await asyncio.sleep(0.1)
    raise AssertionError(f"not done after {attempts} attempts: {answer.text}")
