"""Several ysync nodes over a real redis-server: convergence, late joiners, presence, faults."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Array, Doc, Map, Text

from ysync.clients import Session, connect
from ysync.persistence.group_commit import GroupCommit
from ysync.persistence.memory import MemoryStore
from ysync.rooms import codec
from ysync.rooms.extensions import Extensions
from ysync.rooms.redis_bus import RedisBus
from ysync.rooms.registry import RoomRegistry
from ysync.rooms.replication import Replicator
from ysync.rooms.room import Source

from support import aio
from support.aio import run
from support.servers import RedisProcess, YsyncProcess

FAST = ("--node-ttl", "3", "--anti-entropy-interval", "1", "--unload-grace", "2")


async def wait_until(predicate: Any, timeout: float = 10) -> None:
    await aio.wait_until(predicate, timeout)


class Cluster:
    def __init__(self, tmp_path: Path, redis: RedisProcess, count: int) -> None:
        store = f"sqlite:///{tmp_path}/shared.db"
        self.nodes = [
            YsyncProcess(
                "--redis-url", redis.url, *FAST, store=store, log_path=tmp_path / f"n{i}.log"
            )
            for i in range(count)
        ]

    def urls(self) -> list[str]:
        return [node.ws_url for node in self.nodes]


@pytest.fixture
def redis() -> Iterator[RedisProcess]:
    with RedisProcess() as process:
        yield process


@pytest.fixture
def cluster(tmp_path: Path, redis: RedisProcess) -> Iterator[Cluster]:
    nodes = Cluster(tmp_path, redis, 3)
    with ExitStack() as stack:
        for node in nodes.nodes:
            stack.enter_context(node)
        yield nodes


def content(doc: Doc) -> tuple[str, Any, Any]:
    return (
        str(doc.get("t", type=Text)),
        doc.get("m", type=Map).to_py(),
        doc.get("a", type=Array).to_py(),
    )


def converged(sessions: list[Session]) -> bool:
    vectors = [codec.decode_state_vector(s.doc.get_state()) for s in sessions]
    contents = [content(s.doc) for s in sessions]
    return all(v == vectors[0] for v in vectors) and all(c == contents[0] for c in contents)


def random_edit(doc: Doc, rng: random.Random, tag: str) -> None:
    choice = rng.randrange(3)
    if choice == 0:
        text = doc.get("t", type=Text)
        text.insert(rng.randint(0, len(text)), tag)
    elif choice == 1:
        doc.get("m", type=Map)[f"k{rng.randrange(10)}"] = tag
    else:
        array = doc.get("a", type=Array)
        if len(array) and rng.random() < 0.3:
            del array[rng.randrange(len(array))]
        else:
            array.append(tag)


def test_clients_on_three_nodes_converge_byte_for_byte(cluster: Cluster) -> None:
    rng = random.Random(42)

    async def scenario() -> None:
        async with (
            connect(cluster.urls()[0], "shared") as a,
            connect(cluster.urls()[1], "shared") as b,
            connect(cluster.urls()[2], "shared") as c,
        ):
            sessions = [a, b, c]
            for s in sessions:
                await s.synced()
            for i in range(150):
                random_edit(sessions[i % 3].doc, rng, f"{i};")
                if i % 10 == 0:
                    await asyncio.sleep(0.005)
            await wait_until(lambda: converged(sessions), 15)
            updates = {doc_bytes(s.doc) for s in sessions}
            assert len(updates) == 1

    run(scenario())


def doc_bytes(doc: Doc) -> bytes:
    """The document re-encoded by one implementation: equal bytes mean equal documents."""
    copy = Doc()
    copy.apply_update(doc.get_update())
    return copy.get_update()


def test_late_joiner_on_a_third_node_sees_edits_made_a_moment_ago(cluster: Cluster) -> None:
    async def scenario() -> None:
        url_a, url_b, url_c = cluster.urls()
        async with (
            connect(url_a, "late") as a,
            connect(url_a, "late") as a_watch,
            connect(url_b, "late") as b,
        ):
            for s in (a, a_watch, b):
                await s.synced()
            a.doc.get("t", type=Text).insert(0, "from A. ")
            b.doc.get("m", type=Map)["b"] = "from B"
            # As soon as node A has it (its other client sees it), join on C.
            await wait_until(lambda: "from A" in str(a_watch.doc.get("t", type=Text)), 5)
            await wait_until(lambda: a_watch.doc.get("m", type=Map).get("b") == "from B", 5)
            async with connect(url_c, "late") as c:
                await c.synced()
                # In the first sync already: node C asked A and B while opening the room.
                assert "from A" in str(c.doc.get("t", type=Text))
                assert c.doc.get("m", type=Map).get("b") == "from B"

    run(scenario())


def test_rooms_stay_isolated_across_nodes(cluster: Cluster) -> None:
    async def scenario() -> None:
        url_a, url_b, _ = cluster.urls()
        async with connect(url_a, "iso/one") as one, connect(url_b, "iso/two") as two:
            await one.synced()
            await two.synced()
            one.doc.get("t", type=Text).insert(0, "one")
            async with connect(url_b, "iso/one") as one_on_b:
                await one_on_b.synced()
                await wait_until(lambda: str(one_on_b.doc.get("t", type=Text)) == "one")
            assert str(two.doc.get("t", type=Text)) == ""

    run(scenario())


def test_presence_crosses_nodes_and_vanishes_when_a_node_is_killed(cluster: Cluster) -> None:
    async def scenario() -> None:
        url_a, url_b, _ = cluster.urls()
        async with connect(url_b, "presence") as watcher:
            await watcher.synced()
            victim = await connect(url_a, "presence").__aenter__()
            await victim.synced()
            victim.awareness.set_local_state({"cursor": 1})
            await watcher.awareness.wait_for(lambda s: victim.doc.client_id in s, 5)
            await asyncio.to_thread(cluster.nodes[0].kill)
            # Gone within the node TTL (3 s here) plus one liveness check.
            await watcher.awareness.wait_for(lambda s: victim.doc.client_id not in s, 10)

    run(scenario())


def test_redis_down_for_seconds_then_everyone_converges(
    cluster: Cluster, redis: RedisProcess
) -> None:
    async def scenario() -> None:
        url_a, url_b, _ = cluster.urls()
        async with connect(url_a, "outage") as a, connect(url_b, "outage") as b:
            await a.synced()
            await b.synced()
            a.doc.get("a", type=Array).append("before")
            await wait_until(lambda: converged([a, b]))
            await asyncio.to_thread(redis.stop)
            for i in range(20):  # both keep editing; each node serves its own clients
                a.doc.get("a", type=Array).append(f"a{i}")
                b.doc.get("a", type=Array).append(f"b{i}")
                await asyncio.sleep(0.1)
            await asyncio.sleep(3)
            await asyncio.to_thread(redis.start)
            await wait_until(lambda: converged([a, b]), 20)
            items = set(a.doc.get("a", type=Array).to_py())
            assert {"before"} | {f"a{i}" for i in range(20)} | {f"b{i}" for i in range(20)} <= items

    run(scenario())


def test_clients_of_a_killed_node_move_to_a_survivor_and_lose_nothing(cluster: Cluster) -> None:
    async def scenario() -> None:
        url_a, url_b, _ = cluster.urls()
        async with connect(url_b, "failover") as stayer:
            await stayer.synced()
            mover_doc = Doc()
            async with connect(url_a, "failover", doc=mover_doc) as mover:
                await mover.synced()
                for i in range(30):
                    mover.doc.get("a", type=Array).append(f"m{i}")
                    stayer.doc.get("a", type=Array).append(f"s{i}")
                    if i == 15:
                        await asyncio.to_thread(cluster.nodes[0].kill)
                    await asyncio.sleep(0.02)
            # Reconnect elsewhere with the same document: the handshake uploads
            # whatever the survivor lacks (as the JS provider does).
            async with connect(url_b, "failover", doc=mover_doc) as moved:
                await moved.synced()
                expected = {f"m{i}" for i in range(30)} | {f"s{i}" for i in range(30)}
                await wait_until(lambda: expected <= set(stayer.doc.get("a", type=Array).to_py()))
                await wait_until(lambda: converged([moved, stayer]))

    run(scenario())


def test_a_dropped_publish_is_detected_as_a_gap_and_repaired(redis: RedisProcess) -> None:
    """In one process, two registries over the real Redis; one publish is lost."""

    async def scenario() -> None:
        buses = [RedisBus(redis.url, node_id=f"n{i}") for i in range(2)]
        registries = []
        replicators = []
        tasks = []
        for bus in buses:
            await bus.connect()
            store = MemoryStore()
            replicators.append(Replicator(bus))
            registries.append(
                RoomRegistry(store, GroupCommit(store, 0.01), Extensions([replicators[-1]]))
            )
            tasks.append(asyncio.create_task(bus.run()))
        room_a = await registries[0].acquire("gap")
        room_b = await registries[1].acquire("gap")

        def edit(content: str) -> None:
            doc = Doc()
            doc.apply_update(room_a.doc.get_update())
            before = doc.get_state()
            text = doc.get("t", type=Text)
            text.insert(len(text), content)
            room_a.apply_update(doc.get_update(before), Source.SERVER)

        real_publish = buses[0].publish
        buses[0].publish = lambda envelope: None  # type: ignore[method-assign]
        edit("lost ")
        buses[0].publish = real_publish  # type: ignore[method-assign]
        edit("and found")
        await wait_until(lambda: str(room_b.doc.get("t", type=Text)) == "lost and found", 5)
        assert replicators[1].resyncs >= 1
        for task in tasks:
            task.cancel()
        for bus in buses:
            await bus.close()

    run(scenario())


def test_two_worker_processes_share_the_port_and_one_truth(
    tmp_path: Path, redis: RedisProcess
) -> None:
    store = f"sqlite:///{tmp_path}/workers.db"
    with YsyncProcess(
        "--workers", "2", "--redis-url", redis.url, *FAST, store=store, log_path=tmp_path / "log"
    ) as server:

        async def scenario() -> None:
            import redis.asyncio as aioredis

            client = aioredis.Redis.from_url(redis.url)
            async with asyncio.timeout(10):
                while len(await client.keys("ysync:node:*")) < 2:  # both workers are up
                    await asyncio.sleep(0.05)
            await client.aclose()
            sessions = [await connect(server.ws_url, "workers").__aenter__() for _ in range(12)]
            for s in sessions:
                await s.synced()
            for i, s in enumerate(sessions):
                s.doc.get("a", type=Array).append(i)
            await wait_until(lambda: converged(sessions), 15)
            assert sorted(sessions[0].doc.get("a", type=Array).to_py()) == list(range(12))
            for s in sessions:
                await s.close()

        run(scenario())
