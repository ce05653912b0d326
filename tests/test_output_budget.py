"""The node-wide bound on buffered output (`ysync.server.output_budget`), through the real
senders, against transports that never drain: every figure is a count of bytes held."""

from __future__ import annotations

import asyncio
from typing import Any

from ysync.rooms.vocabulary import CloseCode
from ysync.server.metrics import TransportStats
from ysync.server.output_budget import SMALL_HOLD, OutputBudget
from ysync.server.senders import Broadcaster, DirectSender, QueuedSender, binary_frame

FRAME = binary_frame(b"\x01" + b"c" * 997)  # a 1,000-byte awareness-sized frame
PER_CLIENT = 32 * 1024 * 1024  # far above anything here: only the node's bound can bite


class StuckSocket:
    """A client that stopped reading: everything written stays in the buffer."""

    def __init__(self) -> None:
        self.buffered = 0
        self.closed: tuple[int, str] | None = None

    def write(self, data: bytes) -> None:
        self.buffered += len(data)

    def writelines(self, data: list[bytes]) -> None:
        self.buffered += sum(len(d) for d in data)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closed is not None

    def send_close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def heartbeat(self) -> None:
        pass


def flood(clients: int, rounds: int, node_bytes: int) -> tuple[Broadcaster, list[StuckSocket]]:
    """Broadcast `rounds` frames to `clients` stuck clients, a turn per round."""

    async def scenario() -> tuple[Broadcaster, list[StuckSocket]]:
        broadcaster = Broadcaster(node_bytes=node_bytes)
        sockets = [StuckSocket() for _ in range(clients)]
        senders = [
            DirectSender(s, broadcaster, max_bytes=PER_CLIENT, stats=TransportStats())
            for s in sockets
        ]
        for _ in range(rounds):
            for sender in senders:
                sender.write(FRAME)
            await asyncio.sleep(0)  # the end-of-turn writes
        return broadcaster, sockets

    return asyncio.run(scenario())


def test_the_node_holds_no_more_than_its_bound_however_many_clients_fall_behind() -> None:
    limit = 4 * 1024 * 1024
    broadcaster, sockets = flood(clients=50, rounds=1000, node_bytes=limit)
    held = sum(s.buffered for s in sockets)
    offered = 50 * 1000 * len(FRAME)  # 50 MB: what the clients would hold unbounded
    assert offered > 10 * limit
    # The bound, plus what a client may hold without being counted, plus a frame each.
    assert held <= limit + 50 * (SMALL_HOLD + len(FRAME))
    broadcaster.budget.refresh()
    assert broadcaster.budget.used == sum(s.buffered for s in sockets if s.buffered > SMALL_HOLD)
    cut = [s for s in sockets if s.closed is not None]
    assert cut, "someone must have been cut off"
    for s in cut:
        assert s.closed is not None
        assert s.closed[0] == CloseCode.SLOW_CONSUMER
        assert "node" in s.closed[1]


def test_below_the_bound_nobody_is_cut_off() -> None:
    broadcaster, sockets = flood(clients=10, rounds=200, node_bytes=4 * 1024 * 1024)
    assert all(s.closed is None for s in sockets)
    total = 10 * 200 * len(FRAME)
    assert sum(s.buffered for s in sockets) == total
    broadcaster.budget.refresh()
    assert broadcaster.budget.used == total  # every one of them holds more than SMALL_HOLD


def test_without_a_node_bound_only_each_clients_own_bound_applies() -> None:
    _, sockets = flood(clients=10, rounds=1000, node_bytes=0)
    assert all(s.closed is None for s in sockets)
    assert sum(s.buffered for s in sockets) == 10 * 1000 * len(FRAME)


def test_a_client_that_reads_again_gives_its_share_back() -> None:
    async def scenario() -> None:
        broadcaster = Broadcaster(node_bytes=1024 * 1024)
        slow, fast = StuckSocket(), StuckSocket()
        senders = [
            DirectSender(s, broadcaster, max_bytes=PER_CLIENT, stats=TransportStats())
            for s in (slow, fast)
        ]
        for _ in range(100):
            for sender in senders:
                sender.write(FRAME)
            await asyncio.sleep(0)
        broadcaster.budget.refresh()
        assert broadcaster.budget.used == 200 * len(FRAME)
        fast.buffered = 0  # it read everything
        broadcaster.budget.refresh()
        assert broadcaster.budget.used == 100 * len(FRAME)
        assert list(broadcaster.budget.backlogged) == [senders[0]]

    asyncio.run(scenario())


def test_queued_senders_count_against_the_same_bound() -> None:
    async def scenario() -> list[Any]:
        budget = OutputBudget(200 * 1024)
        closed: list[Any] = []
        senders = []
        for _ in range(5):

            async def send(message: Any) -> None:  # never called: nothing drains the queues
                raise AssertionError(message)

            sender = QueuedSender(
                send,
                max_frames=10_000,
                max_bytes=PER_CLIENT,
                keepalive=20.0,
                keepalive_frame=b"\x01\x01\x00",
                stats=TransportStats(),
                cache=Broadcaster().ywebsocket,
                budget=budget,
            )
            sender.owner = type("Owner", (), {"close": lambda self, r: closed.append(r)})()
            senders.append(sender)
        for _ in range(1000):
            for sender in senders:
                sender.write(FRAME)
        held = sum(s.queued[1] for s in senders)
        assert held <= budget.limit + 5 * (SMALL_HOLD + len(FRAME))
        assert held < 5 * 1000 * len(FRAME) / 5
        return closed

    closed = asyncio.run(scenario())
    assert closed and all(r.code == CloseCode.SLOW_CONSUMER for r in closed)
