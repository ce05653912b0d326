"""Element locks on real nodes: REST, a browser's awareness request, the server-owned
lock state in a plain JS client's awareness, release when the holder's connection
dies, and a race on two nodes through a real redis-server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from support import aio
from support import authtokens as tk
from support.jsclient import JSClient
from support.servers import RedisProcess, YsyncProcess

SERVER_ID = 0xFFFFFFFF  # the server-owned awareness state's client id
ROOM = "design/canvas"


def lock_path(room: str, element: str = "") -> str:
    path = f"/api/rooms/{quote(room, safe='')}/locks"
    return f"{path}/{quote(element, safe='')}" if element else path


async def call(
    http: httpx.AsyncClient, method: str, path: str, token: str, body: Any = None
) -> tuple[int, Any]:
    response = await http.request(
        method, path, json=body, headers={"Authorization": f"Bearer {token}"}
    )
    return response.status_code, (response.json() if response.content else None)


async def shown_locks(client: JSClient) -> dict[str, Any]:
    state = (await client.call("awareness_states"))["states"].get(str(SERVER_ID))
    return state["ysync"]["locks"] if state else {}


async def wait_locks(client: JSClient, predicate: Any, timeout: float = 10) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while not predicate(locks := await shown_locks(client)):
            await asyncio.sleep(0.05)
    return locks


def test_rest_locks_and_what_a_plain_js_client_sees(js_clients_dir: Path, tmp_path: Path) -> None:
    ada = tk.token("ada", {"design/*": "editor"}, name="Ada")
    bob = tk.token("bob", {"design/*": "editor"}, name="Bob")
    vic = tk.token("vic", {"design/*": "viewer"})
    owner = tk.token("own", {"design/*": "owner"})
    with YsyncProcess(*tk.JWT_FLAGS, log_path=tmp_path / "log") as server:

        async def scenario() -> None:
            async with (
                httpx.AsyncClient(base_url=server.http_url, timeout=10) as http,
                JSClient.start(js_clients_dir) as watcher,
            ):
                await watcher.call("connect", url=server.ws_url, room=ROOM, params={"token": vic})
                await watcher.call("wait_synced", timeout_ms=10_000)
                status, lock = await call(
                    http, "POST", lock_path(ROOM, "frame/1"), ada, {"ttl": 60}
                )
                assert status == 200 and lock["userId"] == "ada" and lock["fence"] >= 1
                status, conflict = await call(http, "POST", lock_path(ROOM, "frame/1"), bob)
                assert status == 409 and conflict["code"] == "locked"
                assert conflict["holder"]["name"] == "Ada" and "Ada" in conflict["error"]
                assert (await call(http, "POST", lock_path(ROOM, "frame/2"), vic))[0] == 403
                shown = await wait_locks(watcher, lambda locks: "frame/1" in locks)
                assert shown["frame/1"]["userId"] == "ada"
                assert shown["frame/1"]["fence"] == lock["fence"]
                status, listed = await call(http, "GET", lock_path(ROOM), vic)
                assert status == 200 and [item["elementId"] for item in listed["locks"]] == [
                    "frame/1"
                ]
                # Bad input: 400 naming the field; nothing changes.
                status, error = await call(http, "POST", lock_path(ROOM, "x" * 257), ada)
                assert status == 400 and "elementId" in error["error"]
                status, error = await call(http, "POST", lock_path(ROOM, "f"), ada, {"ttl": 0})
                assert status == 400 and "ttl" in error["error"]
                status, error = await call(http, "POST", lock_path(ROOM, "f"), ada, [1])
                assert status == 400
                # Only the holder, or the owner (force), releases it.
                assert (await call(http, "DELETE", lock_path(ROOM, "frame/1"), bob))[0] == 403
                assert (await call(http, "DELETE", lock_path(ROOM, "frame/1"), owner))[0] == 204
                assert (await call(http, "DELETE", lock_path(ROOM, "frame/1"), ada))[0] == 404
                await wait_locks(watcher, lambda locks: "frame/1" not in locks)
                again = await call(http, "POST", lock_path(ROOM, "frame/1"), bob)
                assert again[0] == 200 and again[1]["fence"] > lock["fence"]

        aio.run(scenario(), timeout=60)


def test_a_browser_locks_through_its_awareness_and_loses_it_when_it_dies(
    js_clients_dir: Path, tmp_path: Path
) -> None:
    ada = tk.token("ada", {"design/*": "editor"}, name="Ada")
    bea = tk.token("bea", {"design/*": "editor"}, name="Bea")
    vic = tk.token("vic", {"design/*": "viewer"})
    room = "design/ws-locks"
    with YsyncProcess(*tk.JWT_FLAGS, log_path=tmp_path / "log") as server:

        async def scenario() -> None:
            async with (
                JSClient.start(js_clients_dir) as holder,
                JSClient.start(js_clients_dir) as viewer,
                JSClient.start(js_clients_dir) as next_in_line,
            ):
                for client, token in ((holder, ada), (viewer, vic), (next_in_line, bea)):
                    await client.call(
                        "connect", url=server.ws_url, room=room, params={"token": token}
                    )
                    await client.call("wait_synced", timeout_ms=10_000)
                # A viewer's request is not granted.
                await viewer.call("awareness_set", state={"ysyncLocks": ["layer-1"]})
                holder_id = (await holder.call("awareness_set", state={"ysyncLocks": ["layer-2"]}))[
                    "client_id"
                ]
                shown = await wait_locks(viewer, lambda locks: "layer-2" in locks)
                assert shown["layer-2"]["clientId"] == holder_id
                assert shown["layer-2"]["name"] == "Ada"
                assert "layer-1" not in shown
                # Bea asks for the same element: she waits, and gets it once it frees.
                bea_id = (
                    await next_in_line.call("awareness_set", state={"ysyncLocks": ["layer-2"]})
                )["client_id"]
                holder._proc.kill()  # SIGKILL: the socket dies without a close
                shown = await wait_locks(
                    viewer,
                    lambda locks: locks.get("layer-2", {}).get("clientId") == bea_id,
                    timeout=40,
                )
                assert shown["layer-2"]["name"] == "Bea"

        aio.run(scenario(), timeout=90)


def test_two_nodes_race_for_one_element_exactly_one_wins(tmp_path: Path) -> None:
    ada = tk.token("ada", {"design/*": "editor"}, name="Ada")
    bob = tk.token("bob", {"design/*": "editor"}, name="Bob")
    store = f"sqlite:///{tmp_path}/shared.db"
    with (
        RedisProcess() as redis,
        YsyncProcess(
            *tk.JWT_FLAGS, "--redis-url", redis.url, store=store, log_path=tmp_path / "a.log"
        ) as node_a,
        YsyncProcess(
            *tk.JWT_FLAGS, "--redis-url", redis.url, store=store, log_path=tmp_path / "b.log"
        ) as node_b,
    ):

        async def scenario() -> None:
            async with (
                httpx.AsyncClient(base_url=node_a.http_url, timeout=10) as a,
                httpx.AsyncClient(base_url=node_b.http_url, timeout=10) as b,
            ):
                for i in range(10):
                    path = lock_path(ROOM, f"race-{i}")
                    first, second = await asyncio.gather(
                        call(a, "POST", path, ada), call(b, "POST", path, bob)
                    )
                    statuses = sorted([first[0], second[0]])
                    assert statuses == [200, 409], (first, second)
                    winner, loser = (first, second) if first[0] == 200 else (second, first)
                    assert loser[1]["holder"]["userId"] == winner[1]["userId"]
                    assert loser[1]["holder"]["fence"] == winner[1]["fence"]
                # Both nodes list the same locks.
                listed_a = (await call(a, "GET", lock_path(ROOM), ada))[1]["locks"]
                listed_b = (await call(b, "GET", lock_path(ROOM), ada))[1]["locks"]
                assert json.dumps(listed_a) == json.dumps(listed_b) and len(listed_a) == 10

        aio.run(scenario(), timeout=60)
