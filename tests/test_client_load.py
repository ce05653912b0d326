"""200 SDK sessions in one process against one server: what the client side costs.

A benchmark-style test for the load harness, which drives this client: it
prints the client process's memory (RSS delta) and CPU time per phase and
asserts only correctness (everyone synced, everyone converged), never timings.
Run with `-s` to see the figures.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Text

from ysync.clients import Session, connect

from support.servers import YsyncProcess

CLIENTS = 200
ROOMS = 20  # phase 2: 10 clients per room
EDITS_PER_CLIENT = 5


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Meter:
    """CPU time (user + system, this process), wall time and RSS change of one phase."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> Meter:
        gc.collect()
        self.rss = rss_bytes()
        self.cpu = time.process_time()
        self.wall = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        cpu = time.process_time() - self.cpu
        wall = time.perf_counter() - self.wall
        gc.collect()
        rss = (rss_bytes() - self.rss) / 2**20
        print(
            f"  {self.name:<46} wall {wall:5.2f} s  client CPU {cpu:5.2f} s ({cpu / wall:4.0%})"
            f"  RSS {rss:+6.1f} MiB"
        )


@pytest.mark.slow
def test_200_clients_in_one_process(tmp_path: Path) -> None:
    with YsyncProcess(log_path=tmp_path / "ysync.log") as server:
        figures = asyncio.run(asyncio.wait_for(scenario(server.ws_url), 240))
    sync = figures["rss_sync"]
    print(
        f"  RSS {figures['rss0'] / 2**20:.1f} MiB before; {CLIENTS} synced sessions "
        f"+{sync / 2**20:.1f} MiB ({sync / CLIENTS / 1024:.1f} KiB each); "
        f"at the end +{figures['rss_end'] / 2**20:.1f} MiB"
    )


async def scenario(url: str) -> dict[str, Any]:
    gc.collect()
    rss0 = rss_bytes()
    print(f"\n{CLIENTS} sessions, one process, one ysync server")
    sessions: list[Session] = []
    try:
        # Phase 1: everyone in one room (a hot room: each edit reaches 199 others).
        with Meter(f"connect + sync {CLIENTS} sessions (1 room)"):
            sessions = [await connect(url, "load/hot") for _ in range(CLIENTS)]
            await asyncio.gather(*(s.synced(60) for s in sessions))
        gc.collect()
        rss_sync = rss_bytes() - rss0

        with Meter(f"presence: {CLIENTS} states to {CLIENTS} sessions"):
            for i, s in enumerate(sessions):
                s.awareness.set_local_state({"user": {"name": f"bot{i}"}})
            await asyncio.gather(
                *(s.awareness.wait_for(lambda st: len(st) == CLIENTS, 60) for s in sessions)
            )

        await asyncio.sleep(1)  # let the last presence echoes arrive before measuring idle
        with Meter("idle 2 s"):
            await asyncio.sleep(2)

        edits = 2
        with Meter(f"hot room: {CLIENTS * edits} edits, each to all"):
            for round_ in range(edits):
                for i, s in enumerate(sessions):
                    s.doc.get("t", type=Text).insert(0, f"{i}.{round_} ")
                await asyncio.sleep(0)
            await converge(sessions, expected_edits=CLIENTS * edits)

        # Phase 2: the same sessions spread over rooms, as a load harness would.
        with Meter("close all (awareness removal, close handshake)"):
            await asyncio.gather(*(s.close() for s in sessions))
        with Meter(f"reconnect {CLIENTS} sessions into {ROOMS} rooms"):
            sessions = [await connect(url, f"load/room-{i % ROOMS}") for i in range(CLIENTS)]
            await asyncio.gather(*(s.synced(60) for s in sessions))
        with Meter(f"{ROOMS} rooms: {CLIENTS * EDITS_PER_CLIENT} edits, 10 per room"):
            for round_ in range(EDITS_PER_CLIENT):
                for i, s in enumerate(sessions):
                    s.doc.get("t", type=Text).insert(0, f"{i}.{round_} ")
                await asyncio.sleep(0)
            for room in range(ROOMS):
                await converge(sessions[room::ROOMS], expected_edits=10 * EDITS_PER_CLIENT)
        gc.collect()
        rss_end = rss_bytes() - rss0
    finally:
        await asyncio.gather(*(s.close() for s in sessions))
    return {"rss0": rss0, "rss_sync": rss_sync, "rss_end": rss_end}


async def converge(sessions: list[Session], expected_edits: int) -> None:
    texts = [s.doc.get("t", type=Text) for s in sessions]
    reference = sessions[0]
    await reference.wait_until(
        lambda _: str(texts[0]).count(" ") >= expected_edits, 120, what="all edits"
    )
    final = str(texts[0])
    await asyncio.gather(
        *(
            s.wait_until(lambda _, t=t: str(t) == final, 120)
            for s, t in zip(sessions, texts, strict=True)
        )
    )
