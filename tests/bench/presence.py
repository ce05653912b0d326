"""Benchmark: the presence API at scale, and how many events one node pushes to SSE subscribers.

    .venv/bin/python tests/bench/presence.py [--rooms 1000] [--users 5] [--subscribers 1000]
    .venv/bin/python tests/bench/presence.py --quick      # a smoke run (the suite runs it)

Not a test (pytest does not collect it). Starts redis-server and two ysync nodes sharing
one SQLite file (127.0.0.1, ephemeral ports, all stopped at the end), then:

1. puts `--users` participants in each of `--rooms` rooms on node A (agent presences,
   `POST /api/rooms/{room}/presence`: each is a stamped awareness state like a
   browser's, without 5,000 sockets in this process);
2. times `GET /api/rooms/{room}/presence` on node A (it holds the rooms: answered from
   its awareness) and on node B (it does not: answered from Redis), and the batch
   `GET /api/presence?room=...` of 100 rooms: p50/p99 over `--samples` requests;
3. opens `--subscribers` SSE streams of one room on node A and pushes `--events` lock
   events (acquire + release pairs); events/s = events x subscribers / time until the
   last subscriber got the last one.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/support (run as a script)

import httpx

from support.servers import RedisProcess, YsyncProcess


def quantiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1000:7.2f} ms   p99 {p99 * 1000:7.2f} ms   (n={len(ordered)})"


def room(i: int) -> str:
    return f"bench%2Fpresence-{i}"


async def seed(api: httpx.AsyncClient, rooms: int, users: int) -> float:
    started = time.perf_counter()
    jobs = [(r, u) for r in range(rooms) for u in range(users)]

    async def worker() -> None:
        while jobs:
            r, u = jobs.pop()
            body = {"state": {"cursor": {"x": u, "y": r}}, "ttl": 3600}
            response = await api.post(f"/api/rooms/{room(r)}/presence", json=body)
            response.raise_for_status()

    await asyncio.gather(*(worker() for _ in range(16)))
    return time.perf_counter() - started


async def time_gets(api: httpx.AsyncClient, paths: list[str], samples: int) -> list[float]:
    timings = []
    for _ in range(samples):
        path = random.choice(paths)
        started = time.perf_counter()
        response = await api.get(path)
        timings.append(time.perf_counter() - started)
        response.raise_for_status()
    return timings


async def sse_rate(base: str, subscribers: int, events: int) -> tuple[float, int]:
    """Events delivered per second to all subscribers, and how many got every event."""
    host, port = base.removeprefix("http://").split(":")
    path = f"/api/rooms/{room(0)}/events"
    readers: list[asyncio.StreamReader] = []
    writers = []
    for _ in range(subscribers):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        readers.append(reader)
        writers.append(writer)
    await asyncio.gather(*(w.drain() for w in writers))
    for reader in readers:  # the response head and the first comment: subscribed
        async with asyncio.timeout(30):
            await reader.readuntil(b": ysync event feed")

    async def count(reader: asyncio.StreamReader) -> int:
        got = 0
        try:
            async with asyncio.timeout(120):
                while got < events:
                    line = await reader.readline()
                    if not line:
                        break
                    if line.startswith(b"event: lock."):
                        got += 1
        except TimeoutError:
            pass
        return got

    counters = [asyncio.create_task(count(reader)) for reader in readers]
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        for i in range(events // 2):
            element = f"el-{i}"
            (await api.post(f"/api/rooms/{room(0)}/locks/{element}")).raise_for_status()
            (await api.delete(f"/api/rooms/{room(0)}/locks/{element}")).raise_for_status()
    got = await asyncio.gather(*counters)
    elapsed = time.perf_counter() - started
    for writer in writers:
        writer.close()
    complete = sum(1 for n in got if n >= events)
    return sum(got) / elapsed, complete


async def scenario(args: argparse.Namespace, node_a: YsyncProcess, node_b: YsyncProcess) -> None:
    async with (
        httpx.AsyncClient(base_url=node_a.http_url, timeout=30) as a,
        httpx.AsyncClient(base_url=node_b.http_url, timeout=30) as b,
    ):
        took = await seed(a, args.rooms, args.users)
        print(f"seeded {args.rooms} rooms x {args.users} users on node A in {took:.1f} s")
        await asyncio.sleep(1.0)  # node A publishes to Redis within 0.25 s
        paths = [f"/api/rooms/{room(r)}/presence" for r in range(args.rooms)]
        sample = (await a.get(paths[0])).json()["users"]
        assert len(sample) == args.users, sample
        assert len((await b.get(paths[0])).json()["users"]) == args.users
        print(
            "GET room presence, node A (holds the rooms)  ",
            quantiles(await time_gets(a, paths, args.samples)),
        )
        print(
            "GET room presence, node B (from Redis)       ",
            quantiles(await time_gets(b, paths, args.samples)),
        )
        batch = "/api/presence?" + "&".join(f"room={room(r)}" for r in range(min(100, args.rooms)))
        print(
            "GET batch of 100 rooms, node B              ",
            quantiles(await time_gets(b, [batch], max(args.samples // 10, 3))),
        )
    rate, complete = await sse_rate(node_a.http_url, args.subscribers, args.events)
    print(
        f"SSE: {args.events} lock events to {args.subscribers} subscribers of one room: "
        f"{rate:,.0f} events/s delivered; {complete}/{args.subscribers} got all"
    )
    if complete != args.subscribers:
        raise SystemExit("some subscribers missed events (cut off?)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, default=1000)
    parser.add_argument("--users", type=int, default=5)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="smoke size: seconds")
    args = parser.parse_args(argv)
    if args.quick:
        args.rooms, args.users, args.samples, args.subscribers, args.events = 20, 5, 20, 20, 20
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        redis = stack.enter_context(RedisProcess())
        store = f"sqlite:///{tmp}/shared.db"
        flags = ("--redis-url", redis.url, "--event-queue", str(max(1000, args.events * 2)))
        nodes = [
            stack.enter_context(
                YsyncProcess(
                    *flags,
                    "--max-rooms",
                    str(args.rooms + 100),
                    store=store,
                    log_path=Path(tmp) / f"{name}.log",
                )
            )
            for name in ("a", "b")
        ]
        asyncio.run(scenario(args, *nodes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
