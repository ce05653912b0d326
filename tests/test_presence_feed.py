"""Presence events on the SSE feed from a real node: joined, updated (coalesced),
left after the debounce and not at all for a quick reconnect, Last-Event-ID resume."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

from ysync.clients import connect
from ysync.clients.http import AsyncClient, FeedEvent

from support import aio
from support import authtokens as tk
from support.servers import RedisProcess, YsyncProcess


def subscribers(server: YsyncProcess) -> float:
    with urllib.request.urlopen(server.http_url + "/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("ysync_feed_subscribers "):
                return float(line.split()[1])
    return 0.0


DEBOUNCE = 1.5  # shorter than the 3 s default: the test waits for it


def test_joined_updated_left_and_resume(tmp_path: Path) -> None:
    room = "feed/presence"
    ada = tk.token("ada", {"feed/*": "editor"}, name="Ada")
    reader = tk.token("watch", {"feed/*": "viewer"})
    flags = ("--presence-leave-debounce", str(DEBOUNCE))
    with YsyncProcess(*tk.JWT_FLAGS, *flags, log_path=tmp_path / "log") as server:
        got: list[FeedEvent] = []

        async def follow() -> None:
            async with AsyncClient(server.http_url, token=reader) as api:
                async for event in api.events(room):
                    got.append(event)

        def types() -> list[str]:
            return [e.type for e in got]

        async def scenario() -> list[FeedEvent]:
            follower = asyncio.create_task(follow())
            await aio.wait_until(lambda: subscribers(server) == 1, 5)
            async with connect(server.ws_url, room, params={"token": ada}) as tab:
                await tab.synced()
                tab.awareness.set_local_state({"cursor": 0})
                await aio.wait_until(lambda: "presence.joined" in types(), 5)
                for x in range(1, 30):
                    tab.awareness.set_local_state({"cursor": x})
                await aio.wait_until(
                    lambda: (
                        got[-1].type == "presence.updated"
                        and got[-1].data["state"] == {"cursor": 29}
                    ),
                    5,
                )
            # A reload: the old connection closes, a new one comes within the debounce.
            async with connect(server.ws_url, room, params={"token": ada}) as again:
                await again.synced()
                again.awareness.set_local_state({"cursor": 30})
                await asyncio.sleep(DEBOUNCE + 0.5)  # past the debounce: still no leave
                assert "presence.left" not in types()
            await aio.wait_until(lambda: "presence.left" in types(), DEBOUNCE + 5)
            follower.cancel()
            return list(got)

        events = aio.run(scenario(), timeout=60)
        kinds = [e.type for e in events]
        assert kinds.count("presence.joined") == 1 and kinds.count("presence.left") == 1
        joined = events[kinds.index("presence.joined")]
        assert joined.data["userId"] == "ada" and joined.data["name"] == "Ada"
        assert joined.data["state"] == {"cursor": 0}
        updates = [e for e in events if e.type == "presence.updated"]
        assert 1 <= len(updates) < 29  # coalesced: the latest state wins
        assert events[-1].data == {"userId": "ada"}

        async def resume() -> list[str]:
            seen: list[str] = []
            async with AsyncClient(server.http_url, token=reader) as api:
                async with asyncio.timeout(10):
                    async for event in api.events(room, last_event_id=joined.id):
                        seen.append(event.type)
                        if event.type == "presence.left":
                            return seen
            return seen

        resumed = aio.run(resume(), timeout=30)
        assert resumed[-1] == "presence.left" and "presence.joined" not in resumed


def test_in_a_cluster_each_leave_is_told_once_even_for_a_dead_node(tmp_path: Path) -> None:
    room = "feed/cluster"
    store = f"sqlite:///{tmp_path}/shared.db"
    flags = (
        "--presence-leave-debounce",
        str(DEBOUNCE),
        "--node-ttl",
        "3",
        "--anti-entropy-interval",
        "1",
    )
    with RedisProcess() as redis:
        node_a = YsyncProcess(
            "--redis-url", redis.url, *flags, store=store, log_path=tmp_path / "a.log"
        ).start()
        try:
            with YsyncProcess(
                "--redis-url", redis.url, *flags, store=store, log_path=tmp_path / "b.log"
            ) as node_b:
                got: list[FeedEvent] = []

                async def follow() -> None:
                    async with AsyncClient(node_b.http_url) as api:
                        async for event in api.events(room):
                            got.append(event)

                def lefts() -> list[str]:
                    return [e.data["userId"] for e in got if e.type == "presence.left"]

                def joined() -> list[str]:
                    return [e.data["userId"] for e in got if e.type == "presence.joined"]

                async def scenario() -> None:
                    follower = asyncio.create_task(follow())
                    await aio.wait_until(lambda: subscribers(node_b) == 1, 5)
                    async with connect(node_b.ws_url, room) as watcher:
                        await watcher.synced()
                        watcher.awareness.set_local_state({"here": "b"})
                        ada = await connect(node_a.ws_url, room)
                        await ada.synced()
                        ada.awareness.set_local_state({"here": "a"})
                        async with connect(node_a.ws_url, room) as bob:
                            await bob.synced()
                            bob.awareness.set_local_state({"here": "a2"})
                            await aio.wait_until(lambda: len(joined()) == 3, 10)
                        # A clean leave on A: seen by A and B, told once.
                        await aio.wait_until(lambda: len(lefts()) == 1, DEBOUNCE + 5)
                        # A dies with ada connected: B tells her leave.
                        node_a.kill()
                        await aio.wait_until(lambda: len(lefts()) == 2, 3 + DEBOUNCE + 8)
                        await asyncio.sleep(1.0)  # a duplicate would have come by now
                        await ada.close(timeout=1)
                    follower.cancel()

                aio.run(scenario(), timeout=60)
                assert len(set(lefts())) == 2 == len(lefts())
                assert len(set(joined())) == 3
        finally:
            node_a.stop()
