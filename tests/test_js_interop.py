"""Interop with the real JavaScript clients: npm yjs + y-websocket's WebsocketProvider."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from ysync.clients import connect
from ysync.rooms import codec

from support import aio
from support.aio import wait_until
from support.jsclient import JSClient
from support.presence import client_fields
from support.servers import YsyncProcess

NAMES = {"t": "text", "m": "map", "a": "array", "x": "xml"}


def run(coro: Any) -> Any:
    return aio.run(coro, timeout=90)


@asynccontextmanager
async def js_clients(
    js_dir: Path, count: int, url: str, room: str
) -> AsyncIterator[list[JSClient]]:
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(JSClient.start(js_dir)) for _ in range(count)]
        for client in clients:
            await client.call("connect", url=url, room=room)
        for client in clients:
            await client.call("wait_synced", timeout_ms=10_000)
        yield clients


async def js_state(client: JSClient) -> dict[str, Any]:
    return await client.call("state", names=NAMES)


def state_vector(js_state: dict[str, Any]) -> dict[int, int]:
    # Clients may list the same clocks in a different order: compare as mappings.
    return codec.decode_state_vector(base64.b64decode(js_state["state_vector"]))


def python_values(doc: Doc) -> dict[str, Any]:
    return {
        "t": str(doc.get("t", type=Text)),
        "m": doc.get("m", type=Map).to_py(),
        "a": doc.get("a", type=Array).to_py(),
        "x": str(doc.get("x", type=XmlFragment)),
    }


def test_two_js_clients_and_one_python_client_converge(
    server: YsyncProcess, js_clients_dir: Path
) -> None:
    async def scenario() -> None:
        async with (
            js_clients(js_clients_dir, 2, server.ws_url, "interop/all-types") as (js1, js2),
            connect(server.ws_url, "interop/all-types") as py,
        ):
            await py.synced()
            # Concurrent edits on every shared type, from all three sides at once.
            await asyncio.gather(
                js1.call("text_insert", name="t", index=0, value="from js1 "),
                js2.call("text_insert", name="t", index=0, value="from js2 "),
                js1.call("map_set", name="m", key="js1", value={"n": 1, "list": [1, 2]}),
                js2.call("map_set", name="m", key="js2", value="two"),
                js1.call("array_push", name="a", values=[1, "one"]),
                js2.call("array_push", name="a", values=[True]),
                js1.call("xml_append_element", name="x", tag="p", text="js1 paragraph"),
                js2.call("xml_append_element", name="x", tag="h1", text="js2 title"),
            )
            with py.doc.transaction():
                py.doc.get("t", type=Text).insert(0, "from py ")
                py.doc.get("m", type=Map)["py"] = 3.5
                py.doc.get("a", type=Array).append("py")
                py.doc.get("x", type=XmlFragment).children.append(
                    XmlElement("blockquote", {}, [XmlText("py quote")])
                )
            # Wait until JS sees the Python edits, then compare everything.
            expected_length = len("from js1 from js2 from py ")
            for js in (js1, js2):
                await js.call("wait_for", name="t", kind="text", length=expected_length)
                await js.call("wait_for", name="a", kind="array", length=4)
            states = [await js_state(js1), await js_state(js2)]
            assert states[0]["values"] == states[1]["values"]
            clocks = [state_vector(state) for state in states]
            assert clocks[0] == clocks[1]
            await wait_until(
                lambda: (
                    py.doc.get_state()
                    and codec.decode_state_vector(py.doc.get_state()) == clocks[0]
                )
            )
            values = python_values(py.doc)
            assert values == states[0]["values"]
            assert values["m"]["js1"] == {"n": 1, "list": [1, 2]}
            assert "<blockquote>py quote</blockquote>" in values["x"]

    run(scenario())


def test_late_js_joiner_gets_the_full_document(server: YsyncProcess, js_clients_dir: Path) -> None:
    async def scenario() -> None:
        async with connect(server.ws_url, "interop/late") as py:
            await py.synced()
            py.doc.get("t", type=Text).insert(0, "written before the JS client came")
            py.doc.get("m", type=Map)["k"] = "v"
            async with js_clients(js_clients_dir, 1, server.ws_url, "interop/late") as (js,):
                values = (await js_state(js))["values"]
                assert values["t"] == "written before the JS client came"
                assert values["m"] == {"k": "v"}

    run(scenario())


def test_awareness_crosses_between_js_and_python_and_vanishes_on_disconnect(
    server: YsyncProcess, js_clients_dir: Path
) -> None:
    async def scenario() -> None:
        async with (
            js_clients(js_clients_dir, 2, server.ws_url, "interop/presence") as (js1, js2),
            connect(server.ws_url, "interop/presence") as py,
        ):
            await py.synced()
            cursor = {"user": {"name": "Ada"}, "cursor": 3}
            js1_id = (await js1.call("awareness_set", state=cursor))["client_id"]
            started = time.perf_counter()
            await js2.call("wait_awareness", client_id=js1_id, equals=cursor, timeout_ms=3000)
            await py.awareness.wait_for(lambda s: client_fields(s.get(js1_id)) == cursor, 3)
            print(
                f"awareness JS -> JS and Python in {(time.perf_counter() - started) * 1000:.0f} ms"
            )
            py.awareness.set_local_state({"user": {"name": "bot"}})
            await js1.call("wait_awareness", client_id=py.doc.client_id, timeout_ms=3000)
            await js1.call("disconnect")
            # Removed at once, not after the 30 s timeout.
            await js2.call("wait_awareness", client_id=js1_id, present=False, timeout_ms=3000)
            await py.awareness.wait_for(lambda s: js1_id not in s, 3)

    run(scenario())


def test_reconnecting_js_client_is_visible_again_at_once(
    server: YsyncProcess, js_clients_dir: Path
) -> None:
    """A reconnect re-sends awareness at an old clock; the server makes it bump."""

    async def scenario() -> None:
        async with js_clients(js_clients_dir, 2, server.ws_url, "interop/rejoin") as (js1, js2):
            js1_id = (await js1.call("awareness_set", state={"n": 1}))["client_id"]
            await js2.call("wait_awareness", client_id=js1_id, timeout_ms=3000)
            await js1.call("disconnect")
            await js2.call("wait_awareness", client_id=js1_id, present=False, timeout_ms=3000)
            await js1.call("reconnect")
            await js2.call("wait_awareness", client_id=js1_id, equals={"n": 1}, timeout_ms=3000)

    run(scenario())


def test_thousand_edits_converge(server: YsyncProcess, js_clients_dir: Path) -> None:
    async def scenario() -> None:
        async with js_clients(js_clients_dir, 2, server.ws_url, "interop/bulk") as (js1, js2):
            started = time.perf_counter()
            reply = await js1.call("bulk_text_insert", name="t", count=1000)
            await js2.call("wait_for", name="t", kind="text", length=1000, timeout_ms=20_000)
            elapsed = time.perf_counter() - started
            print(
                f"1,000 single-character edits: sent in {reply['elapsed_ms']:.0f} ms, "
                f"converged at the other JS client after {elapsed * 1000:.0f} ms"
            )

    run(scenario())


@pytest.mark.slow
def test_providers_resync_quickly_after_a_server_restart(
    js_clients_dir: Path, tmp_path: Path
) -> None:
    with YsyncProcess(log_path=tmp_path / "log") as server:

        async def scenario() -> None:
            async with js_clients(js_clients_dir, 2, server.ws_url, "interop/restart") as (
                js1,
                js2,
            ):
                await js1.call("text_insert", name="t", index=0, value="kept by the clients")
                await js2.call("wait_for", name="t", kind="text", equals="kept by the clients")
                connects = (await js1.call("status"))["connects"]
                await asyncio.to_thread(server.restart)
                started = time.perf_counter()
                for js in (js1, js2):
                    await js.call("wait_connects", connects=connects + 1, timeout_ms=10_000)
                    await js.call("wait_synced", timeout_ms=10_000)
                await js1.call("text_insert", name="t", index=0, value="after restart: ")
                await js2.call(
                    "wait_for", name="t", kind="text", equals="after restart: kept by the clients"
                )
                print(f"resynced after restart in {time.perf_counter() - started:.2f} s")
            # The in-memory server got the document back from the clients' SyncStep2.
            async with connect(server.ws_url, "interop/restart") as py:
                await py.synced()
                assert str(py.doc.get("t", type=Text)) == "after restart: kept by the clients"

        run(scenario())
