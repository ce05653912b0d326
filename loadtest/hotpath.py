"""In-process hot-path benchmark: µs per operation on the path of one edit, bytes per connection.

    python -m ysync.loadtest.hotpath            # every figure, about 20 s
    python -m ysync.loadtest.hotpath --quick    # smoke size (the test suite runs this)

No sockets and no other process: the real app (`create_app`, memory store, no limits)
is driven through its ASGI interface with stand-ins for ysync's own WebSocket
protocol (`ysync.server.ws_protocol`), so every figure covers what the server does
per message from the moment a frame is parsed to the moment its bytes are handed
to the connections' transports — and nothing of the kernel's or the generator's work.

Figures (median of `--repeat` runs), in CPU time of this process (`time.process_time`),
so that other processes on a shared machine do not count:

- ``codec.decode`` / ``codec.encode``: one 100-byte-payload update frame.
- ``update check``: what a room reads of that update before yrs sees it
  (`ysync.rooms.structure`: scan, then the commit of what was integrated); part of
  every fan-out figure too.
- ``fan-out N``: one client update applied and written to N-1 other connections
  of its room, end-of-turn writes included (µs per update).
- ``awareness N``: one cursor move applied and written to N-1 connections
  (one mover; batching sends a lone mover's first move at once and the rest per tick).
- ``awareness N, all move``: every one of the N clients moves in turn (a canvas):
  µs of CPU per move, batched per tick (the default) and ``unbatched``
  (``--awareness-tick 0``); the last tick's batch is included.
- ``awareness stamp``: what stamping the verified identity adds to one cursor move
  applied by a room with 5 connections (stamped minus unstamped, interleaved runs
  in one process, so the machine's load cancels out).
- ``idle connection``: bytes of Python objects held per connected, synced, idle
  client (tracemalloc; excludes the kernel's socket buffers and uvicorn's HTTP
  protocol object, which the ``idle`` scenario of the benchmark includes).

Run it before and after a change to the hot path and quote both in the commit.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pycrdt import Doc, Map

from ysync.rooms import codec
from ysync.rooms.structure import StructureIndex
from ysync.server.app import create_app
from ysync.server.settings import Settings


class _Socket:
    """Stands in for `YsyncWebSocketProtocol`: records nothing, counts bytes."""

    __slots__ = ("on_close", "on_message", "written")

    def __init__(self) -> None:
        self.on_message: Callable[[bytes | str], None] | None = None
        self.on_close: Callable[[], None] | None = None
        self.written = 0

    def attach(
        self, on_message: Callable[[bytes | str], None], on_close: Callable[[], None]
    ) -> None:
        self.on_message, self.on_close = on_message, on_close

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def writelines(self, data: list[bytes]) -> None:
        for chunk in data:
            self.written += len(chunk)

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False

    def send_close(self, code: int, reason: str) -> None:
        pass

    def abort(self) -> None:
        pass

    def heartbeat(self) -> None:
        pass

    def limit_until_attached(self, max_buffered: int) -> None:
        pass


async def _connect(app: Any, room: str) -> _Socket:
    """Open one connection to `room` through the app's ASGI interface and sync it."""
    socket = _Socket()
    scope = {
        "type": "websocket",
        "path": "/" + room,
        "raw_path": ("/" + room).encode(),
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 1234),
        "subprotocols": [],
        "extensions": {"ysync.websocket": socket},
        "root_path": "",
        "state": {},
    }
    events = [{"type": "websocket.connect"}]

    async def receive() -> dict[str, Any]:
        if events:
            return events.pop()
        await asyncio.Event().wait()  # an attached connection never reads here again
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "websocket.close":
            raise RuntimeError(f"connection refused: {message}")

    await app(scope, receive, send)
    if socket.on_message is None:
        raise RuntimeError("the endpoint did not attach the connection")
    socket.on_message(codec.encode_sync_step1(b"\x00"))
    return socket


def _update_frames(count: int, payload: int = 100) -> list[bytes]:
    """`count` successive client updates, each setting one key of a map (as the benchmark's writers)."""
    doc: Doc[Any] = Doc()
    edits = doc.get("e", type=Map)
    frames: list[bytes] = []
    doc.observe(lambda event: frames.append(codec.encode_update(event.update)))
    for i in range(count):
        edits[f"k{i % 50}"] = f"{time.time():.6f}|" + "x" * payload
    return frames


def _cursor_frames(client_id: int, count: int) -> list[bytes]:
    return [
        codec.encode_awareness(
            [codec.AwarenessEntry(client_id, clock, json.dumps({"cursor": {"x": clock, "y": 1}}))]
        )
        for clock in range(1, count + 1)
    ]


def _time_per_item(run: Callable[[], None], items: int, repeat: int) -> float:
    """Median µs per item over `repeat` runs of `run` (each handling `items` items)."""
    samples = []
    for _ in range(repeat):
        started = time.process_time()
        run()
        samples.append((time.process_time() - started) / items * 1e6)
    return statistics.median(samples)


def bench_codec(items: int, repeat: int) -> dict[str, float]:
    frame = _update_frames(1)[0]
    update = codec.decode(frame).update  # type: ignore[union-attr]

    def decode() -> None:
        for _ in range(items):
            codec.decode(frame)

    def encode() -> None:
        for _ in range(items):
            codec.encode_update(update)

    # What a room reads of each update before yrs sees it (rooms.structure): the
    # scan, and the commit of what yrs integrated (the same bytes: reused), for
    # successive edits as the benchmark's writers make them.
    updates = [codec.decode(f).update for f in _update_frames(items * repeat)]  # type: ignore[union-attr]
    index = StructureIndex(256)
    pending = iter(updates)

    def check() -> None:
        for _ in range(items):
            edit = next(pending)
            index.commit(edit, index.scan(edit))

    return {
        "codec.decode µs": _time_per_item(decode, items, repeat),
        "codec.encode µs": _time_per_item(encode, items, repeat),
        "update check µs": _time_per_item(check, items, repeat),
    }


async def _flushed() -> None:
    await asyncio.sleep(0)  # the end-of-turn writes run now
    await asyncio.sleep(0)


async def bench_fan_out(app: Any, clients: int, items: int, repeat: int) -> float:
    sockets = [await _connect(app, f"fan-{clients}") for _ in range(clients)]
    writer = sockets[0]
    assert writer.on_message is not None
    samples = []
    for _ in range(repeat):
        frames = _update_frames(items)
        gc.collect()
        started = time.process_time()
        for frame in frames:
            writer.on_message(frame)
            await _flushed()
        samples.append((time.process_time() - started) / items * 1e6)
    if sockets[-1].written == 0:
        raise RuntimeError("fan-out reached nobody")
    return statistics.median(samples)


async def bench_awareness(
    app: Any, clients: int, items: int, repeat: int, *, movers: int = 1, tag: str = ""
) -> float:
    """CPU µs per cursor move (process time: the wait for the last tick is not counted,
    the work it does is)."""
    sockets = [await _connect(app, f"aw-{clients}-{movers}{tag}") for _ in range(clients)]
    moving = sockets[:movers]
    samples = []
    for run in range(repeat):
        frames = [
            _cursor_frames(client_id=4242 + m, count=items * (run + 1))[items * run :]
            for m in range(movers)
        ]
        gc.collect()
        started = time.process_time()
        for i in range(items):
            for socket, mine in zip(moving, frames, strict=True):
                assert socket.on_message is not None
                socket.on_message(mine[i])
            await _flushed()
        await asyncio.sleep(0.05)  # the last batch goes out (the tick is 10 ms)
        samples.append((time.process_time() - started) / (items * movers) * 1e6)
    if sockets[-1].written == 0:
        raise RuntimeError("awareness reached nobody")
    return statistics.median(samples)


def bench_awareness_stamp(items: int, repeat: int) -> dict[str, float]:
    from ysync.rooms.hooks import Identity
    from ysync.rooms.room import Room, RoomConfig

    class _Peer:
        identity = Identity(user_id="ada", name="Ada")
        client = None

        def send(self, message: codec.Message) -> None:
            pass

        def close(self, refusal: object) -> None:
            pass

    def room_run(stamp: bool) -> Callable[[], None]:
        room = Room("r", RoomConfig(stamp_identity=stamp))
        peers = [_Peer() for _ in range(5)]
        for peer in peers:
            room.join(peer)
        messages = [codec.decode(f) for f in _cursor_frames(4242, items * repeat * 2)]
        position = 0

        def run() -> None:
            nonlocal position
            for message in messages[position : position + items]:
                room.receive(peers[0], message, now=0.0)
            position += items

        return run

    stamped, plain = room_run(True), room_run(False)
    with_stamp, without = [], []
    for _ in range(repeat):
        with_stamp.append(_time_per_item(stamped, items, 1))
        without.append(_time_per_item(plain, items, 1))
    return {
        "awareness apply (stamped) µs": statistics.median(with_stamp),
        "awareness apply (unstamped) µs": statistics.median(without),
    }


async def bench_idle_bytes(app: Any, connections: int) -> float:
    await _connect(app, "warm-up")
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    keep = [await _connect(app, f"idle-{i}") for i in range(connections)]
    await _flushed()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del keep
    return (after - before) / connections


async def run(quick: bool) -> dict[str, float]:
    items, repeat = (200, 3) if quick else (2000, 7)
    settings = Settings(
        store="memory://",
        rate_messages=0,
        rate_bytes=0,
        ip_connections_per_minute=0,
        max_clients_per_room=0,
        max_rooms=0,
        gc_tuning=0,
    )
    app = create_app(settings)
    results = bench_codec(items * 10, repeat)
    results.update(bench_awareness_stamp(items * 5, repeat))
    async with app.router.lifespan_context(app):
        for clients in (5, 50, 200):
            results[f"fan-out {clients} µs"] = await bench_fan_out(app, clients, items, repeat)
        for clients in (5, 50):
            results[f"awareness {clients} µs"] = await bench_awareness(app, clients, items, repeat)
        moves = max(1, items // 50)
        results["awareness 50, all move µs"] = await bench_awareness(
            app, 50, moves, repeat, movers=50
        )
        # Rooms with one client each: the per-room cost is part of an idle client's.
        results["idle connection bytes"] = await bench_idle_bytes(app, 200 if quick else 2000)
    if not hasattr(settings, "awareness_tick"):
        return results  # a ysync from before batching (`--ysync-rev`-style comparisons)
    unbatched = create_app(replace(settings, awareness_tick=0.0))
    async with unbatched.router.lifespan_context(unbatched):
        results["awareness 50, all move, unbatched µs"] = await bench_awareness(
            unbatched, 50, moves, repeat, movers=50, tag="-unbatched"
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke size (seconds)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    results = asyncio.run(run(args.quick))
    if args.json:
        print(json.dumps(results))
    else:
        width = max(map(len, results))
        for name, value in results.items():
            print(f"{name.ljust(width)}  {value:10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
