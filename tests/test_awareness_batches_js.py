"""Batched awareness through the real JS client: npm y-websocket's WebsocketProvider
(y-protocols/awareness) applies every state a batch carries, and removals arrive."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from ysync.clients import connect

from support import aio
from support.jsclient import JSClient
from support.presence import client_fields
from support.servers import YsyncProcess

MOVES = 30


@pytest.fixture(scope="module")
def slow_ticks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YsyncProcess]:
    """A node with a long tick, so the movers' bursts are sure to be batched."""
    log = tmp_path_factory.mktemp("server") / "ysync.log"
    with YsyncProcess("--awareness-tick", "0.2", log_path=log) as process:
        yield process


def test_a_js_client_applies_every_state_of_a_batch(
    slow_ticks: YsyncProcess, js_clients_dir: Path
) -> None:
    async def scenario() -> None:
        room = "batches/js"
        async with AsyncExitStack() as stack:
            js = await stack.enter_async_context(JSClient.start(js_clients_dir))
            await js.call("connect", url=slow_ticks.ws_url, room=room)
            await js.call("wait_synced", timeout_ms=10_000)
            movers: list[Any] = []
            for _ in range(3):
                mover = await stack.enter_async_context(connect(slow_ticks.ws_url, room))
                await mover.synced()
                movers.append(mover)
            # Bursts of moves from three clients, far faster than the tick: most are
            # replaced in their batch by a later state of the same client.
            for n in range(MOVES):
                for i, mover in enumerate(movers):
                    mover.awareness.set_local_state({"user": f"m{i}", "cursor": n})
            for i, mover in enumerate(movers):
                final = {"user": f"m{i}", "cursor": MOVES - 1}
                await js.call(
                    "wait_awareness",
                    client_id=mover.doc.client_id,
                    equals=final,
                    timeout_ms=5000,
                )
            # A removal within a busy tick arrives too.
            movers[0].awareness.set_local_state({"user": "m0", "cursor": -1})
            movers[0].awareness.set_local_state(None)
            await js.call(
                "wait_awareness",
                client_id=movers[0].doc.client_id,
                present=False,
                timeout_ms=5000,
            )
            states = (await js.call("awareness_states"))["states"]
            assert client_fields(states[str(movers[1].doc.client_id)]) == {
                "user": "m1",
                "cursor": MOVES - 1,
            }

    aio.run(scenario(), timeout=60)
