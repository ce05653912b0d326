"""The server over real sockets: sync, fan-out, awareness, bad input, slow consumers."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from pycrdt import Doc, Map, Text
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from ysync.clients import connect, room_url
from ysync.rooms import codec, hocuspocus

from support.aio import run, wait_until
from support.presence import client_fields
from support.servers import YsyncProcess


async def raw(server: YsyncProcess, room: str, **kwargs: Any) -> ClientConnection:
    """A bare WebSocket to `room`, for sending frames no well-behaved client would."""
    return await ws_connect(room_url(server.ws_url, room), compression=None, proxy=None, **kwargs)


async def next_of(ws: ClientConnection, kind: type, timeout: float = 5.0) -> Any:
    """The next message of `kind` the server sends, skipping others."""
    async with asyncio.timeout(timeout):
        while True:
            message = codec.decode(await ws.recv())
            if isinstance(message, kind):
                return message


async def close_code(ws: ClientConnection, timeout: float = 10.0) -> tuple[int | None, str | None]:
    """Read until the server closes; return its close code and reason."""
    async with asyncio.timeout(timeout):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            pass
    return ws.close_code, ws.close_reason


def http_get(server: YsyncProcess, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(server.http_url + path, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def text_update(content: str) -> bytes:
    doc = Doc()
    doc["t"] = text = Text()
    text += content
    return doc.get_update()


# -- sync and fan-out -------------------------------------------------------------


def test_clients_converge_and_late_joiner_gets_everything(server: YsyncProcess) -> None:
    async def scenario() -> None:
        async with connect(server.ws_url, "converge") as a, connect(server.ws_url, "converge") as b:
            await a.synced()
            await b.synced()
            a.doc.get("t", type=Text).insert(0, "hello ")
            b.doc.get("m", type=Map)["k"] = "v"
            ta, tb = a.doc.get("t", type=Text), b.doc.get("t", type=Text)
            await wait_until(lambda: str(tb) == "hello " and a.doc.get("m", type=Map).get("k"))
            tb += "world"
            await wait_until(lambda: str(ta) == "hello world")
        async with connect(server.ws_url, "converge") as late:
            await late.synced()
            assert str(late.doc.get("t", type=Text)) == "hello world"
            assert late.doc.get("m", type=Map).to_py() == {"k": "v"}

    run(scenario())


def test_server_sends_sync_step1_first_and_answers_with_sync_step2(server: YsyncProcess) -> None:
    async def scenario() -> None:
        writer = await raw(server, "handshake")
        await writer.send(codec.encode_update(text_update("abc")))
        await writer.send(codec.encode_sync_step1(b"\x00"))
        await next_of(writer, codec.SyncStep2)  # the update was applied before this reply
        reader = await raw(server, "handshake")
        first = codec.decode(await reader.recv())
        assert isinstance(first, codec.SyncStep1)  # clients upload offline edits only in reply
        await reader.send(codec.encode_sync_step1(b"\x00"))
        step2 = await next_of(reader, codec.SyncStep2)
        doc = Doc()
        doc.apply_update(step2.update)
        assert str(doc.get("t", type=Text)) == "abc"
        await writer.close()
        await reader.close()

    run(scenario())


def test_update_that_changes_nothing_is_not_rebroadcast(server: YsyncProcess) -> None:
    async def scenario() -> None:
        sender = await raw(server, "dup")
        receiver = await raw(server, "dup")
        await receiver.send(codec.encode_sync_step1(b"\x00"))
        await next_of(receiver, codec.SyncStep2)
        update = text_update("once")
        await sender.send(codec.encode_update(update))
        assert (await next_of(receiver, codec.SyncUpdate)).update
        await sender.send(codec.encode_update(update))  # a duplicate: changes nothing
        marker = codec.AwarenessEntry(4242, 1, '{"marker":true}')
        await sender.send(codec.encode_awareness([marker]))
        # The next thing the receiver sees is the marker, not a copy of the update.
        message = codec.decode(await asyncio.wait_for(receiver.recv(), 5))
        assert isinstance(message, codec.AwarenessUpdate)
        (got,) = message.entries
        assert got.client_id == 4242 and client_fields(json.loads(got.state)) == {"marker": True}
        await sender.close()
        await receiver.close()

    run(scenario())


def test_rooms_are_isolated_and_names_may_contain_slashes(server: YsyncProcess) -> None:
    async def scenario() -> None:
        async with (
            connect(server.ws_url, "team/a/doc", params={"token": "x"}) as a,
            connect(server.ws_url, "team/b/doc") as b,
        ):
            await a.synced()
            await b.synced()
            a.doc.get("t", type=Text).insert(0, "only in a")
            async with connect(server.ws_url, "team/a/doc") as a2:
                await a2.synced()
                await wait_until(lambda: str(a2.doc.get("t", type=Text)) == "only in a")
            assert str(b.doc.get("t", type=Text)) == ""
        status, body = http_get(server, "/api/rooms")
        assert status == 200
        names = {room["name"] for room in body["rooms"]}
        assert "team/a/doc" in names  # the query string is not part of the room name

    run(scenario())


# -- awareness ----------------------------------------------------------------------


def test_new_client_gets_present_awareness_and_removal_on_close(server: YsyncProcess) -> None:
    async def scenario() -> None:
        async with connect(server.ws_url, "presence") as a:
            await a.synced()
            a.awareness.set_local_state({"user": "alice"})
            async with connect(server.ws_url, "presence") as b:
                # Sent at connect, not 15 s later at the next renewal.
                await b.awareness.wait_for(
                    lambda s: client_fields(s.get(a.doc.client_id)) == {"user": "alice"}, 3
                )
                b.awareness.set_local_state({"user": "bob"})
                await a.awareness.wait_for(lambda s: b.doc.client_id in s, 3)
            await a.awareness.wait_for(lambda s: b.doc.client_id not in s, 3)

    run(scenario())


def test_abrupt_disconnect_removes_awareness(server: YsyncProcess) -> None:
    async def scenario() -> None:
        async with connect(server.ws_url, "abrupt") as watcher:
            await watcher.synced()
            ghost = await raw(server, "abrupt")
            entry = codec.AwarenessEntry(777, 1, '{"cursor":1}')
            await ghost.send(codec.encode_awareness([entry]))
            await watcher.awareness.wait_for(lambda s: 777 in s, 3)
            ghost.transport.abort()  # no close frame, as when a laptop lid shuts
            await watcher.awareness.wait_for(lambda s: 777 not in s, 5)

    run(scenario())


def test_echoed_awareness_is_not_relayed(server: YsyncProcess) -> None:
    async def scenario() -> None:
        a = await raw(server, "echo")
        b = await raw(server, "echo")
        entry = codec.AwarenessEntry(11, 3, '{"x":1}')
        await a.send(codec.encode_awareness([entry]))
        (relayed,) = (await next_of(b, codec.AwarenessUpdate)).entries
        assert (relayed.client_id, relayed.clock) == (11, 3)
        assert client_fields(json.loads(relayed.state)) == {"x": 1}  # plus the server's "ysync"
        # A new client id is told "removed" at its own clock, so a JS client
        # re-announces itself at a clock nobody has seen yet.
        nudge = await next_of(a, codec.AwarenessUpdate)
        assert nudge.entries == (codec.AwarenessEntry(11, 3, "null"),)
        await b.send(codec.encode_awareness([relayed]))  # what a JS client does on receipt
        marker = codec.AwarenessEntry(12, 1, '{"marker":1}')
        await b.send(codec.encode_awareness([marker]))
        (got,) = (await next_of(a, codec.AwarenessUpdate)).entries
        assert got.client_id == 12 and client_fields(json.loads(got.state)) == {"marker": 1}
        await a.close()
        await b.close()

    run(scenario())


# -- bad input ---------------------------------------------------------------------

BAD_FRAMES = {
    "garbage": (b"\xff\xfe\xfd", "message type"),
    "empty": (b"", "truncated"),
    "truncated": (codec.encode_update(text_update("x"))[:-4], "exceeds"),
    "unknown type": (b"\x09", "unknown message type"),
    "unknown sync type": (b"\x00\x07\x00", "unknown sync message type"),
    "huge varint": (b"\x00\x02\xff\xff\xff\xff\xff\xff\xff\xff\x01", "varint"),
    "length beyond data": (b"\x00\x02\x64\x01\x02", "exceeds"),
    "update pycrdt rejects": (codec.encode_update(b"\x01\x01\x01"), "update"),
    "bad awareness json": (codec.encode_awareness([codec.AwarenessEntry(1, 1, "{nope")]), "JSON"),
    "bad state vector": (codec.encode_sync_step1(b"\x05\x01"), "state vector"),
}


@pytest.mark.parametrize("name", list(BAD_FRAMES))
def test_bad_input_closes_only_that_connection(server: YsyncProcess, name: str) -> None:
    frame, reason_part = BAD_FRAMES[name]
    room = f"bad-{name}"

    async def scenario() -> None:
        async with connect(server.ws_url, room) as good, connect(server.ws_url, room) as other:
            await good.synced()
            await other.synced()
            good.doc.get("t", type=Text).insert(0, "before")
            await wait_until(lambda: str(other.doc.get("t", type=Text)) == "before")
            bad = await raw(server, room)
            await bad.send(frame)
            code, reason = await close_code(bad)
            assert code == 4400
            assert reason is not None and reason_part in reason
            # The room, its document and its other clients are untouched.
            good.doc.get("t", type=Text).insert(6, " after")
            await wait_until(lambda: str(other.doc.get("t", type=Text)) == "before after")

    run(scenario())


def test_text_frames_and_nameless_documents_are_refused(server: YsyncProcess) -> None:
    async def scenario() -> None:
        ws = await raw(server, "text-frames")
        await ws.send("hello")
        code, reason = await close_code(ws)
        assert code == 4400 and reason and "text frames" in reason
        # The root path, where the room name would be empty, speaks Hocuspocus: a
        # document without a name is refused there, and the socket stays.
        ws = await ws_connect(server.ws_url + "/", proxy=None)
        await ws.send(hocuspocus.encode("", hocuspocus.AuthToken("")))
        address, denied = hocuspocus.decode(await ws.recv())
        assert address == "" and isinstance(denied, hocuspocus.PermissionDenied)
        assert "room name missing" in denied.reason
        await ws.close()

    run(scenario())


def test_slow_consumer_is_cut_off_without_harming_the_room(tmp_path: Any) -> None:
    small_queue = ("--send-queue-bytes", "2000000", "--send-queue-frames", "256")
    with YsyncProcess(*small_queue, log_path=tmp_path / "log") as server:

        async def scenario() -> None:
            # max_queue=1: the client library stops reading, so TCP fills up.
            slow = await raw(server, "slow", max_queue=1)
            await slow.send(codec.encode_sync_step1(b"\x00"))
            async with (
                connect(server.ws_url, "slow") as writer,
                connect(server.ws_url, "slow") as fine,
            ):
                await writer.synced()
                await fine.synced()

                async def once_cut_off() -> tuple[int | None, str | None]:
                    # The slow client reads again only once the server gave up on it:
                    # its close frame waits behind what was buffered, and the server
                    # drops a client that does not answer a close within 15 s.
                    await wait_until(lambda: "slow consumer cut off" in server.log(), 60)
                    return await close_code(slow, timeout=30)

                slow_closed = asyncio.create_task(once_cut_off())
                text = writer.doc.get("t", type=Text)
                after_cut = 0
                # Up to 15 MB, more than loopback buffers plus the queue; once the slow
                # client is cut off, 20 more edits show the room still works.
                for _ in range(300):
                    text += "x" * 50_000
                    await asyncio.sleep(0.002)  # a pace a reading client keeps up with
                    if after_cut or "slow consumer cut off" in server.log():
                        after_cut += 1
                        if after_cut > 20:
                            break
                expected = len(text)
                await wait_until(lambda: len(fine.doc.get("t", type=Text)) == expected, 30)
                assert fine.close_code is None  # the reading client was not cut off
                code, reason = await slow_closed
                assert code == 4508, (code, reason, server.log())
                assert reason and "slow consumer" in reason

        run(scenario())


# -- load shapes the Python baseline fails ----------------------------------------------


def test_burst_of_200_rooms_with_2_clients_all_sync(server: YsyncProcess) -> None:
    async def one_room(i: int) -> None:
        async with (
            connect(server.ws_url, f"burst-{i}") as a,
            connect(server.ws_url, f"burst-{i}") as b,
        ):
            await a.synced(20)
            await b.synced(20)

    async def scenario() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(one_room(i) for i in range(200)))
        return time.perf_counter() - started

    elapsed = run(scenario())
    print(f"200 rooms x 2 clients connected and synced in {elapsed:.2f} s")


def test_many_clients_leaving_at_once_do_not_stall_the_rest(server: YsyncProcess) -> None:
    async def scenario() -> None:
        async with (
            connect(server.ws_url, "exodus") as stayer,
            connect(server.ws_url, "exodus") as writer,
        ):
            await stayer.synced()
            await writer.synced()
            # max_queue=None: a client that never reads its (awareness) messages would
            # otherwise stop reading the socket, miss the server's FIN after the close
            # handshake and wait out its 10 s close_timeout.
            leavers = [await raw(server, "exodus", max_queue=None) for _ in range(40)]
            for ws in leavers:
                await ws.send(codec.encode_sync_step1(b"\x00"))
                await ws.send(
                    codec.encode_awareness([codec.AwarenessEntry(id(ws) % 2**31, 1, "{}")])
                )
            await asyncio.gather(*(ws.close() for ws in leavers[:20]))
            for ws in leavers[20:]:
                ws.transport.abort()
            writer.doc.get("t", type=Text).insert(0, "still here")
            await wait_until(lambda: str(stayer.doc.get("t", type=Text)) == "still here")

    run(scenario())


# -- HTTP --------------------------------------------------------------------------


def test_health_readiness_and_json_errors(server: YsyncProcess) -> None:
    assert http_get(server, "/healthz") == (200, {"status": "ok"})
    assert http_get(server, "/readyz") == (200, {"ready": True, "problems": []})
    status, body = http_get(server, "/no/such/endpoint")
    assert status == 404 and body == {"error": "Not Found", "code": "not_found"}


def test_broadcasts_are_written_straight_to_the_transport(server: YsyncProcess) -> None:
    # Under `ysync serve` (uvicorn, no compression) frames skip the ASGI send path;
    # tests/test_embedding.py covers the queued path of a host app that wraps `send`.
    async def scenario() -> None:
        async with connect(server.ws_url, "direct") as a:
            await a.synced()
            status, body = http_get(server, "/api/rooms/direct")
            assert status == 200
            assert [c["direct_send"] for c in body["connections"]] == [True]

    run(scenario())


def test_path_prefix(tmp_path: Any) -> None:
    with YsyncProcess("--path-prefix", "/ws/", log_path=tmp_path / "log") as server:

        async def scenario() -> None:
            async with connect(server.ws_url + "/ws", "prefixed/room") as a:
                await a.synced()
            status, body = http_get(server, "/api/rooms")
            assert status == 200
            assert [room["name"] for room in body["rooms"]] == ["prefixed/room"]

        run(scenario())


def test_sigterm_closes_clients_with_a_reconnect_code_and_exits_cleanly(tmp_path: Any) -> None:
    server = YsyncProcess(log_path=tmp_path / "log").start()
    try:

        async def scenario() -> tuple[int | None, str | None]:
            ws = await raw(server, "bye")
            await ws.send(codec.encode_sync_step1(b"\x00"))
            await next_of(ws, codec.SyncStep2)
            server.proc.terminate()  # type: ignore[union-attr]
            return await close_code(ws)

        code, _ = run(scenario())
        assert code in (1001, 1012)  # the JS provider reconnects after these
        # uvicorn re-raises the SIGTERM after a clean shutdown, so -15 is a clean exit.
        assert server.stop() in (0, -signal.SIGTERM)
        assert "all accepted updates committed" in server.log()
    finally:
        server.stop()
