"""Benchmark: comment threads at scale, and how fast a new comment reaches SSE subscribers.

    .venv/bin/python tests/bench/comments.py [--threads 10000] [--samples 200]

Not a test (pytest does not collect it). Starts redis-server and two ysync nodes sharing
one SQLite file (127.0.0.1, ephemeral ports, all stopped at the end), then:

1. creates `--threads` threads in one room through node A's HTTP API (16 at a time);
2. times `GET /api/rooms/{room}/threads` (first page of 50, three filters, a page deep
   in the cursor chain): p50/p99 over `--samples` requests each;
3. times comment creation -> SSE delivery: a subscriber on node A and one on node B,
   `--samples` replies posted one at a time on node A; from just before each POST to
   its `comment.created` event arriving: p50/p99 on the same node and across nodes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/support (run as a script)

import httpx

from support.servers import RedisProcess, YsyncProcess

ROOM = "bench%2Fcomments"


def body(text: str, *mentions: str) -> dict[str, Any]:
    children: list[dict[str, Any]] = [{"text": text}]
    children += [{"type": "mention", "id": user} for user in mentions]
    return {"version": 1, "content": [{"type": "paragraph", "children": children}]}


def quantiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1000:7.2f} ms   p99 {p99 * 1000:7.2f} ms   (n={len(ordered)})"


async def seed(api: httpx.AsyncClient, count: int) -> float:
    started = time.perf_counter()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            payload = {
                "body": body(f"thread {i}", *(["ada"] if i % 10 == 0 else [])),
                "metadata": {"color": "red" if i % 4 == 0 else "blue", "i": i},
            }
            response = await api.post(f"/api/rooms/{ROOM}/threads", json=payload)
            response.raise_for_status()

    await asyncio.gather(*(worker() for _ in range(16)))
    return time.perf_counter() - started


async def time_lists(api: httpx.AsyncClient, samples: int) -> None:
    path = f"/api/rooms/{ROOM}/threads"
    cursor = None
    for _ in range(20):  # 20 pages of 50 down: the 1,001st thread onwards
        params = {"limit": 50, **({"cursor": cursor} if cursor else {})}
        cursor = (await api.get(path, params=params)).json()["nextCursor"] or cursor
    cases = {
        "first page (50 threads)": {"limit": 50},
        "resolved=false": {"resolved": "false", "limit": 50},
        "mentions=ada": {"mentions": "ada", "limit": 50},
        "metadata.color=red": {"metadata.color": "red", "limit": 50},
        "a page 20 pages deep": {"limit": 50, **({"cursor": cursor} if cursor else {})},
    }
    for name, params in cases.items():
        times = []
        for _ in range(samples):
            started = time.perf_counter()
            response = await api.get(path, params=params)
            times.append(time.perf_counter() - started)
            response.raise_for_status()
        print(f"  list {name:26s} {quantiles(times)}")


async def subscriber(base: str, arrivals: dict[str, float], ready: asyncio.Event) -> None:
    async with (
        httpx.AsyncClient(base_url=base, timeout=None) as http,
        http.stream("GET", f"/api/rooms/{ROOM}/events") as feed,
    ):
        ready.set()
        kind = None
        async for line in feed.aiter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind == "comment.created":
                arrivals[json.loads(line[6:])["data"]["comment"]["text"]] = time.perf_counter()


async def time_delivery(a: YsyncProcess, b: YsyncProcess, samples: int) -> None:
    local: dict[str, float] = {}
    remote: dict[str, float] = {}
    ready = [asyncio.Event(), asyncio.Event()]
    tasks = [
        asyncio.create_task(subscriber(a.http_url, local, ready[0])),
        asyncio.create_task(subscriber(b.http_url, remote, ready[1])),
    ]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 10)
    sent: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=a.http_url, timeout=10) as api:
        thread = (await api.post(f"/api/rooms/{ROOM}/threads", json={"body": body("live")})).json()
        await asyncio.sleep(0.5)  # both subscriptions reach Redis (not measured)
        for i in range(samples):
            text = f"reply {i}"
            sent[text] = time.perf_counter()
            await api.post(
                f"/api/rooms/{ROOM}/threads/{thread['id']}/comments", json={"body": body(text)}
            )
            deadline = time.monotonic() + 5
            while (text not in local or text not in remote) and time.monotonic() < deadline:
                await asyncio.sleep(0.0005)
    for task in tasks:
        task.cancel()
    same = [local[t] - sent[t] for t in sent if t in local]
    across = [remote[t] - sent[t] for t in sent if t in remote]
    print(f"  comment -> SSE, same node     {quantiles(same)}")
    print(f"  comment -> SSE, across nodes  {quantiles(across)}")


async def main(threads: int, samples: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, RedisProcess() as redis, ExitStack() as stack:
        store = f"sqlite:///{tmp}/bench.db"
        a, b = (
            stack.enter_context(YsyncProcess("--redis-url", redis.url, store=store))
            for _ in range(2)
        )
        async with httpx.AsyncClient(base_url=a.http_url, timeout=30) as api:
            took = await seed(api, threads)
            print(
                f"created {threads} threads in {took:.1f} s ({threads / took:.0f}/s, 16 at a time)"
            )
            await time_lists(api, samples)
        await time_delivery(a, b, samples)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=200)
    options = parser.parse_args()
    asyncio.run(main(options.threads, options.samples))
