"""/metrics over a scripted session, on one process and on two workers."""

from __future__ import annotations

import asyncio
import re
import urllib.request
from pathlib import Path
from typing import Any

from pycrdt import Text

from ysync.clients import connect

from support.aio import run
from support.servers import RedisProcess, YsyncProcess


def scrape(server: YsyncProcess) -> dict[str, float]:
    with urllib.request.urlopen(server.http_url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r"^([a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$", line)
        if match:
            samples[match.group(1)] = samples.get(match.group(1), 0.0) + float(match.group(2))
    return samples


async def wait_for_metric(
    server: YsyncProcess, name: str, predicate: Any, timeout: float = 10
) -> dict[str, float]:
    async with asyncio.timeout(timeout):
        while True:
            samples = await asyncio.to_thread(scrape, server)
            if predicate(samples.get(name, 0.0)):
                return samples
            await asyncio.sleep(0.2)


def test_metrics_follow_a_scripted_session(tmp_path: Path) -> None:
    with YsyncProcess(store=f"sqlite:///{tmp_path}/m.db", log_path=tmp_path / "log") as server:

        async def scenario() -> None:
            before = await asyncio.to_thread(scrape, server)
            assert before.get("ysync_connections", 0) == 0
            async with (
                connect(server.ws_url, "metered") as a,
                connect(server.ws_url, "metered") as b,
            ):
                await a.synced()
                await b.synced()
                for i in range(10):
                    a.doc.get("t", type=Text).insert(0, str(i))
                async with asyncio.timeout(5):
                    while len(str(b.doc.get("t", type=Text))) < 10:
                        await asyncio.sleep(0.01)
                during = await wait_for_metric(server, "ysync_connections", lambda v: v == 2)
                assert during["ysync_rooms_loaded"] == 1
                updates = 'ysync_messages_received_total{type="update"}'
                during = await wait_for_metric(server, updates, lambda v: v >= 10)
                assert during["ysync_messages_sent_total"] >= 10
                assert during["ysync_message_handling_seconds_count"] >= 10
                during = await wait_for_metric(
                    server, "ysync_store_flush_seconds_count", lambda v: v >= 1
                )
                assert during["ysync_store_flush_batch_updates_sum"] >= 10
            after = await wait_for_metric(server, "ysync_connections", lambda v: v == 0)
            assert after["ysync_rooms_idle"] == 1  # loaded, no clients, waiting for the grace

        run(scenario())


def test_metrics_add_up_across_two_workers(tmp_path: Path) -> None:
    with (
        RedisProcess() as redis,
        YsyncProcess(
            "--workers",
            "2",
            "--redis-url",
            redis.url,
            store=f"sqlite:///{tmp_path}/w.db",
            log_path=tmp_path / "log",
        ) as server,
    ):

        async def scenario() -> None:
            sessions = [await connect(server.ws_url, f"room-{i}").__aenter__() for i in range(8)]
            for s in sessions:
                await s.synced()
            # Whichever worker answers the scrape, it counts both workers' clients.
            for _ in range(3):
                samples = await wait_for_metric(server, "ysync_connections", lambda v: v == 8)
                assert samples["ysync_rooms_loaded"] == 8
            for s in sessions:
                await s.close()
            await wait_for_metric(server, "ysync_connections", lambda v: v == 0)

        run(scenario())
