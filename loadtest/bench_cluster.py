"""Cluster benchmark: cross-node vs same-node fan-out latency, Redis bytes and store
rows written per update.

(Sustained updates/s with `--workers 1` vs `--workers 2` needs a load generator
that is not the bottleneck: `python -m ysync.loadtest.bench` measures it.)

    python -m ysync.loadtest.bench_cluster [--rooms 20] [--seconds 10] [--rate 20]

Starts its own redis-server and ysync processes on free 127.0.0.1 ports (SQLite
store in a temporary directory) and stops them at the end. Not a test: it prints
figures. Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import redis.asyncio as aioredis
from pycrdt import Map, MapEvent

from ysync.clients import Session, connect
from ysync.clients.events import map_changes
from ysync.loadtest.bench_persistence import percentile
from ysync.loadtest.servers import free_port, terminate


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port} after {timeout} s")


@contextlib.contextmanager
def process(args: list[str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        time.sleep(0.3)  # let every worker process start accepting
        yield proc
    finally:
        terminate(proc)


def redis_server(port: int) -> list[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    return [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]


def ysync(port: int, redis_url: str, store: str, workers: int = 1) -> list[str]:
    return [
        sys.executable, "-m", "ysync", "serve", "--port", str(port), "--redis-url", redis_url,
        "--store", store, "--workers", str(workers), "--log-level", "warning",
    ]  # fmt: skip


class Arrivals:
    """Records when each numbered edit reaches one receiving session."""

    def __init__(self, session: Session) -> None:
        self.times: dict[int, float] = {}
        # Keep the subscription: pycrdt drops an observer whose handle is collected.
        self._subscription = session.doc.get("m", type=Map).observe(self._seen)

    def _seen(self, event: MapEvent) -> None:
        # Read the event, not the map: the document is mid-transaction here.
        seq = map_changes(event).get("seq", {}).get("newValue")
        if isinstance(seq, int | float):
            self.times.setdefault(int(seq), time.perf_counter())


@contextlib.asynccontextmanager
async def sessions(url: str, room: str, count: int) -> AsyncIterator[list[Session]]:
    async with contextlib.AsyncExitStack() as stack:
        opened = [await stack.enter_async_context(connect(url, room)) for _ in range(count)]
        for session in opened:
            await session.synced()
        yield opened


async def measure_latency(
    url_a: str, url_b: str, rooms: int, seconds: float, rate: float
) -> dict[str, list[float]]:
    """Writer on A; one receiver on A (same node) and one on B (cross node) per room."""
    sent: dict[tuple[int, int], float] = {}
    same: list[Arrivals] = []
    cross: list[Arrivals] = []
    async with contextlib.AsyncExitStack() as stack:
        writers = []
        for r in range(rooms):
            (writer, local) = await stack.enter_async_context(sessions(url_a, f"bench-{r}", 2))
            (remote,) = await stack.enter_async_context(sessions(url_b, f"bench-{r}", 1))
            writers.append(writer)
            same.append(Arrivals(local))
            cross.append(Arrivals(remote))
        edits = int(seconds * rate)
        for i in range(1, edits + 1):
            started = time.perf_counter()
            for r, writer in enumerate(writers):
                sent[(r, i)] = time.perf_counter()
                writer.doc.get("m", type=Map)["seq"] = i
            await asyncio.sleep(max(0.0, 1 / rate - (time.perf_counter() - started)))
        await asyncio.sleep(1.0)  # let the last edits arrive
    result: dict[str, list[float]] = {"same node": [], "cross node": []}
    for label, arrivals in (("same node", same), ("cross node", cross)):
        for r, arrival in enumerate(arrivals):
            for i, at in arrival.times.items():
                if (r, i) in sent:
                    result[label].append((at - sent[(r, i)]) * 1000)
    result["expected"] = [float(len(sent))]
    return result


async def redis_bytes(url: str) -> tuple[int, int]:
    client = aioredis.Redis.from_url(url)
    stats = await client.info("stats")
    await client.aclose()
    return int(stats["total_net_input_bytes"]), int(stats["total_net_output_bytes"])


def store_rows(db: Path) -> int:
    """Rows ever appended to the SQLite store (its per-room sequences: compaction
    deletes rows, not these numbers)."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        (rows,) = conn.execute("SELECT coalesce(sum(last_seq), 0) FROM rooms").fetchone()
    return int(rows)


def report(label: str, values: list[float]) -> str:
    if not values:
        return f"{label:>12}: no samples"
    return (
        f"{label:>12}: n={len(values):6d}  p50={statistics.median(values):7.2f} ms  "
        f"p99={percentile(values, 0.99):7.2f} ms  max={max(values):7.2f} ms"
    )


async def main_async(args: argparse.Namespace) -> None:
    cpu = time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        redis_port = free_port()
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        db = Path(tmp) / "bench.db"
        store = f"sqlite:///{db}"
        with process(redis_server(redis_port), redis_port):
            a_port, b_port = free_port(), free_port()
            with (
                process(ysync(a_port, redis_url, store), a_port),
                process(ysync(b_port, redis_url, store), b_port),
            ):
                before = await redis_bytes(redis_url)
                latency = await measure_latency(
                    f"ws://127.0.0.1:{a_port}",
                    f"ws://127.0.0.1:{b_port}",
                    args.rooms,
                    args.seconds,
                    args.rate,
                )
                after = await redis_bytes(redis_url)
            expected = int(latency.pop("expected")[0])
            print(
                f"fan-out latency, {args.rooms} rooms x {args.rate:g} edits/s for {args.seconds:g} s"
            )
            for label, values in latency.items():
                delivered = 100 * len(values) / max(expected, 1)
                print(report(label, values) + f"  delivered={delivered:.1f} %")
            moved = (after[0] - before[0]) + (after[1] - before[1])
            print(
                f"Redis traffic: {moved / max(expected, 1):.0f} bytes per update (in + out, 2 nodes)"
            )
            # The nodes have stopped (SIGTERM commits everything): count what they wrote.
            rows = store_rows(db)
            print(f"store writes: {rows / max(expected, 1):.2f} rows per update (2 nodes)")
    print(
        f"load generator CPU: {time.process_time() - cpu:.1f} s over the run (one Python process)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=20.0, help="edits/s per writer")
    args = parser.parse_args()
    cpus = os.cpu_count()
    if cpus is not None and cpus < 2:
        print("warning: fewer than 2 CPUs: figures will be dominated by contention")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
