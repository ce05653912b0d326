"""Benchmark: does a flooding client (10,000 msgs/s) hurt the other clients of its room?

    .venv/bin/python tests/bench/flood.py [--rate 10000] [--seconds 6] [--observers 3]

Not a test (pytest does not collect it). For each server configuration (default
limits, then rate limits off) it measures the edit latency seen by the other
clients of one room: a pinger sends 100 timestamped edits/s, observers time
their arrival; first quietly, then while a separate process floods the room
with single-character document updates. Target: p99 during the flood at most
2x the quiet p99. Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/support (run as a script)

from pycrdt import Doc, Text
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from ysync.clients import room_url
from ysync.rooms import codec

from support.servers import YsyncProcess

ROOM = "bench/flood"
PING_INTERVAL = 0.01  # 100 edits/s from the pinger
MARKER = re.compile(rb"<P(\d{7})>")


def updates(client_id: int, count: int, content: Any) -> list[bytes]:
    """`count` successive single-edit Yjs updates of one client (precomputed)."""
    doc = Doc(client_id=client_id)
    doc["t"] = text = Text()
    deltas: list[bytes] = []
    subscription = doc.observe(lambda event: deltas.append(event.update))
    for i in range(count):
        text += content(i)
    doc.unobserve(subscription)
    return deltas


async def drain(ws: ClientConnection) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for _ in ws:
            pass


# -- the flooding client, in its own process ----------------------------------------------


def flood_process(url: str, rate: int, seconds: float, ready: Any, results: Any) -> None:
    frames = [codec.encode_update(u) for u in updates(777_000, int(rate * seconds), lambda i: "f")]
    results.put(asyncio.run(_flood(url, rate, seconds, frames, ready)))


async def _flood(
    url: str, rate: int, seconds: float, frames: list[bytes], ready: Any
) -> dict[str, Any]:
    ws = await ws_connect(room_url(url, ROOM), compression=None, proxy=None, max_size=None)
    reader = asyncio.create_task(drain(ws))
    ready.set()
    tick = 0.01
    per_tick = max(1, int(rate * tick))
    sent = 0
    started = time.perf_counter()
    try:
        async with asyncio.timeout(seconds + 10):
            while sent < len(frames) and time.perf_counter() - started < seconds:
                for frame in frames[sent : sent + per_tick]:
                    await ws.send(frame)
                sent += per_tick
                next_tick = started + (sent / per_tick) * tick
                await asyncio.sleep(max(0.0, next_tick - time.perf_counter()))
    except ConnectionClosed:
        pass
    elapsed = time.perf_counter() - started
    with contextlib.suppress(Exception):
        async with asyncio.timeout(3):
            await ws.close()
    reader.cancel()
    return {
        "sent": sent,
        "elapsed": elapsed,
        "rate": sent / elapsed if elapsed else 0.0,
        "close_code": ws.close_code,
        "close_reason": ws.close_reason,
    }


# -- pinger and observers, in this process -------------------------------------------------


async def synced_socket(url: str) -> ClientConnection:
    ws = await ws_connect(room_url(url, ROOM), compression=None, proxy=None, max_size=None)
    await ws.send(codec.encode_sync_step1(b"\x00"))
    async with asyncio.timeout(10):
        while not isinstance(codec.decode(await ws.recv()), codec.SyncStep2):  # type: ignore[arg-type]
            pass
    return ws


async def observe(ws: ClientConnection, arrivals: dict[int, list[float]]) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for frame in ws:
            now = time.perf_counter()
            for match in MARKER.finditer(frame):  # type: ignore[arg-type]
                arrivals.setdefault(int(match.group(1)), []).append(now)


async def ping_phase(
    pinger: ClientConnection, frames: list[bytes], first: int, count: int
) -> dict[int, float]:
    sent: dict[int, float] = {}
    started = time.perf_counter()
    for i in range(count):
        seq = first + i
        sent[seq] = time.perf_counter()
        await pinger.send(frames[seq])
        await asyncio.sleep(max(0.0, started + (i + 1) * PING_INTERVAL - time.perf_counter()))
    await asyncio.sleep(0.5)  # let the last pings arrive
    return sent


def latencies(sent: dict[int, float], arrivals: dict[int, list[float]]) -> list[float]:
    out = []
    for seq, at in sent.items():
        for arrived in arrivals.get(seq, []):
            out.append((arrived - at) * 1000)
    return out


def summary(values: list[float], expected: int) -> dict[str, float]:
    if not values:
        return {"n": 0, "lost": expected, "p50": float("nan"), "p99": float("nan")}
    ordered = sorted(values)
    return {
        "n": len(values),
        "lost": expected - len(values),
        "p50": statistics.median(ordered),
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "max": ordered[-1],
    }


async def scenario(url: str, args: argparse.Namespace) -> dict[str, Any]:
    pings_per_phase = int(args.seconds / PING_INTERVAL)
    ping_frames = [
        codec.encode_update(u)
        for u in updates(555_000, 2 * pings_per_phase, lambda i: f"<P{i:07d}>")
    ]
    observers = [await synced_socket(url) for _ in range(args.observers)]
    pinger = await synced_socket(url)
    arrivals: dict[int, list[float]] = {}
    tasks = [asyncio.create_task(observe(ws, arrivals)) for ws in observers]
    tasks.append(asyncio.create_task(drain(pinger)))
    quiet = await ping_phase(pinger, ping_frames, 0, pings_per_phase)

    context = multiprocessing.get_context("spawn")
    ready, results = context.Event(), context.Queue()
    flooder = context.Process(
        target=flood_process, args=(url, args.rate, args.seconds, ready, results)
    )
    flooder.start()
    if not await asyncio.to_thread(ready.wait, 60):
        raise RuntimeError("flooder did not start")
    flood = await ping_phase(pinger, ping_frames, pings_per_phase, pings_per_phase)
    flood_result = await asyncio.to_thread(results.get, True, 60)
    await asyncio.to_thread(flooder.join, 10)
    if flooder.is_alive():
        flooder.kill()

    closed = [ws.close_code for ws in [*observers, pinger] if ws.close_code is not None]
    for ws in [*observers, pinger]:
        await ws.close()
    for task in tasks:
        task.cancel()
    expected = pings_per_phase * args.observers
    return {
        "quiet": summary(latencies(quiet, arrivals), expected),
        "flood": summary(latencies(flood, arrivals), expected),
        "flooder": flood_result,
        "bystanders_closed": closed,
    }


CONFIGS = {
    "default limits": (),
    "rate limits off": ("--rate-messages", "0", "--rate-bytes", "0"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=10_000, help="flood messages per second")
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each phase")
    parser.add_argument("--observers", type=int, default=3, help="other clients in the room")
    args = parser.parse_args()
    ok = True
    for name, flags in CONFIGS.items():
        with YsyncProcess(*flags) as server:
            try:
                result = asyncio.run(asyncio.wait_for(scenario(server.ws_url, args), 180))
            except ConnectionClosed as exc:
                # E.g. this process's own clients cannot read the flood fast enough
                # and the server cuts them off as slow consumers (4508).
                print(f"\n== {name} ==\nbystander connection closed: {exc}")
                ok = False
                continue
        quiet, flood, flooder = result["quiet"], result["flood"], result["flooder"]
        ratio = flood["p99"] / quiet["p99"] if quiet["p99"] else float("inf")
        verdict = "OK" if ratio <= 2 and not result["bystanders_closed"] else "OVER 2x"
        ok = ok and verdict == "OK"
        print(f"\n== {name} ==")
        print(
            f"flooder: sent {flooder['sent']} msgs in {flooder['elapsed']:.2f} s "
            f"({flooder['rate']:.0f}/s), closed with {flooder['close_code']} "
            f"{flooder['close_reason']!r}"
        )
        for phase, s in (("quiet", quiet), ("flood", flood)):
            print(
                f"{phase:>5}: {s['n']} latencies, {s['lost']} lost, p50 {s['p50']:.2f} ms, "
                f"p99 {s['p99']:.2f} ms, max {s.get('max', float('nan')):.2f} ms"
            )
        print(
            f"p99 flood/quiet = {ratio:.2f}x  bystanders closed: {result['bystanders_closed']}  "
            f"-> {verdict}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
