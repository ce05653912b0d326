"""The Python SDK with other clients and other servers: real JS y-websocket
providers, and the pycrdt-websocket reference server (any y-websocket server
must do)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Array, Doc, Map, Text

from ysync.clients import Backoff, Session, Status, connect
from ysync.rooms import codec

from support import aio
from support.jsclient import JSClient
from support.presence import client_fields
from support.servers import YsyncProcess
from support.threaded_server import ThreadedServer, pycrdt_websocket_app

NAMES = {"t": "text", "m": "map", "a": "array"}
FAST = Backoff(initial=0.05, max_delay=0.5)


def run(coro: Any) -> Any:
    return aio.run(coro, timeout=90)


@asynccontextmanager
async def js_client(js_dir: Path, url: str, room: str) -> AsyncIterator[JSClient]:
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(JSClient.start(js_dir))
        await client.call("connect", url=url, room=room, max_backoff_ms=500)
        await client.call("wait_synced", timeout_ms=10_000)
        yield client


def values(doc: Doc) -> dict[str, Any]:
    return {
        "t": str(doc.get("t", type=Text)),
        "m": doc.get("m", type=Map).to_py(),
        "a": doc.get("a", type=Array).to_py(),
    }


async def converged(py: Session, js: JSClient, timeout: float = 15.0) -> dict[str, Any]:
    """Wait until the Python and JS documents hold the same clocks; return the values."""
    async with asyncio.timeout(timeout):
        while True:
            state = await js.call("state", names=NAMES)
            js_clocks = codec.decode_state_vector(base64.b64decode(state["state_vector"]))
            if codec.decode_state_vector(py.doc.get_state()) == js_clocks:
                assert values(py.doc) == state["values"]
                return state["values"]
            await asyncio.sleep(0.05)


async def concurrent_edits(py: Session, js: JSClient, rounds: int = 50) -> None:
    """Both clients edit the same text, map keys and array at the same time,
    without waiting for each other."""
    text, mapping, array = (
        py.doc.get(n, type=t) for n, t in (("t", Text), ("m", Map), ("a", Array))
    )

    async def python_side() -> None:
        for i in range(rounds):
            text.insert(0 if i % 2 else len(text), "p")
            mapping[f"k{i % 5}"] = f"py{i}"
            array.append(i)
            if i % 10 == 0:
                await asyncio.sleep(0)  # let frames in both directions interleave

    async def js_side() -> None:
        for i in range(rounds):
            await js.call("text_insert", name="t", index=0, value="j")
            await js.call("map_set", name="m", key=f"k{i % 5}", value=f"js{i}")
            await js.call("array_push", name="a", values=[-i])

    await asyncio.gather(python_side(), js_side())


def check_merged(result: dict[str, Any], rounds: int = 50) -> None:
    assert sorted(result["t"]) == sorted("p" * rounds + "j" * rounds)
    assert sorted(result["a"]) == sorted(
        [float(i) for i in range(rounds)] + [-i for i in range(rounds)]
    )
    assert set(result["m"]) == {f"k{i}" for i in range(5)}


# -- against ysync ----------------------------------------------------------------------


def test_python_and_js_clients_converge_on_concurrent_edits(
    server: YsyncProcess, js_clients_dir: Path
) -> None:
    async def scenario() -> None:
        async with (
            connect(server.ws_url, "sdk-interop/concurrent") as py,
            js_client(js_clients_dir, server.ws_url, "sdk-interop/concurrent") as js,
        ):
            await py.synced()
            await concurrent_edits(py, js)
            result = await converged(py, js)
            check_merged(result)
            # Presence crosses both ways.
            py.awareness.set_local_state({"user": {"name": "py"}})
            await js.call("wait_awareness", client_id=py.doc.client_id, timeout_ms=3000)
            js_id = (await js.call("awareness_set", state={"user": {"name": "js"}}))["client_id"]
            await py.awareness.wait_for(
                lambda s: client_fields(s.get(js_id)) == {"user": {"name": "js"}}, 3
            )

    run(scenario())


def test_python_offline_edits_merge_with_js_edits_after_a_server_restart(
    js_clients_dir: Path, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path / 'ysync.db'}"
    with YsyncProcess(store=store, log_path=tmp_path / "ysync.log") as server:

        async def scenario() -> None:
            async with (
                connect(server.ws_url, "sdk-interop/restart", backoff=FAST) as py,
                js_client(js_clients_dir, server.ws_url, "sdk-interop/restart") as js,
            ):
                await py.synced()
                py.doc.get("t", type=Text).insert(0, "shared ")
                await converged(py, js)
                await asyncio.to_thread(server.stop)
                await py.wait_until(lambda s: not s.is_synced, 5)
                py.doc.get("t", type=Text).insert(0, "[py offline]")
                await js.call("text_insert", name="t", index=0, value="[js offline]")
                await asyncio.to_thread(server.start)
                await py.wait_until(lambda s: s.connects >= 2 and s.is_synced, 20)
                result = await converged(py, js, timeout=20)
                assert "[py offline]" in result["t"] and "[js offline]" in result["t"]
                assert result["t"].endswith("shared ")

        run(scenario())


# -- against the pycrdt-websocket reference server -------------------------------------------


@pytest.fixture
def pycrdt_server() -> Iterator[ThreadedServer]:
    with ThreadedServer(pycrdt_websocket_app()) as server:
        yield server


def test_sdk_against_the_pycrdt_websocket_server(pycrdt_server: ThreadedServer) -> None:
    url = pycrdt_server.ws_url

    async def scenario() -> None:
        statuses: list[Status] = []
        # pycrdt-websocket does not serve simultaneous first connections to a new
        # room reliably: join one after the other.
        async with connect(url, "ref/doc", on_status=lambda e: statuses.append(e.status)) as a:
            await a.synced()
            async with connect(url, "ref/doc") as b:
                await b.synced()
                a.doc.get("t", type=Text).insert(0, "from a. ")
                await b.wait_until(lambda s: "from a" in str(s.doc.get("t", type=Text)), 5)
                with b.edit():
                    b.doc.get("m", type=Map)["k"] = "from b"
                await a.wait_until(lambda s: s.doc.get("m", type=Map).get("k") == "from b", 5)
                a.awareness.set_local_state({"user": "a"})
                await b.awareness.wait_for(
                    lambda s: client_fields(s.get(a.doc.client_id)) == {"user": "a"}, 5
                )
                b.awareness.set_local_state({"user": "b"})
                await a.awareness.wait_for(
                    lambda s: client_fields(s.get(b.doc.client_id)) == {"user": "b"}, 5
                )
                await a.flush()
                await b.flush()
            # pycrdt-websocket only relays presence (it never removes a closed
            # connection's state): b's own removal, sent by close(), is what clears it.
            await a.awareness.wait_for(lambda s: b.doc.client_id not in s, 2)
            async with connect(url, "ref/doc") as late:
                await late.synced()
                assert str(late.doc.get("t", type=Text)) == "from a. "
                assert late.doc.get("m", type=Map).to_py() == {"k": "from b"}
        assert statuses == [Status.CONNECTING, Status.CONNECTED, Status.SYNCED, Status.CLOSED]

    run(scenario())


def test_sdk_reconnects_to_a_restarted_pycrdt_websocket_server_and_reuploads(
    pycrdt_server: ThreadedServer,
) -> None:
    """pycrdt-websocket keeps documents in memory only: after its restart the
    reconnecting client's sync handshake gives it the document back, offline
    edits included."""
    url = pycrdt_server.ws_url

    async def scenario() -> None:
        async with connect(url, "ref/restart", backoff=FAST) as a:
            await a.synced()
            a.doc.get("t", type=Text).insert(0, "kept")
            await a.flush()
            await asyncio.to_thread(pycrdt_server.stop)
            await a.wait_until(lambda s: not s.is_synced, 5)
            a.doc.get("t", type=Text).insert(4, " and offline")
            await asyncio.to_thread(pycrdt_server.start)
            await a.wait_until(lambda s: s.connects >= 2 and s.is_synced, 20)
            await a.flush()
            async with connect(url, "ref/restart") as b:
                await b.synced()
                assert str(b.doc.get("t", type=Text)) == "kept and offline"

    run(scenario())


def test_python_and_js_clients_converge_through_pycrdt_websocket(
    pycrdt_server: ThreadedServer, js_clients_dir: Path
) -> None:
    url = pycrdt_server.ws_url

    async def scenario() -> None:
        async with connect(url, "ref/js") as py:
            await py.synced()
            async with js_client(js_clients_dir, url, "ref/js") as js:
                await concurrent_edits(py, js, rounds=30)
                check_merged(await converged(py, js), rounds=30)

    run(scenario())
