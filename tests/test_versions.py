"""Versions against real nodes: three JS clients on two nodes (real redis-server, one SQLite
store) converge to v1 after a restore (Text, Map, Array, and an XmlFragment y-prosemirror
wrote); the restore is a version; a client offline meanwhile merges its edit on top; the
API's refusals; the diff of the two versions names what changed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import authtokens as tk
from support.aio import run
from support.jsclient import JSClient
from support.servers import RedisProcess, YsyncProcess

ROOM = "team/spec"
VERSIONS = "/api/rooms/team%2Fspec/versions"
PM_V1 = {
    "type": "doc",
    "content": [
        {"type": "heading", "attrs": {"level": 1}, "content": [{"type": "text", "text": "Title"}]},
        {
            "type": "paragraph",
            "content": [
                {"type": "text", "text": "bold", "marks": [{"type": "strong", "attrs": {}}]},
                {"type": "text", "text": " plain"},
            ],
        },
    ],
}
KINDS = {"t": "text", "m": "map", "a": "array", "pm": "xml"}


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[list[YsyncProcess]]:
    with RedisProcess() as redis, ExitStack() as stack:
        store = f"sqlite:///{tmp_path}/shared.db"
        nodes = [YsyncProcess("--redis-url", redis.url, store=store) for _ in range(2)]
        for node in nodes:
            stack.enter_context(node)
        yield nodes


async def joined(client: JSClient, server: YsyncProcess) -> JSClient:
    await client.call("connect", url=server.ws_url, room=ROOM)
    await client.call("wait_synced")
    return client


async def converged(clients: list[JSClient], values: dict[str, Any]) -> None:
    for client in clients:
        for name, value in values.items():
            await client.call("wait_for", name=name, kind=KINDS[name], equals=value)


def test_three_clients_on_two_nodes_converge_to_v1_and_an_offline_edit_survives(
    two_nodes: list[YsyncProcess], js_clients_dir: Path
) -> None:
    a, b = two_nodes

    async def main() -> None:
        async with (
            JSClient.start(js_clients_dir) as c1,
            JSClient.start(js_clients_dir) as c2,
            JSClient.start(js_clients_dir) as c3,
            httpx.AsyncClient(base_url=a.http_url, timeout=20) as api_a,
            httpx.AsyncClient(base_url=b.http_url, timeout=20) as api_b,
        ):
            for client, node in ((c1, a), (c2, a), (c3, b)):
                await joined(client, node)
            await c1.call("text_insert", name="t", index=0, value="version one")
            await c1.call("map_set", name="m", key="k", value=1)
            await c1.call("array_push", name="a", values=[1, 2])
            await c1.call("prosemirror_set", name="pm", doc=PM_V1)
            v1_values = (await c1.call("state", names=KINDS))["values"]
            await converged([c1, c2, c3], v1_values)

            made = await api_b.post(VERSIONS, json={"name": "v1", "description": "first draft"})
            assert made.status_code == 201, made.text
            v1 = made.json()
            assert v1["kind"] == "named" and v1["size_bytes"] > 0

            await c2.call("text_insert", name="t", index=0, value="Not ")
            await c2.call("map_set", name="m", key="k", value=2)
            await c2.call("map_set", name="m", key="n", value=3)
            await c2.call("array_push", name="a", values=[3])
            await c2.call("xml_append_element", name="pm", tag="paragraph", text="later")
            later = (await c2.call("state", names=KINDS))["values"]
            await converged([c1, c2, c3], later)
            made = await api_a.post(VERSIONS, json={"name": "v2"})
            v2 = made.json()

            await c3.call("disconnect")
            await c3.call("map_set", name="m", key="offline", value=True)

            restored = await api_a.post(f"{VERSIONS}/{v1['id']}/restore")
            assert restored.status_code == 200, restored.text
            await converged([c1, c2], v1_values)
            assert (await c2.call("prosemirror_get", name="pm"))["doc"] == PM_V1

            await c3.call("reconnect")
            await c3.call("wait_synced")
            merged = {**v1_values, "m": {"k": 1, "offline": True}}
            await converged([c1, c2, c3], merged)
            assert (await c3.call("prosemirror_get", name="pm"))["doc"] == PM_V1

            listed = (await api_b.get(VERSIONS)).json()["versions"]
            assert [v["kind"] for v in listed] == ["restore", "pre-restore", "named", "named"]
            assert listed[0]["name"] == "Restored v1"

            changes = (await api_b.get(f"{VERSIONS}/{v1['id']}/diff/{v2['id']}")).json()["changes"]
            assert changes["t"] == {
                "type": "text",
                "inserted": [{"index": 0, "text": "Not "}],
                "deleted": [],
            }
            assert changes["m"] == {
                "type": "map",
                "added": {"n": 3},
                "removed": {},
                "changed": {"k": {"from": 1, "to": 2}},
            }
            assert changes["a"] == {
                "type": "array",
                "inserted": [{"index": 2, "items": [3]}],
                "deleted": [],
            }
            assert [node["tag"] for run in changes["pm"]["inserted"] for node in run["nodes"]] == [
                "paragraph"
            ]
            now = (await api_a.get(f"{VERSIONS}/{v1['id']}/diff/current")).json()["changes"]
            assert now == {
                "m": {"type": "map", "added": {"offline": True}, "removed": {}, "changed": {}}
            }

            content = (await api_a.get(f"{VERSIONS}/{v1['id']}")).json()["content"]
            assert content["t"] == "version one" and content["m"] == {"k": 1}
            update = await api_a.get(f"{VERSIONS}/{v1['id']}", params={"format": "update"})
            assert update.headers["content-type"] == "application/octet-stream"

    run(main(), timeout=90)


def test_refusals_name_the_problem_and_a_viewer_cannot_restore() -> None:
    with (
        YsyncProcess(*tk.JWT_FLAGS) as server,
        httpx.Client(base_url=server.http_url, timeout=10) as api,
    ):
        editor = {"authorization": "Bearer " + tk.token("ed", {ROOM: "editor"})}
        viewer = {"authorization": "Bearer " + tk.token("vi", {ROOM: "viewer"})}
        made = api.post(VERSIONS, json={"name": "one"}, headers=editor)
        assert made.status_code == 201 and made.json()["author"] == "ed"
        vid = made.json()["id"]
        assert api.post(VERSIONS, json={"name": "x"}, headers=viewer).status_code == 403
        assert api.post(f"{VERSIONS}/{vid}/restore", headers=viewer).status_code == 403
        assert api.get(VERSIONS, headers=viewer).json()["versions"][0]["id"] == vid
        missing = api.get(f"{VERSIONS}/v_nothing", headers=viewer)
        assert missing.status_code == 404 and missing.json()["code"] == "version_not_found"
        assert (
            api.post(VERSIONS, json={"name": ""}, headers=editor).json()["code"] == "invalid_name"
        )
        assert api.post(VERSIONS, json=[1], headers=editor).status_code == 400
        assert (
            api.get(VERSIONS, params={"cursor": "%%"}, headers=viewer).json()["code"]
            == "bad_cursor"
        )
        assert api.post(f"{VERSIONS}/v_nothing/restore", headers=editor).status_code == 404
        owner = {"authorization": "Bearer " + tk.token("ow", {ROOM: "owner"})}
        assert api.delete(f"{VERSIONS}/{vid}", headers=editor).status_code == 403
        assert api.delete(f"{VERSIONS}/{vid}", headers=owner).status_code == 200
        assert api.get(VERSIONS, headers=viewer).json()["versions"] == []
        assert api.delete(f"{VERSIONS}/{vid}", headers=owner).status_code == 404


def test_a_room_that_changed_gets_an_automatic_version_and_an_idle_one_none() -> None:
    interval = 0.3
    with (
        YsyncProcess("--auto-version-interval", str(interval)) as server,
        httpx.Client(base_url=server.http_url, timeout=10) as api,
    ):
        op = {"ops": [{"op": "set", "root": "m", "key": "k", "value": 1}]}
        assert api.post("/api/rooms/team%2Fspec/doc", json=op).status_code == 200

        async def automatic() -> list[dict[str, Any]]:
            for _ in range(100):
                found = api.get(VERSIONS).json()["versions"]
                if found:
                    return list(found)
                await asyncio.sleep(0.05)
            raise AssertionError("no automatic version after 5 s")

        first = run(automatic())
        assert [v["kind"] for v in first] == ["auto"] and first[0]["automatic"]
        # Several more rounds pass with the room idle: no new version.
        run(asyncio.sleep(interval * 4))
        assert api.get(VERSIONS).json()["versions"] == first
