"""Presence you can trust, over real sockets: the verified identity stamped into
every awareness state, ownership of client ids (same node and across nodes),
and the flood bounds. Real ysync processes, real redis-server, real JS
y-websocket clients and raw WebSockets for what no well-behaved client sends."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from ysync.clients import room_url
from ysync.rooms import codec

from support import aio
from support import authtokens as tk
from support.jsclient import JSClient
from support.servers import RedisProcess, YsyncProcess

VICTIM = {"user": {"name": "Victim"}, "cursor": 1}
SPOOF = {"user": {"name": "Mallory"}, "cursor": 99}


def run(coro: Any) -> Any:
    return aio.run(coro, timeout=90)


async def raw(url: str, room: str, **params: str) -> ClientConnection:
    return await ws_connect(room_url(url, room, params or None), compression=None, proxy=None)


def send_awareness(*entries: tuple[int, int, Any]) -> bytes:
    return codec.encode_awareness(
        [codec.AwarenessEntry(c, k, json.dumps(s)) for c, k, s in entries]
    )


def dropped(server: YsyncProcess, reason: str) -> float:
    with urllib.request.urlopen(server.http_url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    prefix = f'ysync_awareness_dropped_total{{reason="{reason}"}} '
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(lines[0].removeprefix(prefix)) if lines else 0.0


async def state_of(client: JSClient, client_id: int) -> Any:
    return (await client.call("awareness_states"))["states"].get(str(client_id))


async def still(client: JSClient, client_id: int, expected: dict[str, Any]) -> None:
    """`client_id`'s state is `expected` (ysync field aside), a round trip after the spoof."""
    await client.call("wait_awareness", client_id=client_id, equals=expected)


@pytest.fixture(scope="module")
def jwt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YsyncProcess]:
    log = tmp_path_factory.mktemp("jwt") / "ysync.log"
    with YsyncProcess(*tk.JWT_FLAGS, log_path=log) as process:
        yield process


def test_each_js_client_sees_the_others_verified_name(
    js_clients_dir: Path, jwt_server: YsyncProcess
) -> None:
    room = "trust/names"
    ada = tk.token("ada", {"trust/*": "editor"}, name="Ada Lovelace", color="#e11d48")
    bob = tk.token("bob", {"trust/*": "viewer"}, name="Bob", avatar="https://x.test/b.png")

    async def scenario() -> None:
        async with JSClient.start(js_clients_dir) as a, JSClient.start(js_clients_dir) as b:
            for client, token in ((a, ada), (b, bob)):
                await client.call(
                    "connect", url=jwt_server.ws_url, room=room, params={"token": token}
                )
                await client.call("wait_synced", timeout_ms=10_000)
            # Each claims to be someone else, in its own fields and in the server's.
            forged = {"user": {"name": "Root"}, "ysync": {"userId": "admin", "name": "Root"}}
            a_id = (await a.call("awareness_set", state={**forged, "cursor": 3}))["client_id"]
            b_id = (await b.call("awareness_set", state=forged))["client_id"]
            ada_seen = {
                "user": {"name": "Root"},
                "cursor": 3,
                "ysync": {
                    "userId": "ada",
                    "name": "Ada Lovelace",
                    "role": "editor",
                    "color": "#e11d48",
                },
            }
            bob_seen = {
                "user": {"name": "Root"},
                "ysync": {
                    "userId": "bob",
                    "name": "Bob",
                    "role": "viewer",
                    "avatar": "https://x.test/b.png",
                },
            }
            await b.call("wait_awareness", client_id=a_id, equals=ada_seen)
            await a.call("wait_awareness", client_id=b_id, equals=bob_seen)

    run(scenario())


def test_a_raw_client_cannot_change_or_remove_another_connections_state(
    js_clients_dir: Path, tmp_path: Path
) -> None:
    """Same node, --auth none: the spoofer stays connected, nothing it sent is relayed."""
    room = "trust/spoof"
    with YsyncProcess(log_path=tmp_path / "log") as server:

        async def scenario() -> None:
            async with (
                JSClient.start(js_clients_dir) as victim,
                JSClient.start(js_clients_dir) as watcher,
            ):
                for client in (victim, watcher):
                    await client.call("connect", url=server.ws_url, room=room)
                    await client.call("wait_synced", timeout_ms=10_000)
                vid = (await victim.call("awareness_set", state=VICTIM))["client_id"]
                await watcher.call("wait_awareness", client_id=vid, equals=VICTIM)
                stamp = (await state_of(watcher, vid))["ysync"]
                assert stamp["anonymous"] is True and stamp["userId"].startswith("anon-")
                attacker = await raw(server.ws_url, room)
                # A newer clock, then a removal, for the victim's id; then its own cursor.
                await attacker.send(send_awareness((vid, 1000, SPOOF)))
                await attacker.send(
                    codec.encode_awareness([codec.AwarenessEntry(vid, 1001, "null")])
                )
                await attacker.send(send_awareness((4242, 1, {"own": True})))
                await watcher.call("wait_awareness", client_id=4242, equals={"own": True})
                # The own cursor came after the spoofs on one socket: they were handled.
                await still(watcher, vid, VICTIM)
                await still(victim, vid, VICTIM)
                assert (await state_of(victim, 4242))["ysync"]["anonymous"] is True
                await aio.wait_until(lambda: dropped(server, "foreign") >= 2, 5)
                await attacker.send(codec.encode_query_awareness())  # still connected
                await attacker.close()

        run(scenario())
        assert server.log().count("another connection owns") == 1  # logged once per connection


def test_a_client_on_another_node_cannot_spoof_either(js_clients_dir: Path, tmp_path: Path) -> None:
    room = "trust/cluster"
    store = f"sqlite:///{tmp_path}/shared.db"
    with (
        RedisProcess() as redis,
        YsyncProcess("--redis-url", redis.url, store=store, log_path=tmp_path / "a.log") as node_a,
        YsyncProcess("--redis-url", redis.url, store=store, log_path=tmp_path / "b.log") as node_b,
    ):

        async def scenario() -> None:
            async with (
                JSClient.start(js_clients_dir) as victim,
                JSClient.start(js_clients_dir) as watcher,
            ):
                await victim.call("connect", url=node_a.ws_url, room=room)
                await watcher.call("connect", url=node_b.ws_url, room=room)
                for client in (victim, watcher):
                    await client.call("wait_synced", timeout_ms=10_000)
                vid = (await victim.call("awareness_set", state=VICTIM))["client_id"]
                await watcher.call(
                    "wait_awareness", client_id=vid, equals=VICTIM, timeout_ms=10_000
                )
                attacker = await raw(node_b.ws_url, room)
                await attacker.send(send_awareness((vid, 5000, SPOOF)))
                await attacker.send(
                    codec.encode_awareness([codec.AwarenessEntry(vid, 5001, "null")])
                )
                await attacker.send(send_awareness((7777, 1, {"own": True})))
                # The attacker's own cursor crossed to node A: so would have its spoofs.
                await victim.call(
                    "wait_awareness", client_id=7777, equals={"own": True}, timeout_ms=10_000
                )
                await still(victim, vid, VICTIM)
                await still(watcher, vid, VICTIM)
                await aio.wait_until(lambda: dropped(node_b, "foreign") >= 2, 5)
                await attacker.close()

        run(scenario())


def test_one_flooding_message_is_bounded_and_other_rooms_carry_on(tmp_path: Path) -> None:
    """100,000 entries in one message (1.2 MB, within the default rate burst): the
    first 1,000 read, 4 kept; the other rooms are served meanwhile."""
    with YsyncProcess(log_path=tmp_path / "log") as server:

        async def scenario() -> None:
            flooder = await raw(server.ws_url, "flood/room")
            entries = [codec.AwarenessEntry(i, 1, '{"x":1}') for i in range(1, 100_001)]
            await flooder.send(codec.encode_awareness(entries))
            big = {"blob": "x" * 9000}
            await flooder.send(send_awareness((900_001, 1, big)))
            # A bystander in another room and a newcomer in the flooded one.
            bystander = await raw(server.ws_url, "flood/other")
            await bystander.send(send_awareness((5, 1, {"here": True})))
            await bystander.send(codec.encode_query_awareness())
            async with asyncio.timeout(30):
                while True:
                    message = codec.decode(await bystander.recv())
                    if isinstance(message, codec.AwarenessUpdate) and any(
                        e.client_id == 5 for e in message.entries
                    ):
                        break
            newcomer = await raw(server.ws_url, "flood/room")
            await newcomer.send(codec.encode_query_awareness())
            async with asyncio.timeout(30):
                while True:
                    message = codec.decode(await newcomer.recv())
                    if isinstance(message, codec.AwarenessUpdate) and message.entries:
                        break
            assert sorted(e.client_id for e in message.entries) == [1, 2, 3, 4]
            await aio.wait_until(lambda: dropped(server, "truncated") == 99_000, 10)
            await aio.wait_until(
                lambda: dropped(server, "over_cap") == 996 + 1, 5
            )  # the big one is past the cap too
            for ws in (flooder, bystander, newcomer):
                await ws.close()

        run(scenario())


def test_a_state_over_the_size_bound_is_dropped(tmp_path: Path) -> None:
    with YsyncProcess("--awareness-state-bytes", "1024", log_path=tmp_path / "log") as server:

        async def scenario() -> None:
            sender = await raw(server.ws_url, "flood/size")
            await sender.send(send_awareness((1, 1, {"blob": "x" * 2000})))
            await sender.send(send_awareness((2, 1, {"ok": True})))
            await sender.send(codec.encode_query_awareness())
            async with asyncio.timeout(10):
                while True:
                    message = codec.decode(await sender.recv())
                    if isinstance(message, codec.AwarenessUpdate) and any(
                        not e.removed for e in message.entries
                    ):
                        break
            assert [e.client_id for e in message.entries if not e.removed] == [2]
            await aio.wait_until(lambda: dropped(server, "too_large") == 1, 5)
            await sender.close()

        run(scenario())
