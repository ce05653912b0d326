"""Benchmark: what each hostile-client attack of issue 13 costs a node, and a bystander.

    .venv/bin/python tests/bench/hostile.py [--attacks all|name,...]
    PYTHONPATH=/path/to/older/ysync-parent .venv/bin/python tests/bench/hostile.py   # compare

Not a test. For each attack it starts a fresh `ysync serve --auth jwt` (memory
store), measures the server's RSS (VmRSS) before and at the attack's peak, and
the worst round trip a bystander in another room sees meanwhile (SyncStep1 →
SyncStep2, every 50 ms). Figures are noisy on a shared machine: run it twice.
A crash is reported as such (the process is gone).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: support, fuzz

from ysync.rooms import codec
from ysync.rooms.lib0 import var_string, var_uint

from fuzz.poison import deep_any
from support import authtokens as tk
from support.raw_ws import client_frame, handshake, read_server_frame
from support.servers import YsyncProcess

MIB = 1024 * 1024


def rss(server: YsyncProcess) -> int:
    assert server.proc is not None
    try:
        for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return 0


async def ws(server: YsyncProcess, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(handshake(path))
    await reader.readuntil(b"\r\n\r\n")
    return reader, writer


async def send(writer: asyncio.StreamWriter, data: bytes, timeout: float = 10) -> None:
    try:
        writer.write(data)
        async with asyncio.timeout(timeout):
            await writer.drain()
    except (ConnectionError, TimeoutError):
        pass


# -- attacks (each returns the sockets it holds open) ------------------------------------


async def pre_auth_32mib(server: YsyncProcess) -> list[asyncio.StreamWriter]:
    """A 32 MiB frame sent instead of an auth message."""
    _, writer = await ws(server, "victim")
    await send(writer, client_frame(0x2, b"x" * (32 * MIB)), timeout=3)
    return [writer]


async def after_refusal(server: YsyncProcess) -> list[asyncio.StreamWriter]:
    """A bad token, then a 30 MiB frame that never ends, ignoring the 4401."""
    _, writer = await ws(server, "victim")
    await send(writer, client_frame(0x2, b"\x02\x00\x03bad"))
    await send(writer, client_frame(0x2, b"y" * (30 * MIB))[:14] + b"y" * (29 * MIB), timeout=3)
    return [writer]


async def empty_fragments(server: YsyncProcess) -> list[asyncio.StreamWriter]:
    """An authenticated socket: one message of 2,000,000 empty continuation frames."""
    _, writer = await ws(server, f"victim?token={tk.token()}")
    await send(writer, client_frame(0x2, b"", final=False))
    await send(writer, client_frame(0x0, b"", final=False) * 2_000_000, timeout=5)
    return [writer]


async def idle_sockets(server: YsyncProcess) -> list[asyncio.StreamWriter]:
    """300 TCP connections that send nothing."""
    writers = []
    for _ in range(300):
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writers.append(writer)
    await asyncio.sleep(2)
    return writers


async def big_heads(server: YsyncProcess) -> list[asyncio.StreamWriter]:
    """20 request heads of 4 MiB each, never finished."""
    writers = []
    for _ in range(20):
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        await send(writer, b"GET / HTTP/1.1\r\nX-Big: " + b"a" * (4 * MIB), timeout=2)
        writers.append(writer)
    return writers


async def deep_update(server: YsyncProcess) -> list[asyncio.StreamWriter]:
    """One 80 KB update nesting Any arrays 40,000 deep (crashed main)."""
    _, writer = await ws(server, f"victim?token={tk.token()}")
    await send(writer, client_frame(0x2, codec.encode_update(deep_any(40_000))))
    await asyncio.sleep(1)
    return [writer]


async def gapped_flood(server: YsyncProcess) -> list[asyncio.StreamWriter]:
    """200 gapped single-struct updates, then a 4 MiB gapped one."""
    _, writer = await ws(server, f"victim?token={tk.token()}")
    for i in range(200):
        item = b"\x04" + var_uint(1) + var_string("t") + var_string("x")
        update = b"\x01\x01" + var_uint(5) + var_uint(2 + 2 * i) + item + b"\x00"
        await send(writer, client_frame(0x2, codec.encode_update(update)))
    item = b"\x04" + var_uint(1) + var_string("t") + var_string("z" * (4 * MIB))
    big = b"\x01\x01" + var_uint(6) + var_uint(1) + item + b"\x00"
    await send(writer, client_frame(0x2, codec.encode_update(big)))
    await asyncio.sleep(1)
    return [writer]


async def sv_bomb(server: YsyncProcess) -> list[asyncio.StreamWriter]:
    """Five SyncStep1s of 2,000,000 state-vector entries."""
    _, writer = await ws(server, f"victim?token={tk.token()}")
    bomb = codec.encode_sync_step1(var_uint(2_000_000) + b"\x01\x01" * 2_000_000)
    for _ in range(5):
        await send(writer, client_frame(0x2, bomb))
    await asyncio.sleep(1)
    return [writer]


ATTACKS: dict[str, Callable[[YsyncProcess], Awaitable[list[asyncio.StreamWriter]]]] = {
    f.__name__: f
    for f in (
        pre_auth_32mib,
        after_refusal,
        empty_fragments,
        idle_sockets,
        big_heads,
        deep_update,
        gapped_flood,
        sv_bomb,
    )
}


async def bystander(server: YsyncProcess, stop: asyncio.Event) -> float:
    """Worst SyncStep1 → SyncStep2 round trip (s) of a client in another room."""
    reader, writer = await ws(server, f"bystander?token={tk.token()}")
    worst = 0.0
    try:
        while not stop.is_set():
            started = time.monotonic()
            writer.write(client_frame(0x2, codec.encode_sync_step1(b"\x00")))
            async with asyncio.timeout(60):
                while True:
                    _first, payload = await read_server_frame(reader)
                    if payload[:2] == b"\x00\x01":
                        break
            worst = max(worst, time.monotonic() - started)
            await asyncio.sleep(0.05)
    except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
        worst = float("inf")
    writer.transport.abort()
    return worst


async def measure(name: str) -> str:
    server = YsyncProcess(*tk.JWT_FLAGS).start()
    try:
        await asyncio.sleep(0.5)
        before = rss(server)
        stop = asyncio.Event()
        watcher = asyncio.create_task(bystander(server, stop))
        await asyncio.sleep(0.3)
        held = await ATTACKS[name](server)
        peak = rss(server)
        alive = server.proc is not None and server.proc.poll() is None
        stop.set()
        stall = await watcher
        for writer in held:
            writer.transport.abort()
        state = (
            "alive" if alive else f"CRASHED (exit {server.proc.returncode if server.proc else '?'})"
        )
        return (
            f"{name:16s} RSS +{(peak - before) / MIB:7.1f} MiB   bystander worst round trip "
            f"{stall * 1000:8.0f} ms   {state}"
        )
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attacks", default="all")
    args = parser.parse_args()
    names = list(ATTACKS) if args.attacks == "all" else args.attacks.split(",")
    for name in names:
        print(asyncio.run(measure(name)), flush=True)


if __name__ == "__main__":
    main()
