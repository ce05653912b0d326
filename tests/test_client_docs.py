"""The examples in docs/sdk.md run exactly as printed."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

from pycrdt import Text

from ysync.clients import connect

from support.aio import run
from support.servers import YsyncProcess

GUIDE = Path(__file__).parent.parent / "docs" / "sdk.md"


def example(name: str) -> str:
    """The ```python block after `<!-- example: NAME -->` in the guide."""
    match = re.search(
        rf"<!-- example: {re.escape(name)} -->\n```python\n(.*?)```", GUIDE.read_text(), re.S
    )
    assert match, f"no example {name} in {GUIDE}"
    return match.group(1)


def test_agent_example_appends_a_paragraph(server: YsyncProcess, tmp_path: Path) -> None:
    script = tmp_path / "agent.py"
    script.write_text(example("agent.py"))
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, str(script), server.ws_url, "docs/agent"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "appended" in result.stdout

    async def check() -> None:
        async with connect(server.ws_url, "docs/agent") as reader:
            await reader.synced()
            paragraph = "\nA paragraph written by the agent.\n"
            assert str(reader.doc.get("text", type=Text)) == paragraph * 2

    run(check())


def test_watcher_example_prints_who_joins_and_leaves(server: YsyncProcess, tmp_path: Path) -> None:
    script = tmp_path / "watcher.py"
    script.write_text(example("watcher.py"))

    async def scenario() -> str:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            server.ws_url,
            "docs/watch",
            "20",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        seen: list[str] = []

        async def until(needle: str) -> None:
            while not any(needle in line for line in seen):
                line = await proc.stdout.readline()  # type: ignore[union-attr]
                assert line, f"watcher ended before {needle!r}: {seen}"
                seen.append(line.decode())

        try:
            await asyncio.wait_for(until("[synced]"), 15)
            async with connect(server.ws_url, "docs/watch") as ada:
                ada.awareness.set_local_state({"user": {"name": "Ada"}})
                await asyncio.wait_for(until("joined: Ada"), 10)
            await asyncio.wait_for(until("left: Ada"), 10)
        finally:
            proc.terminate()
            await proc.wait()
        return "".join(seen)

    output = run(scenario())
    assert "[connecting]" in output and "joined: Ada" in output and "left: Ada" in output
