"""Roles with the real JavaScript client (yjs + y-websocket's WebsocketProvider)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pycrdt import Text

from ysync.clients import connect

from support import aio
from support import authtokens as tk
from support.jsclient import JSClient
from support.servers import YsyncProcess


def run(coro: Any) -> Any:
    return aio.run(coro, timeout=90)


async def permission_denied(client: JSClient, timeout: float = 5.0) -> list[str]:
    async with asyncio.timeout(timeout):
        while True:
            reasons: list[str] = (await client.call("status"))["permission_denied"]
            if reasons:
                return reasons
            await asyncio.sleep(0.02)


def test_js_viewer_reads_live_edits_and_cursors_but_cannot_change_the_document(
    js_clients_dir: Path, tmp_path: Path
) -> None:
    room = "handbook/intro"
    store = f"sqlite:///{tmp_path / 'ysync.db'}"
    editor_token = tk.token("ed", {"handbook/*": "editor"})
    viewer_token = tk.token("vi", {"handbook/*": "viewer"})
    server = YsyncProcess(*tk.JWT_FLAGS, store=store, log_path=tmp_path / "log").start()
    try:

        async def scenario() -> None:
            async with (
                JSClient.start(js_clients_dir) as editor,
                JSClient.start(js_clients_dir) as viewer,
            ):
                for client, token in ((editor, editor_token), (viewer, viewer_token)):
                    await client.call(
                        "connect", url=server.ws_url, room=room, params={"token": token}
                    )
                    await client.call("wait_synced", timeout_ms=10_000)
                # Live edits and cursors reach the viewer.
                await editor.call("text_insert", name="t", index=0, value="hello")
                await viewer.call("wait_for", name="t", kind="text", equals="hello")
                cursor = {"user": {"name": "Ed"}, "cursor": 5}
                editor_id = (await editor.call("awareness_set", state=cursor))["client_id"]
                await viewer.call("wait_awareness", client_id=editor_id, equals=cursor)
                # The viewer may show its own cursor to the others.
                own = {"user": {"name": "Vi"}, "cursor": 2}
                viewer_id = (await viewer.call("awareness_set", state=own))["client_id"]
                await editor.call("wait_awareness", client_id=viewer_id, equals=own)
                # Its edit is refused: it is told so and stays connected and reading.
                await viewer.call("text_insert", name="t", index=0, value="VANDAL ")
                reasons = await permission_denied(viewer)
                assert "read-only" in reasons[0]
                await editor.call("text_insert", name="t", index=5, value=" world")
                await viewer.call("wait_for", name="t", kind="text", equals="VANDAL hello world")
                status = await viewer.call("status")
                assert status["wsconnected"] and status["terminal_close"] is None
                # The others never saw the edit.
                assert (await editor.call("state", names={"t": "text"}))["values"]["t"] == (
                    "hello world"
                )
                async with connect(server.ws_url, room, params={"token": editor_token}) as late:
                    await late.synced()
                    assert str(late.doc.get("t", type=Text)) == "hello world"
                await viewer.call("disconnect")
                await editor.call("disconnect")

        run(scenario())
        # Nor did the store: restart from disk and read the room back.
        server.restart()

        async def stored() -> str:
            async with connect(server.ws_url, room, params={"token": editor_token}) as reader:
                await reader.synced()
                return str(reader.doc.get("t", type=Text))

        assert run(stored()) == "hello world"
    finally:
        server.stop()


def test_js_client_with_a_bad_token_stops_and_never_syncs(js_clients_dir: Path) -> None:
    with YsyncProcess(*tk.JWT_FLAGS) as server:

        async def scenario() -> None:
            async with JSClient.start(js_clients_dir) as client:
                await client.call(
                    "connect",
                    url=server.ws_url,
                    room="private",
                    params={"token": tk.hs256(tk.claims(), tk.OTHER_SECRET)},
                )
                reply = await client.call("wait_close", timeout_ms=5000)
                assert reply["close"]["code"] == 4401
                status = await client.call("status")
                assert not status["synced"]
                assert status["terminal_close"]["code"] == 4401  # 44xx: no reconnect

        run(scenario())
