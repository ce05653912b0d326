"""Awareness batched per room per tick (`ysync.server.awareness_batches`), on a real room.

No sockets: recording peers. The tick's timer runs on a real event loop; every wait is
for that timer to fire (timers fire in deadline order), never a timing assertion.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from ysync.rooms import codec
from ysync.rooms.codec import AwarenessEntry
from ysync.rooms.room import Room
from ysync.server.awareness_batches import SHEDDING_STRETCH, AwarenessBatches
from ysync.server.output_budget import OutputBudget

from support.fakes import FakePeer
from support.presence import client_fields

TICK = 0.05


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 10))


def batched_room(batches: AwarenessBatches, *names: str) -> tuple[Room, list[FakePeer]]:
    room = Room("canvas")
    batches.attach(room)
    peers = [FakePeer(name) for name in names]
    for peer in peers:
        room.join(peer)
        peer.take()
    return room, peers


def move(room: Room, peer: FakePeer, client_id: int, clock: int, **state: Any) -> None:
    entry = AwarenessEntry(client_id, clock, json.dumps(state or {"x": clock}))
    room.receive(peer, codec.AwarenessUpdate((entry,)), now=0.0)


def awareness_frames(peer: FakePeer) -> list[dict[int, AwarenessEntry]]:
    """Each awareness frame `peer` got since last asked, as {client id: entry}."""
    return [
        {e.client_id: e for e in m.entries}
        for m in peer.take()
        if isinstance(m, codec.AwarenessUpdate)
    ]


def echoes(sender: FakePeer) -> list[dict[int, AwarenessEntry]]:
    """What `sender` got back of states (not the "you were removed" nudge the room sends
    a client it sees for the first time, so it bumps its clock: `AwarenessState.nudges_for`)."""
    return [f for f in awareness_frames(sender) if not all(e.removed for e in f.values())]


async def next_tick() -> None:
    await asyncio.sleep(TICK * 1.5)  # the batch timer (due at one tick) fires first


def test_a_lone_move_goes_out_at_once() -> None:
    async def scenario() -> None:
        room, (a, b) = batched_room(AwarenessBatches(TICK), "a", "b")
        move(room, a, 1, 1)
        # Synchronously: no tick waited for.
        assert [list(f) for f in awareness_frames(b)] == [[1]]
        assert echoes(a) == []  # not echoed to its sender

    run(scenario)


def test_moves_within_a_tick_go_out_as_one_frame_with_every_latest_state() -> None:
    async def scenario() -> None:
        room, (a, b, c) = batched_room(AwarenessBatches(TICK), "a", "b", "c")
        move(room, a, 1, 1)
        assert len(awareness_frames(b)) == 1
        for clock in (2, 3, 4):
            move(room, a, 1, clock)
        move(room, c, 2, 1)
        move(room, c, 2, 2)
        assert awareness_frames(b) == []  # batched until the tick ends
        await next_tick()
        [frame] = awareness_frames(b)
        assert {cid: e.clock for cid, e in frame.items()} == {1: 4, 2: 2}
        assert client_fields(json.loads(frame[1].state)) == {"x": 4}
        # Changes of two peers: both get the batch (their own entries too, at clocks they
        # already have, which y-protocols ignores).
        assert len(echoes(a)) == 1 and len(echoes(c)) == 2

    run(scenario)


def test_a_batch_of_one_peers_changes_is_not_sent_back_to_it() -> None:
    async def scenario() -> None:
        room, (a, b) = batched_room(AwarenessBatches(TICK), "a", "b")
        for clock in (1, 2, 3):
            move(room, a, 1, clock)
        await next_tick()
        assert [{cid: e.clock for cid, e in f.items()} for f in awareness_frames(b)] == [
            {1: 1},
            {1: 3},
        ]
        assert echoes(a) == []

    run(scenario)


def test_a_removal_waits_at_most_one_tick() -> None:
    async def scenario() -> None:
        room, (a, b) = batched_room(AwarenessBatches(TICK), "a", "b")
        move(room, a, 1, 1)
        awareness_frames(b)
        room.leave(a)  # within the tick: batched
        assert awareness_frames(b) == []
        await next_tick()
        [frame] = awareness_frames(b)
        assert frame[1].removed

    run(scenario)


def test_a_room_quiet_for_a_tick_sends_at_once_again() -> None:
    async def scenario() -> None:
        room, (a, b) = batched_room(AwarenessBatches(TICK), "a", "b")
        move(room, a, 1, 1)
        move(room, a, 1, 2)
        await next_tick()  # the batch (clock 2) goes out: the room stays busy one more tick
        await next_tick()  # nothing came in that tick: quiet
        assert len(awareness_frames(b)) == 2
        move(room, a, 1, 3)
        assert [list(f) for f in awareness_frames(b)] == [[1]]

    run(scenario)


def test_rooms_are_batched_apart() -> None:
    async def scenario() -> None:
        batches = AwarenessBatches(TICK)
        one, (a1, b1) = batched_room(batches, "a1", "b1")
        two, (a2, b2) = batched_room(batches, "a2", "b2")
        move(one, a1, 1, 1)
        move(two, a2, 2, 1)  # another room: quiet, so at once too
        assert len(awareness_frames(b1)) == 1 and len(awareness_frames(b2)) == 1
        move(one, a1, 1, 2)
        await next_tick()
        assert [list(f) for f in awareness_frames(b1)] == [[1]]
        assert awareness_frames(b2) == []

    run(scenario)


def test_ticks_stretch_while_the_node_buffers_are_over_half_full() -> None:
    async def scenario() -> None:
        budget = OutputBudget(1000)
        batches = AwarenessBatches(TICK, budget)
        room, (a, _) = batched_room(batches, "a", "b")
        budget.used = 600  # over half the node's bound
        loop = asyncio.get_running_loop()
        before = loop.time()
        move(room, a, 1, 1)
        assert batches._timer is not None
        assert batches._timer.when() - before >= TICK * (SHEDDING_STRETCH - 0.5)

    run(scenario)


def test_off_means_every_change_goes_out_as_it_comes() -> None:
    async def scenario() -> None:
        room, (a, b) = batched_room(AwarenessBatches(0.0), "a", "b")
        assert room.awareness_outbox is None
        for clock in (1, 2, 3):
            move(room, a, 1, clock)
        assert len(awareness_frames(b)) == 3

    run(scenario)
