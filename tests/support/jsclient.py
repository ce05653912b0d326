"""Drive real JavaScript Yjs clients (yjs + y-websocket) from Python tests.

Each :class:`JSClient` is one ``node tests/js/yclient.mjs`` process holding one
``Y.Doc`` and one ``WebsocketProvider``; the command protocol is documented at
the top of ``tests/js/yclient.mjs``. Typical use::

    ensure_node_modules(JS_DIR)  # once per session
    async with JSClient.start(JS_DIR) as c:
        await c.call("connect", url="ws://127.0.0.1:1234", room="a/b")
        await c.call("wait_synced")
        await c.call("text_insert", name="t", index=0, value="hi")
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ysync.loadtest import node as node_packages

JS_DIR = Path(__file__).parent.parent / "js"
DEFAULT_TIMEOUT = 10.0
# How long a wait_* (hpclient: wait) command waits when the test names no timeout_ms.
# The JS side's own default is 5 s, too short when the suite runs several node
# processes and servers on a loaded 2-core machine; a wait that succeeds returns as
# soon as its condition holds, so only a failing test takes longer.
WAIT_TIMEOUT_MS = 20_000
# Extra time over a command's own timeout_ms, so the JS side's timeout error
# (which says what it was waiting for) arrives before ours fires.
_GRACE = 5.0
_STDERR_TAIL = 4000


class JSClientError(RuntimeError):
    """An error reply, a timeout, or the node process dying; carries its stderr."""


def ensure_node_modules(js_dir: Path = JS_DIR) -> None:
    """Install the locked npm packages if ``node_modules`` is missing or stale."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise JSClientError(
            "Node.js and npm are needed for the JavaScript client tests: "
            "install Node >= 18 so that `node` and `npm` are on PATH"
        )
    try:
        node_packages.ensure_node_modules(js_dir)
    except node_packages.NodeError as exc:
        raise JSClientError(str(exc)) from None


class JSClient:
    """One node process running yclient.mjs; use :meth:`start` to get one."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._stderr = bytearray()
        #: Unsolicited event lines ({"event": "status", ...}) in arrival order.
        self.events: list[dict[str, Any]] = []
        self._readers = [
            asyncio.create_task(self._read_stdout()),
            asyncio.create_task(self._read_stderr()),
        ]

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls, js_dir: Path = JS_DIR, script: str = "yclient.mjs"
    ) -> AsyncIterator[JSClient]:
        """Spawn the client (``hpclient.mjs``: Hocuspocus providers instead); on exit
        kill it (tests call ``disconnect`` for a clean close)."""
        node = shutil.which("node")
        if node is None:
            raise JSClientError("`node` is not on PATH")
        proc = await asyncio.create_subprocess_exec(
            node,
            str(js_dir / script),
            cwd=js_dir,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # Replies can carry whole documents; the default 64 KiB line limit is too small.
            limit=64 * 1024 * 1024,
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
        client = cls(proc)
        try:
            yield client
        finally:
            await client._close()

    @property
    def stderr(self) -> str:
        """Everything the node process wrote to stderr so far."""
        return self._stderr.decode(errors="replace")

    async def call(self, cmd: str, timeout: float | None = None, **args: Any) -> dict[str, Any]:
        """Send one command and return its reply; raise JSClientError on error or timeout.

        A wait command without ``timeout_ms`` gets WAIT_TIMEOUT_MS. Without
        ``timeout``, waits DEFAULT_TIMEOUT, or the command's own ``timeout_ms``
        plus a grace period if that is longer.
        """
        if self._readers[0].done():
            raise self._error(f"{cmd}: node exited with code {self._proc.returncode}")
        if cmd.startswith("wait") and "timeout_ms" not in args:
            args["timeout_ms"] = WAIT_TIMEOUT_MS
        if timeout is None:
            timeout = max(DEFAULT_TIMEOUT, args.get("timeout_ms", 0) / 1000 + _GRACE)
        self._next_id += 1
        msg_id = self._next_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        stdin = self._proc.stdin
        assert stdin is not None  # created with stdin=PIPE
        try:
            stdin.write(json.dumps({"id": msg_id, "cmd": cmd, **args}).encode() + b"\n")
            await stdin.drain()
            reply = await asyncio.wait_for(future, timeout)
        except (TimeoutError, ConnectionError) as exc:
            raise self._error(f"{cmd}: no reply ({exc!r}) within {timeout} s") from exc
        finally:
            self._pending.pop(msg_id, None)
        if "error" in reply:
            raise self._error(f"{cmd}: {reply['error']}")
        return reply

    def _error(self, message: str) -> JSClientError:
        tail = self.stderr[-_STDERR_TAIL:]
        return JSClientError(f"{message}\n--- node stderr ---\n{tail}" if tail else message)

    async def _read_stdout(self) -> None:
        stdout = self._proc.stdout
        assert stdout is not None
        async for raw in stdout:
            try:
                msg = json.loads(raw)
            except ValueError:  # a stray console.log must not kill the reader
                msg = {"event": "stdout", "line": raw.decode(errors="replace")}
            if "id" not in msg:
                self.events.append(msg)
                continue
            future = self._pending.get(msg["id"])
            if future is not None and not future.done():
                future.set_result(msg)
        # EOF: the process is gone, so no pending command will ever be answered.
        code = await self._proc.wait()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(self._error(f"node exited with code {code}"))

    async def _read_stderr(self) -> None:
        stderr = self._proc.stderr
        assert stderr is not None
        while chunk := await stderr.read(65536):
            self._stderr += chunk

    async def _close(self) -> None:
        stdin = self._proc.stdin
        if stdin is not None:
            stdin.close()  # closes our end of the pipe, so no transport is left open
        if self._proc.returncode is None:
            self._proc.kill()
        await self._proc.wait()
        # The readers end at EOF; gather them so no task outlives the client.
        await asyncio.gather(*self._readers, return_exceptions=True)
