"""Replication between nodes, in one process over LocalBus: convergence, gaps, presence."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from pycrdt import Array, Doc, Map, Text

from ysync.persistence.group_commit import GroupCommit
from ysync.persistence.memory import MemoryStore
from ysync.rooms import codec
from ysync.rooms.extensions import Extensions
from ysync.rooms.local_bus import LocalBus, LocalHub
from ysync.rooms.registry import RoomRegistry
from ysync.rooms.replication import Replicator
from ysync.rooms.room import Room

from support import aio
from support.fakes import FakePeer, feed


def run(coro: Any) -> Any:
    return aio.run(coro, timeout=30)


class Cluster:
    """N registries sharing one store and one LocalHub, as N nodes would."""

    def __init__(self, count: int) -> None:
        self.hub = LocalHub()
        self.store = MemoryStore()
        self.nodes: list[RoomRegistry] = []
        self.replicators: list[Replicator] = []
        for i in range(count):
            replicator = Replicator(LocalBus(self.hub, node_id=f"node-{i}"))
            log = GroupCommit(self.store, 0.001)
            self.nodes.append(RoomRegistry(self.store, log, Extensions([replicator])))
            self.replicators.append(replicator)


def client_edit(room: Room, peer: FakePeer, mutate: Any) -> None:
    """Make an edit on a scratch doc that knows the room's state, send it as `peer`."""
    doc = Doc()
    doc.apply_update(room.doc.get_update())
    before = doc.get_state()
    mutate(doc)
    feed(room, peer, codec.encode_update(doc.get_update(before)))


def test_random_edits_on_three_nodes_converge_byte_for_byte() -> None:
    rng = random.Random(7)

    async def scenario() -> None:
        cluster = Cluster(3)
        rooms = [await node.acquire("doc") for node in cluster.nodes]
        peers = [FakePeer() for _ in rooms]
        for room, peer in zip(rooms, peers, strict=True):
            room.join(peer)
        for i in range(300):
            k = rng.randrange(3)

            def mutate(doc: Doc, i: int = i) -> None:
                choice = rng.randrange(3)
                if choice == 0:
                    text = doc.get("t", type=Text)
                    text.insert(rng.randint(0, len(text)), f"{i};")
                elif choice == 1:
                    doc.get("m", type=Map)[f"k{rng.randrange(20)}"] = i
                else:
                    array = doc.get("a", type=Array)
                    if len(array) and rng.random() < 0.3:
                        del array[rng.randrange(len(array))]
                    else:
                        array.append(i)

            client_edit(rooms[k], peers[k], mutate)
            if rng.random() < 0.5:
                await cluster.hub.settled()  # sometimes edits cross in flight
        await cluster.hub.settled()
        vectors = [codec.decode_state_vector(room.doc.get_state()) for room in rooms]
        assert vectors[0] == vectors[1] == vectors[2]
        contents = [
            (
                str(room.doc.get("t", type=Text)),
                room.doc.get("m", type=Map).to_py(),
                room.doc.get("a", type=Array).to_py(),
            )
            for room in rooms
        ]
        assert contents[0] == contents[1] == contents[2]

    run(scenario())


def test_late_joiner_gets_edits_not_yet_in_the_store() -> None:
    async def scenario() -> None:
        cluster = Cluster(2)
        a = await cluster.nodes[0].acquire("doc")
        peer = FakePeer()
        a.join(peer)
        client_edit(a, peer, lambda doc: doc.get("t", type=Text).insert(0, "fresh"))
        assert await cluster.store.load("doc") == []  # not flushed yet
        b = await cluster.nodes[1].acquire("doc")  # catches up from node 0 while opening
        assert str(b.doc.get("t", type=Text)) == "fresh"

    run(scenario())


def test_a_lost_message_is_detected_as_a_gap_and_repaired() -> None:
    async def scenario() -> None:
        cluster = Cluster(2)
        a = await cluster.nodes[0].acquire("doc")
        b = await cluster.nodes[1].acquire("doc")
        peer = FakePeer()
        a.join(peer)
        cluster.hub.dropping.add("node-0")  # pub/sub loses this one
        client_edit(a, peer, lambda doc: doc.get("t", type=Text).insert(0, "lost "))
        cluster.hub.dropping.clear()
        assert str(b.doc.get("t", type=Text)) == ""
        client_edit(a, peer, lambda doc: doc.get("t", type=Text).insert(5, "then found"))
        await cluster.hub.settled()
        assert str(b.doc.get("t", type=Text)) == "lost then found"
        assert cluster.replicators[1].resyncs == 1

    run(scenario())


def test_a_lost_last_message_is_repaired_by_anti_entropy() -> None:
    async def scenario() -> None:
        cluster = Cluster(2)
        a = await cluster.nodes[0].acquire("doc")
        b = await cluster.nodes[1].acquire("doc")
        peer = FakePeer()
        a.join(peer)
        cluster.hub.dropping.add("node-0")
        client_edit(a, peer, lambda doc: doc.get("t", type=Text).insert(0, "x"))
        text = a.doc.get("t", type=Text)
        del text[0:1]  # a delete: invisible in state vectors, visible in seq numbers
        cluster.hub.dropping.clear()
        cluster.replicators[0].anti_entropy_interval = 0.01
        task = asyncio.create_task(cluster.replicators[0].run())
        async with asyncio.timeout(5):
            while b.doc.get_update() != a.doc.get_update():
                await asyncio.sleep(0.01)
        task.cancel()
        assert str(b.doc.get("t", type=Text)) == ""

    run(scenario())


def test_presence_crosses_nodes_and_vanishes_when_a_node_dies() -> None:
    async def scenario() -> None:
        cluster = Cluster(2)
        a = await cluster.nodes[0].acquire("doc")
        b = await cluster.nodes[1].acquire("doc")
        on_a, on_b = FakePeer(), FakePeer()
        a.join(on_a)
        b.join(on_b)
        feed(a, on_a, codec.encode_awareness([codec.AwarenessEntry(5, 1, '{"u":1}')]))
        await cluster.hub.settled()
        assert [e.client_id for e in b.awareness.states()] == [5]
        await cluster.replicators[0].bus.close()  # node 0 dies: heartbeat gone
        await cluster.replicators[1].drop_dead_nodes()
        assert b.awareness.states() == []
        removal = codec.decode(on_b.frames[-1])
        assert isinstance(removal, codec.AwarenessUpdate) and removal.entries[0].removed

    run(scenario())


def test_clean_shutdown_says_goodbye() -> None:
    async def scenario() -> None:
        cluster = Cluster(2)
        a = await cluster.nodes[0].acquire("doc")
        b = await cluster.nodes[1].acquire("doc")
        on_a = FakePeer()
        a.join(on_a)
        feed(a, on_a, codec.encode_awareness([codec.AwarenessEntry(5, 1, '{"u":1}')]))
        await cluster.hub.settled()
        assert b.awareness.states()
        cluster.replicators[0].say_goodbye()
        await cluster.hub.settled()
        assert b.awareness.states() == []

    run(scenario())


def test_the_store_is_checked_after_a_gap_repair_a_node_gone_and_a_reconnect() -> None:
    async def scenario() -> None:
        cluster = Cluster(2)
        checked: list[str] = []
        cluster.replicators[1].store_checks.append(lambda room: checked.append(room.name))
        a = await cluster.nodes[0].acquire("doc")
        await cluster.nodes[1].acquire("doc")
        peer = FakePeer()
        a.join(peer)
        cluster.hub.dropping.add("node-0")
        client_edit(a, peer, lambda doc: doc.get("t", type=Text).insert(0, "lost "))
        cluster.hub.dropping.clear()
        client_edit(a, peer, lambda doc: doc.get("t", type=Text).insert(5, "found"))
        await cluster.hub.settled()
        assert checked == ["doc"]  # the gap repaired: the store may lack what node 0 held
        cluster.replicators[0].say_goodbye()
        await cluster.hub.settled()
        assert checked == ["doc", "doc"]
        cluster.replicators[1].resync_all()
        assert checked == ["doc", "doc", "doc"]

    run(scenario())
