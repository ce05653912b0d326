"""Benchmark: the document API, versions and webhooks (issue 17's figures).

    .venv/bin/python tests/bench/documents.py [--quick] [--sizes 1,10] [--posts 500] [--events 300]

Not a test (pytest does not collect it; tests/test_documents_bench.py runs `--quick`). Starts
one ysync node with a SQLite store and a local webhook receiver (127.0.0.1, ephemeral ports,
all stopped at the end), then prints:

1. `GET /api/rooms/{room}/doc` (JSON) for documents of each size in MB (a text root filled
   in 64 KB inserts plus a map and an array), and `?format=update`: p50/p99;
2. `POST /api/rooms/{room}/doc` with one JSON op, sequentially and 8 at a time: applies/s;
3. version create and restore time for the largest document;
4. webhooks: `--events` versions created 16 at a time; deliveries/s at the receiver (from the
   first request to the last delivery), and event-to-delivery latency (from the event's timestamp in the body to its
   arrival) p50/p99.

Figures from this 2-core machine shared with other jobs are noisy: compare runs side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/support (run as a script)

import httpx

from ysync.server.webhooks import new_secret

from support.servers import YsyncProcess

CHUNK = 64 * 1024


def quantiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"p50 {statistics.median(ordered) * 1000:8.1f} ms   p99 {p99 * 1000:8.1f} ms   "
        f"(n={len(ordered)})"
    )


class Receiver:
    """Records the event time and arrival time of the benchmark's `version.created` deliveries."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, float]] = []  # (event at, arrived at), Unix time
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                event = json.loads(body)
                if event["data"]["room"] == "bench-hooks" and event["type"] == "version.created":
                    stamp = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
                    owner.arrivals.append((stamp.timestamp(), time.time()))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.request_queue_size = 256  # the default 5 refuses a burst: retries
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


async def fill(api: httpx.AsyncClient, room: str, megabytes: float) -> None:
    chunks = max(1, int(megabytes * 1024 * 1024 / CHUNK))
    for i in range(chunks):
        op = {"op": "insert", "root": "t", "index": i * CHUNK, "text": "x" * CHUNK}
        (await api.post(f"/api/rooms/{room}/doc", json={"ops": [op]})).raise_for_status()
    ops = [
        {"op": "replace", "root": "m", "value": {f"k{i}": i for i in range(100)}},
        {"op": "replace", "root": "a", "value": list(range(1000))},
    ]
    (await api.post(f"/api/rooms/{room}/doc", json={"ops": ops})).raise_for_status()


async def timed(call: Any, samples: int) -> list[float]:
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        (await call()).raise_for_status()
        times.append(time.perf_counter() - start)
    return times


async def documents(api: httpx.AsyncClient, sizes: list[float], samples: int) -> str:
    room = ""
    for size in sizes:
        room = f"bench-doc-{size}"
        await fill(api, room, size)
        doc = await timed(lambda room=room: api.get(f"/api/rooms/{room}/doc"), samples)
        upd = await timed(
            lambda room=room: api.get(f"/api/rooms/{room}/doc", params={"format": "update"}),
            samples,
        )
        print(f"GET /doc JSON    {size:5.1f} MB  {quantiles(doc)}")
        print(f"GET /doc update  {size:5.1f} MB  {quantiles(upd)}")
    return room


async def posts(api: httpx.AsyncClient, count: int) -> None:
    async def one(i: int) -> None:
        op = {"op": "set", "root": "m", "key": f"k{i % 100}", "value": i}
        (await api.post("/api/rooms/bench-post/doc", json={"ops": [op]})).raise_for_status()

    start = time.perf_counter()
    for i in range(count):
        await one(i)
    sequential = count / (time.perf_counter() - start)
    start = time.perf_counter()
    for base in range(0, count, 8):
        await asyncio.gather(*(one(base + j) for j in range(8)))
    parallel = count / (time.perf_counter() - start)
    print(f"POST /doc (1 op)  {sequential:7.0f} applies/s sequential, {parallel:7.0f} 8 at a time")


async def versions(api: httpx.AsyncClient, room: str, size: float) -> None:
    start = time.perf_counter()
    made = await api.post(f"/api/rooms/{room}/versions", json={"name": "bench"})
    made.raise_for_status()
    created = time.perf_counter() - start
    op = {"op": "delete", "root": "t", "index": 0, "length": CHUNK}
    (await api.post(f"/api/rooms/{room}/doc", json={"ops": [op]})).raise_for_status()
    start = time.perf_counter()
    (await api.post(f"/api/rooms/{room}/versions/{made.json()['id']}/restore")).raise_for_status()
    restored = time.perf_counter() - start
    print(
        f"version {size:5.1f} MB: create {created * 1000:8.1f} ms, restore {restored * 1000:8.1f} ms"
    )


async def webhooks(api: httpx.AsyncClient, receiver: Receiver, events: int) -> None:
    async def one(i: int) -> None:
        made = await api.post("/api/rooms/bench-hooks/versions", json={"name": f"v{i}"})
        made.raise_for_status()

    start = time.perf_counter()
    for base in range(0, events, 16):
        await asyncio.gather(*(one(i) for i in range(base, min(events, base + 16))))
    for _ in range(600):  # bounded: 60 s
        if len(receiver.arrivals) >= events:
            break
        await asyncio.sleep(0.1)
    elapsed = time.perf_counter() - start
    latencies = [arrived - at for at, arrived in receiver.arrivals]
    print(
        f"webhooks: {len(receiver.arrivals)}/{events} delivered, "
        f"{len(receiver.arrivals) / elapsed:7.0f} deliveries/s; event to delivery {quantiles(latencies)}"
    )


async def main(args: argparse.Namespace) -> None:
    receiver = Receiver()
    with tempfile.TemporaryDirectory() as tmp, YsyncProcess(
        "--webhook", receiver.url, "--webhook-secret", new_secret(),
        "--max-message-bytes", str(64 << 20), "--rate-bytes-burst", str(64 << 20),
        "--auto-version-interval", "0",
        store=f"sqlite:///{tmp}/bench.db",
    ) as server:  # fmt: skip
        async with httpx.AsyncClient(base_url=server.http_url, timeout=120) as api:
            sizes = [float(s) for s in args.sizes.split(",")]
            room = await documents(api, sizes, args.samples)
            await posts(api, args.posts)
            await versions(api, room, sizes[-1])
            receiver.arrivals.clear()
            await webhooks(api, receiver, args.events)
    receiver.server.shutdown()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,10", help="document sizes in MB (default 1,10)")
    parser.add_argument("--samples", type=int, default=20, help="GET /doc requests per size")
    parser.add_argument("--posts", type=int, default=500, help="POST /doc requests")
    parser.add_argument("--events", type=int, default=300, help="webhook events")
    parser.add_argument("--quick", action="store_true", help="tiny run (the suite's smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.samples, args.posts, args.events = "0.1", 2, 16, 5
    return args


if __name__ == "__main__":
    asyncio.run(main(parse()))
