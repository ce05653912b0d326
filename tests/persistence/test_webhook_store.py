"""The webhook outbox on the memory store, a real SQLite file and a real PostgreSQL: an
event stored once per id, claims that lease (two claimers never get the same row), retries,
the delivery log, the backlog, a room's deletion."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ysync.persistence.memory import MemoryStore
from ysync.persistence.urls import open_store
from ysync.persistence.webhook_sql import Endpoint

from support.aio import run


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/w.db"


def test_the_outbox_stores_once_leases_retries_and_logs(store_url: str) -> None:
    async def main() -> None:
        store: Any = MemoryStore() if store_url == "memory://" else await open_store(store_url)
        try:
            hooks = store.webhooks
            await hooks.put_endpoint(Endpoint("wh_a", "http://x", "whsec_AAAA", "*", 1.0))
            rows = [
                (f"msg_{i}", "wh_a", "room" if i < 3 else "other", "t", "{}", float(i))
                for i in range(6)
            ]
            await hooks.enqueue(rows)
            await hooks.enqueue(rows[:2])  # the same ids again: kept once
            assert await hooks.backlog() == (6, 0.0)

            first, second = await asyncio.gather(
                hooks.claim(100.0, 30.0, 4), hooks.claim(100.0, 30.0, 4)
            )
            ids = [d.id for d in first] + [d.id for d in second]
            assert len(ids) == len(set(ids)) == 6  # nobody got a row twice
            assert await hooks.claim(110.0, 30.0, 10) == []  # all leased
            leased = {d.id: d for d in [*first, *second]}
            await hooks.finish(
                leased["msg_0"], state="delivered", status=200, error=None, due_at=101.0, now=101.0
            )
            await hooks.finish(
                leased["msg_1"], state="pending", status=500, error=None, due_at=105.0, now=101.0
            )
            again = await hooks.claim(106.0, 30.0, 10)
            assert [d.id for d in again] == ["msg_1"] and again[0].attempts == 1
            log = {d.id: d for d in await hooks.deliveries("wh_a", 10)}
            assert log["msg_0"].state == "delivered" and log["msg_0"].attempts == 1
            assert log["msg_1"].last_status == 500
            assert (await hooks.claim(200.0, 30.0, 10)) != []  # leases expire: another node retries

            await hooks.delete_room("other")
            assert {d.room for d in await hooks.deliveries("wh_a", 10)} == {"room"}
            assert await hooks.delete_endpoint("wh_a") and not await hooks.delete_endpoint("wh_a")
            assert await hooks.backlog() == (0, None)
        finally:
            await store.close()

    run(main())
