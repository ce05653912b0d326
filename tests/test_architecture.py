"""The worked extension example in docs/architecture.md runs as printed, on a real server."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from pycrdt import Text

from ysync.clients import connect
from ysync.server import create_app
from ysync.server.settings import Settings

from support.aio import run
from support.threaded_server import ThreadedServer

GUIDE = Path(__file__).parent.parent / "docs" / "architecture.md"


def example(name: str) -> dict[str, Any]:
    """Run the ```python block after `<!-- example: NAME -->`; its globals."""
    match = re.search(
        rf"<!-- example: {re.escape(name)} -->\n```python\n(.*?)```", GUIDE.read_text(), re.S
    )
    assert match, f"no example {name} in {GUIDE}"
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), name, "exec"), namespace)
    return namespace


def test_the_edit_counter_extension_counts_client_edits_and_serves_them() -> None:
    counter = example("edit_counter.py")["EditCounter"]()
    app = create_app(Settings(store="memory://", demo=False), extensions=[counter])
    with ThreadedServer(app) as server:

        async def edit() -> None:
            async with connect(server.ws_url, "counted") as session:
                await session.synced()
                text = session.doc.get("t", type=Text)
                for word in ("one ", "two ", "three"):
                    text += word
                await session.flush()

        run(edit())
        counts = httpx.get(server.http_url + "/api/edit-counts", timeout=10).json()
    assert counts == {"counted": 3}
