"""The event hub: delivery, bounded subscribers, coalescing, resume, across nodes (LocalBus)."""

from __future__ import annotations

import asyncio
import time

import pytest

from ysync.presence.events import RESET, Delivered, Event, EventHub, Subscription
from ysync.rooms.local_bus import LocalBus, LocalHub

from support.aio import run


async def take(subscription: Subscription, count: int, timeout: float = 5.0) -> list[Delivered]:
    got: list[Delivered] = []
    async with asyncio.timeout(timeout):
        async for item in subscription:
            got.append(item)
            if len(got) == count:
                break
    return got


def types(items: list[Delivered]) -> list[str]:
    return [item.event.type for item in items]


def test_subscribers_of_a_room_get_its_events_in_order_and_no_others() -> None:
    async def scenario() -> None:
        hub = EventHub(LocalBus())
        a = await hub.subscribe("a")
        b = await hub.subscribe("b")
        for kind in ("one", "two", "three"):
            hub.publish(Event(kind, "a"))
        hub.publish(Event("elsewhere", "b"))
        assert types(await take(a, 3)) == ["one", "two", "three"]
        assert types(await take(b, 1)) == ["elsewhere"]

    run(scenario())


def test_an_event_nobody_follows_is_not_kept() -> None:
    hub = EventHub(LocalBus())
    hub.publish(Event("lost", "nobody-here"))
    assert hub.subscribers() == 0 and hub.published == 1


def test_a_newer_event_with_the_same_key_replaces_the_queued_one() -> None:
    async def scenario() -> None:
        hub = EventHub(LocalBus(), rate=0)
        sub = await hub.subscribe("r")
        hub.publish(Event("presence.updated", "r", {"x": 1}, coalesce="ada"))
        hub.publish(Event("presence.joined", "r", {"user": "bob"}))
        hub.publish(Event("presence.updated", "r", {"x": 2}, coalesce="ada"))
        hub.publish(Event("presence.updated", "r", {"x": 3}, coalesce="ada"))
        got = await take(sub, 2)
        assert [(i.event.type, dict(i.event.data)) for i in got] == [
            ("presence.updated", {"x": 3}),  # the latest state, in the first one's place
            ("presence.joined", {"user": "bob"}),
        ]
        assert sub.coalesced == 2 and hub.coalesced == 2
        hub.publish(Event("presence.updated", "r", {"x": 4}, coalesce="ada"))  # sent: a new one
        assert [dict(i.event.data) for i in await take(sub, 1)] == [{"x": 4}]

    run(scenario())


def test_coalescable_events_are_paced_and_the_latest_wins() -> None:
    async def scenario() -> None:
        hub = EventHub(LocalBus(), rate=20.0)  # at most one per 50 ms
        sub = await hub.subscribe("r")
        received: list[int] = []

        async def read() -> None:
            async for item in sub:
                received.append(item.event.data["x"])

        reader = asyncio.create_task(read())
        started = time.monotonic()
        for x in range(100):  # 100 moves in ~0.5 s
            hub.publish(Event("presence.updated", "r", {"x": x}, coalesce="ada"))
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.2)
        elapsed = time.monotonic() - started
        sub.close()
        await reader
        assert received[-1] == 99  # the last state always arrives
        assert len(received) <= elapsed * 20 + 2  # paced: nowhere near 100
        assert received == sorted(received)

    run(scenario())


def test_a_subscriber_that_does_not_read_is_cut_off_at_its_bound() -> None:
    async def scenario() -> None:
        hub = EventHub(LocalBus(), queue_limit=10)
        slow = await hub.subscribe("r")
        reading = await hub.subscribe("r")
        got: list[Delivered] = []
        for n in range(11):
            hub.publish(Event("comment.created", "r", {"n": n}))
            got += await take(reading, 1)  # keeps up
        assert slow.closed is not None and "too slow" in slow.closed
        assert reading.closed is None and len(got) == 11
        assert hub.cut_off == 1 and hub.subscribers("r") == 1
        assert [i async for i in slow] == []  # it ends at once

    run(scenario())


def test_resume_after_the_last_event_seen_or_reset_with_the_snapshot() -> None:
    async def scenario() -> None:
        hub = EventHub(LocalBus(), replay=3)
        hub.snapshots.append(lambda room: {"presence": [f"someone in {room}"]})
        first = await hub.subscribe("r")
        for n in range(5):
            hub.publish(Event("tick", "r", {"n": n}))
        seen = await take(first, 5)
        first.close()
        # Back with the id of the 4th: gets the 5th only.
        again = await hub.subscribe("r", last_event_id=seen[3].id)
        hub.publish(Event("tick", "r", {"n": 5}))
        assert [i.event.data["n"] for i in await take(again, 2)] == [4, 5]
        # An id older than the replay buffer, or from another node: a reset.
        for stale in (seen[0].id, "other-node-7"):
            sub = await hub.subscribe("r", last_event_id=stale)
            (reset,) = await take(sub, 1)
            assert reset.event.type == RESET
            assert reset.event.data == {"presence": ["someone in r"]}

    run(scenario())


def test_events_cross_nodes_and_sinks_see_local_ones_once() -> None:
    async def scenario() -> None:
        bus_hub = LocalHub()
        node_a, node_b = EventHub(LocalBus(bus_hub, "a")), EventHub(LocalBus(bus_hub, "b"))
        sunk_a: list[Event] = []
        sunk_b: list[Event] = []
        node_a.sinks.append(sunk_a.append)
        node_b.sinks.append(sunk_b.append)
        on_b = await node_b.subscribe("r")
        on_a = await node_a.subscribe("r")
        node_a.publish(Event("comment.created", "r", {"text": "from a"}))
        await bus_hub.settled()
        (got,) = await take(on_b, 1)
        assert got.event.data == {"text": "from a"} and got.id.startswith("b-")
        assert types(await take(on_a, 1)) == ["comment.created"]
        assert [e.type for e in sunk_a] == ["comment.created"] and sunk_b == []

    run(scenario())


def test_a_room_nobody_follows_any_more_forgets_its_replay_and_topic() -> None:
    async def scenario() -> None:
        bus = LocalBus()
        hub = EventHub(bus, keep_replay=60)
        sub = await hub.subscribe("r")
        hub.publish(Event("x", "r"))
        sub.close()
        await hub.drop_idle(time.monotonic() + 30)
        resumed = await hub.subscribe("r", last_event_id=f"{bus.node_id}-1")
        assert resumed.closed is None  # within keep_replay: it resumes (nothing missed)
        resumed.close()
        await hub.drop_idle(time.monotonic() + 61)
        assert hub.subscribers() == 0 and not hub._feeds

    run(scenario())


@pytest.mark.parametrize("raw", [b"", b"[]", b'{"type": 1}', b'{"type": "x", "room": 2}', b"\xff"])
def test_bad_events_from_the_bus_are_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        Event.from_json(raw)
