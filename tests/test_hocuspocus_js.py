"""The real @hocuspocus/provider (v3 and v4) against real ysync processes.

Each `hpclient` is one node process holding one `HocuspocusProviderWebsocket` and
a `HocuspocusProvider` per document over it (tests/js/hpclient.mjs).
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ysync.rooms.extensions import Extension
from ysync.rooms.protocols import Peer
from ysync.rooms.room import Room
from ysync.server.app import create_app
from ysync.server.hocuspocus import send_stateless
from ysync.server.settings import Settings

from support import aio
from support import authtokens as tk
from support.jsclient import JSClient
from support.servers import RedisProcess, YsyncProcess
from support.threaded_server import ThreadedServer

EDITS = {"t": "text", "m": "map", "a": "array", "x": "xml"}


def run(coro: Any) -> Any:
    return aio.run(coro, timeout=120)


@asynccontextmanager
async def hocuspocus(js_dir: Path, url: str, version: int) -> AsyncIterator[JSClient]:
    async with JSClient.start(js_dir, "hpclient.mjs") as client:
        await client.call("connect", url=url, version=version)
        yield client


async def open_doc(client: JSClient, doc: str, **args: Any) -> None:
    await client.call("open", doc=doc, **args)
    await client.call("wait", doc=doc, until="synced", timeout_ms=10_000)


def test_two_hocuspocus_providers_and_a_y_websocket_one_converge_in_one_room(
    js_clients_dir: Path, server: YsyncProcess
) -> None:
    room = "mixed/notes"

    async def scenario() -> None:
        async with (
            hocuspocus(js_clients_dir, server.ws_url, 3) as v3,
            hocuspocus(js_clients_dir, server.ws_url + "/hocuspocus", 4) as v4,
            JSClient.start(js_clients_dir) as yws,
        ):
            await open_doc(v3, room)
            await open_doc(v4, room)
            await yws.call("connect", url=server.ws_url, room=room)
            await yws.call("wait_synced")
            await v3.call("edit", doc=room, kind="text", name="t", index=0, value="Hello")
            await v4.call("edit", doc=room, kind="map", name="m", key="by", value="v4")
            await v4.call("edit", doc=room, kind="array", name="a", values=[1, 2])
            await v3.call("edit", doc=room, kind="xml", name="x", tag="p", text="para")
            await yws.call("text_insert", name="t", index=5, value=" world")
            await yws.call("array_push", name="a", values=[3])
            expected = {
                "t": "Hello world",
                "m": {"by": "v4"},
                "a": [1, 2, 3],
                "x": "<p>para</p>",
            }
            for name, kind in EDITS.items():
                for client in (v3, v4):
                    await client.call(
                        "wait_for", doc=room, name=name, kind=kind, equals=expected[name]
                    )
            y_values = (await yws.call("state", names={"t": "text", "m": "map", "a": "array"}))[
                "values"
            ]
            assert y_values == {k: expected[k] for k in ("t", "m", "a")}
            # Cursors cross both dialects.
            v3_id = (await v3.call("awareness_set", doc=room, state={"user": "v3"}))["client_id"]
            v4_id = (await v4.call("awareness_set", doc=room, state={"user": "v4"}))["client_id"]
            y_id = (await yws.call("awareness_set", state={"user": "yws"}))["client_id"]
            await yws.call("wait_awareness", client_id=v3_id, equals={"user": "v3"})
            await yws.call("wait_awareness", client_id=v4_id, equals={"user": "v4"})
            for client in (v3, v4):
                await client.call(
                    "wait_awareness", doc=room, client_id=y_id, equals={"user": "yws"}
                )
            await v4.call("wait_awareness", doc=room, client_id=v3_id, equals={"user": "v3"})
            # Every edit was acknowledged: nothing is left unsynced.
            for client in (v3, v4):
                status = (await client.call("wait", doc=room, until="unsynced_zero"))["doc"]
                assert status["scope"] == "read-write" and status["unsynced"] == 0

    run(scenario())


def test_one_socket_multiplexes_twenty_documents_and_one_denied_leaves_the_others(
    js_clients_dir: Path, tmp_path: Path
) -> None:
    token = tk.token("ada", {"shelf/*": "editor"})
    with YsyncProcess(*tk.JWT_FLAGS, log_path=tmp_path / "log") as server:

        async def scenario() -> None:
            async with (
                hocuspocus(js_clients_dir, server.ws_url, 4) as writer,
                hocuspocus(js_clients_dir, server.ws_url, 4) as reader,
            ):
                names = [f"shelf/{i}" for i in range(19)]
                for client in (writer, reader):
                    for i, name in enumerate(names):
                        # One is session-aware (v4: its address carries a session id).
                        await client.call(
                            "open", doc=name, tokens=[token], session_awareness=i == 0
                        )
                    await client.call("open", doc="vault/secret", tokens=[token])
                for name in names:
                    for client in (writer, reader):
                        await client.call("wait", doc=name, until="synced", timeout_ms=10_000)
                denied = (await writer.call("wait", doc="vault/secret", until="denied"))["doc"]
                assert "no access" in denied["denied"][0] and not denied["synced"]
                for name in names:
                    await writer.call("edit", doc=name, kind="text", name="t", value=name)
                for name in names:
                    await reader.call("wait_for", doc=name, name="t", kind="text", equals=name)
                    await writer.call("wait", doc=name, until="unsynced_zero")
                assert (await writer.call("status"))["connects"] == 1  # one socket all along

        run(scenario())


def test_a_read_only_token_gets_readonly_and_its_edits_are_not_applied(
    js_clients_dir: Path, tmp_path: Path
) -> None:
    room = "wiki/page"
    editor = tk.token("ed", {"wiki/*": "editor"})
    viewer = tk.token("vi", {"wiki/*": "viewer"})
    with YsyncProcess(*tk.JWT_FLAGS, log_path=tmp_path / "log") as server:

        async def scenario() -> None:
            async with (
                hocuspocus(js_clients_dir, server.ws_url, 4) as ed,
                hocuspocus(js_clients_dir, server.ws_url, 3) as vi,
            ):
                await open_doc(ed, room, tokens=[editor])
                await open_doc(vi, room, tokens=[viewer])
                status = (await vi.call("wait", doc=room, until="unsynced_zero"))["doc"]
                assert status["scope"] == "readonly"
                await ed.call("edit", doc=room, kind="text", name="t", value="shared")
                await vi.call("wait_for", doc=room, name="t", kind="text", equals="shared")
                await vi.call("edit", doc=room, kind="text", name="t", value="VANDAL ")
                # The edit is refused (SyncStatus 0: it stays unsynced) ...
                await ed.call("edit", doc=room, kind="text", name="t", index=6, value="!")
                await vi.call("wait_for", doc=room, name="t", kind="text", equals="VANDAL shared!")
                assert (await vi.call("doc_status", doc=room))["unsynced"] == 1
                # ... and never applied: the editor and a late reader do not see it.
                await ed.call("wait_for", doc=room, name="t", kind="text", equals="shared!")
                async with hocuspocus(js_clients_dir, server.ws_url, 4) as late:
                    await open_doc(late, room, tokens=[editor])
                    await late.call("wait_for", doc=room, name="t", kind="text", equals="shared!")

        run(scenario())


class Relay(Extension):
    """Relays stateless messages unless private; answers every one to its sender."""

    def on_stateless(self, room: Room, peer: Peer, payload: str) -> bool:
        send_stateless(peer, f"ack:{payload}")
        return not payload.startswith("private:")


def post(url: str, body: object) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        result: dict[str, Any] = json.load(response)
        return result


def test_stateless_messages_reach_the_hook_and_other_clients_on_every_node(
    js_clients_dir: Path, tmp_path: Path
) -> None:
    room = "board/1"
    with RedisProcess() as redis:
        store = f"sqlite:///{tmp_path / 'shared.db'}"
        nodes = [
            ThreadedServer(
                create_app(
                    Settings(store=store, redis_url=redis.url, demo=False),
                    extensions=[Relay()],
                )
            )
            for _ in range(2)
        ]
        with nodes[0], nodes[1]:

            async def scenario() -> None:
                async with (
                    hocuspocus(js_clients_dir, nodes[0].ws_url, 4) as a,
                    hocuspocus(js_clients_dir, nodes[1].ws_url, 3) as b,
                ):
                    await open_doc(a, room)
                    await open_doc(b, room)
                    await a.call("stateless", doc=room, payload="private:ping")
                    await a.call("stateless", doc=room, payload='{"cursor": 3}')
                    # The sender gets the hook's answers, the other node's client the relay.
                    got = await a.call("wait_stateless", doc=room, count=2)
                    assert got["payloads"] == ["ack:private:ping", 'ack:{"cursor": 3}']
                    got = await b.call("wait_stateless", doc=room, count=1)
                    assert got["payloads"] == ['{"cursor": 3}']
                    # A backend broadcasts through the HTTP API of either node.
                    url = f"{nodes[1].http_url}/api/rooms/board%2F1/broadcast"
                    answer = await asyncio.to_thread(post, url, {"payload": "saved"})
                    assert answer == {"delivered": 1}
                    for client, count in ((a, 3), (b, 2)):
                        got = await client.call("wait_stateless", doc=room, count=count)
                        assert got["payloads"][-1] == "saved"

            run(scenario())


def test_an_expiring_token_is_refreshed_in_place_or_the_provider_reconnects_with_a_new_one(
    js_clients_dir: Path, tmp_path: Path
) -> None:
    room = "notes/today"
    grant = {"notes/*": "editor"}
    with YsyncProcess(*tk.JWT_FLAGS, log_path=tmp_path / "log") as server:

        async def scenario() -> None:
            async with (
                hocuspocus(js_clients_dir, server.ws_url, 4) as fresh,
                hocuspocus(js_clients_dir, server.ws_url, 3) as stale,
            ):
                short = tk.token("ada", grant, ttl=2)
                # Asked for a new token at expiry, `fresh` hands one over: it stays connected.
                await open_doc(fresh, room, tokens=[short, tk.token("ada", grant)])
                # `stale` hands the same expired token again: the socket is closed with
                # 4401, and the provider reconnects on its own, with the token it gets next.
                await open_doc(stale, room, tokens=[short, short, tk.token("bo", grant)])
                status = await stale.call("wait_connects", count=2, timeout_ms=15_000)
                assert status["connects"] == 2
                closes = (await stale.call("status"))["closes"]
                assert closes[0]["code"] == 4401 and "expired" in closes[0]["reason"]
                await stale.call("wait", doc=room, until="synced", timeout_ms=10_000)
                await stale.call("edit", doc=room, kind="text", name="t", value="after")
                await fresh.call("wait_for", doc=room, name="t", kind="text", equals="after")
                assert (await fresh.call("status"))["connects"] == 1

        run(scenario())
