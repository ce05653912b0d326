"""Async helpers shared by the tests: bounded runs and waits on a condition (no bare sleeps)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    """Run `coro` to completion in a new event loop, failing after `timeout` seconds."""

    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


async def wait_until(predicate: Callable[[], object], timeout: float = 20.0) -> None:
    """Poll `predicate` every 10 ms until it is true; TimeoutError after `timeout`
    (generous: it costs nothing when the predicate holds, and the suite shares a
    loaded 2-core machine)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)
