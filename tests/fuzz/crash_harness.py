"""Crash fuzzer: hostile bytes against a real `ysync serve` process, counting process crashes.

A native crash (yrs overflowing its stack, a panic that escapes) kills the whole
process, so in-process fuzzing (fuzz_codec.py) cannot see it: here the server is
a subprocess, and the harness counts how often it dies (and restarts it), how
often /healthz stops answering, and every close code it answers with (1011 is an
internal error: a bug, though not a crash).

    python tests/fuzz/crash_harness.py --inputs 1000000          # the full run
    python tests/fuzz/crash_harness.py --quick                   # the suite's smoke

Four input families, interleaved:

- codec: y-websocket frames, valid and mutated (sync, awareness, auth, query);
- update: Yjs updates, real (pycrdt) and mutated, deep nesting just under and
  over the limit, gapped structs, huge state vectors;
- frames: raw WebSocket byte streams after a valid handshake (bad headers,
  opcodes, lengths, fragments, control frames);
- http: mutated HTTP request heads on fresh connections.

An input counts once the server has processed it: each is followed by a
query-awareness marker, and the inputs counted on a connection are the markers
answered, plus the one the server refused when it closed the connection (an
awareness echo may over-count by one now and then). Exit status 1 if the
process crashed or hung at least once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pycrdt import Array, Doc, Map, Text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: support, fuzz

from ysync.rooms import codec
from ysync.rooms.lib0 import var_string, var_uint

from fuzz.poison import deep_any, deep_maps, deep_maps_delete
from support.raw_ws import client_frame, handshake, read_server_frame
from support.servers import YsyncProcess

FRAMES_PER_CONNECTION = 64
MAX_INPUT = 4096  # bytes of one mutated input (the deep ones are built, not mutated)


def mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not out:
            out += rng.randbytes(rng.randint(1, 8))
            continue
        i = rng.randrange(len(out))
        op = rng.randrange(5)
        if op == 0:
            out[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            del out[i:]
        elif op == 2:
            out[i:i] = rng.randbytes(rng.randint(1, 8))
        elif op == 3:
            del out[i : i + rng.randint(1, 8)]
        else:
            out[i] = rng.choice((0x00, 0x7F, 0x80, 0xFF, 0x75, 0x76, 0x77, 0x27))
    return bytes(out[:MAX_INPUT])


def seed_updates(rng: random.Random) -> list[bytes]:
    seeds = []
    for _ in range(60):
        doc = Doc()
        text, ymap, array = (
            doc.get("t", type=Text),
            doc.get("m", type=Map),
            doc.get("a", type=Array),
        )
        for _ in range(rng.randint(1, 6)):
            kind = rng.randrange(4)
            if kind == 0:
                text.insert(rng.randint(0, len(text)), rng.choice(("a", "é", "😀", "xyz")))
            elif kind == 1:
                ymap[rng.choice("abc")] = rng.choice((1, "s", None, [1, {"k": [2]}], 1.5, True))
            elif kind == 2:
                array.append(rng.choice((Map(), Array(), Text("t"), {"x": 1})))
            elif len(text):
                del text[0:1]
        seeds.append(doc.get_update())
    return seeds


@dataclass
class Inputs:
    rng: random.Random
    updates: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.updates = seed_updates(self.rng)

    def update(self) -> bytes:
        rng = self.rng
        pick = rng.randrange(20)
        if pick == 0:
            return deep_any(rng.choice((250, 257, 2000, 40_000)), client=rng.randrange(1, 2**32))
        if pick == 1:
            return deep_maps(rng.choice((250, 257, 3000)), client=rng.randrange(1, 2**32))
        if pick == 2:
            return deep_maps_delete(client=rng.randrange(1, 50))
        if pick == 3:  # a struct behind a clock gap
            item = b"\x04" + var_uint(1) + var_string("t") + var_string("x" * rng.randint(1, 50))
            client, clock = rng.randrange(1, 50), rng.randrange(1, 10_000)
            return b"\x01\x01" + var_uint(client) + var_uint(clock) + item + b"\x00"
        seed = rng.choice(self.updates)
        return seed if pick < 6 else mutate(rng, seed)

    def message(self) -> bytes:
        rng = self.rng
        pick = rng.randrange(9)
        if pick < 5:
            frame = rng.choice((codec.encode_update, codec.encode_sync_step2))(self.update())
            return frame if rng.random() < 0.7 else mutate(rng, frame)
        if pick == 5:
            n = rng.choice((0, 1, 5, 100_001))
            sv = var_uint(n) + b"".join(
                var_uint(rng.randrange(2**32)) + var_uint(rng.randrange(99))
                for _ in range(min(n, 5))
            )
            return codec.encode_sync_step1(sv if rng.random() < 0.5 else mutate(rng, sv))
        if pick == 6:
            entries = [
                codec.AwarenessEntry(rng.randrange(2**32), rng.randrange(9), '{"u":1}')
                for _ in range(rng.randint(0, 3))
            ]
            return mutate(rng, codec.encode_awareness(entries))
        if pick == 7:
            return mutate(rng, codec.encode_permission_denied("x"))
        return rng.randbytes(rng.randint(0, 64))

    def frames_stream(self) -> bytes:
        """Raw WebSocket bytes: frames of any opcode, flags, length form, masking."""
        rng = self.rng
        out = bytearray()
        for _ in range(rng.randint(1, 8)):
            payload = self.message() if rng.random() < 0.5 else rng.randbytes(rng.randint(0, 200))
            opcode = rng.choice((0x0, 0x1, 0x2, 0x8, 0x9, 0xA, 0x3, 0xF))
            frame = client_frame(opcode, payload, final=rng.random() < 0.7)
            out += frame if rng.random() < 0.7 else mutate(rng, frame)
        return bytes(out)

    def http_head(self) -> bytes:
        rng = self.rng
        base = handshake(rng.choice(("room", "a/b", "%00", "x" * 600, "")))
        if rng.random() < 0.3:
            base = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        return mutate(rng, base) if rng.random() < 0.9 else rng.randbytes(rng.randint(0, 300))


@dataclass
class Tally:
    inputs: Counter[str] = field(default_factory=Counter)
    closes: Counter[str] = field(default_factory=Counter)
    crashes: list[int | None] = field(default_factory=list)
    hangs: int = 0

    @property
    def total(self) -> int:
        return sum(self.inputs.values())


MARKER = client_frame(0x2, codec.encode_query_awareness())  # answered by an awareness frame


async def _answers(reader: asyncio.StreamReader, timeout: float) -> tuple[int, str]:
    """Read until the server's close frame (or EOF): how many awareness frames came
    (one per marker: the hostile input before it was processed) and the close code."""
    answers = 0
    try:
        async with asyncio.timeout(timeout):
            while True:
                first, payload = await read_server_frame(reader)
                if first & 0x0F == 0x8:
                    return answers, str(int.from_bytes(payload[:2], "big")) if payload else "1005"
                if first & 0x0F == 0x2 and payload[:1] == b"\x01":
                    answers += 1
    except (asyncio.IncompleteReadError, ConnectionError):
        return answers, "eof"
    except TimeoutError:
        return answers, "open"


async def _ws_batch(port: int, parts: list[bytes], tally: Tally, family: str) -> None:
    """Send each input followed by a marker; count the inputs the server processed:
    one per marker answered, plus the one it refused (if it closed the connection)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(handshake(f"fuzz-{os.urandom(6).hex()}"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        if not head.startswith(b"HTTP/1.1 101"):
            tally.closes["http:" + head[9:12].decode("latin-1")] += 1
            return
        writer.write(b"".join(part + MARKER for part in parts) + client_frame(0x8, b"\x03\xe8"))
        await writer.drain()
        answers, code = await _answers(reader, 10)
        tally.closes[code] += 1
        refused = 0 if code == "1000" or answers >= len(parts) else 1
        tally.inputs[family] += min(answers, len(parts)) + refused
    except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
        tally.closes["dropped"] += 1
    finally:
        writer.transport.abort()


async def _http(port: int, head: bytes, tally: Tally) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        async with asyncio.timeout(5):
            answer = await reader.read(16)
        tally.closes["http:" + answer[9:12].decode("latin-1") if answer else "http:eof"] += 1
    except (ConnectionError, TimeoutError):
        tally.closes["http:dropped"] += 1
    finally:
        writer.transport.abort()


async def _one_job(port: int, inputs: Inputs, tally: Tally, job: int) -> None:
    rng = inputs.rng
    family = ("codec", "update", "frames", "http")[job % 4]
    if family == "http":
        await _http(port, inputs.http_head(), tally)
        tally.inputs[family] += 1
        return
    count = rng.randint(1, FRAMES_PER_CONNECTION)
    if family == "frames":
        parts = [inputs.frames_stream() for _ in range(count)]
    elif family == "codec":
        parts = [client_frame(0x2, inputs.message()) for _ in range(count)]
    else:
        parts = [client_frame(0x2, codec.encode_update(inputs.update())) for _ in range(count)]
    await _ws_batch(port, parts, tally, family)


async def _healthy(port: int) -> bool:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        async with asyncio.timeout(10):
            ok = (await reader.read(12)).startswith(b"HTTP/1.1 200")
        writer.transport.abort()
        return ok
    except (ConnectionError, TimeoutError):
        return False


# Through the environment, which a build without some of these settings ignores
# (so the same harness can be pointed at an older ysync with PYTHONPATH).
SERVER_ENVIRONMENT = {
    "YSYNC_MAX_DOCUMENT_BYTES": "2000000",
    "YSYNC_RATE_MESSAGES": "0",
    "YSYNC_RATE_BYTES": "0",
    "YSYNC_IP_CONNECTIONS_PER_MINUTE": "0",
    "YSYNC_MAX_HANDSHAKES_PER_IP": "0",
    "YSYNC_UNLOAD_GRACE": "0.5",  # a room per connection: do not keep them all
}


def _start(server: YsyncProcess) -> None:
    """Start the server with SERVER_ENVIRONMENT, leaving this process's own as it was
    (the suite runs this in-process: later tests must not inherit it)."""
    saved = {name: os.environ.get(name) for name in SERVER_ENVIRONMENT}
    os.environ.update(SERVER_ENVIRONMENT)
    try:
        server.start()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


async def run(total: int, seconds: float, concurrency: int, seed: int, log: Path) -> Tally:
    rng = random.Random(seed)
    inputs = Inputs(rng)
    tally = Tally()
    server = YsyncProcess(log_path=log)
    _start(server)
    deadline = time.monotonic() + seconds
    job = 0
    try:
        while tally.total < total and time.monotonic() < deadline:
            batch = [_one_job(server.port, inputs, tally, job + i) for i in range(concurrency)]
            job += concurrency
            await asyncio.gather(*batch, return_exceptions=True)
            if server.proc is not None and server.proc.poll() is not None:
                tally.crashes.append(server.proc.returncode)
                print(
                    f"CRASH: exit {server.proc.returncode} after {tally.total} inputs", flush=True
                )
                _start(server)
            elif job % (concurrency * 50) == 0 and not await _healthy(server.port):
                tally.hangs += 1
                print(f"HANG: /healthz silent after {tally.total} inputs", flush=True)
                server.kill()
                _start(server)
            if job % (concurrency * 500) == 0:
                print(f"{tally.total} inputs, {len(tally.crashes)} crashes", flush=True)
        if not await _healthy(server.port):
            tally.hangs += 1
    finally:
        server.stop()
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=24 * 3600.0, help="stop after this long")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--log", type=Path, default=Path("crash-harness.log"))
    parser.add_argument("--quick", action="store_true", help="1,000 inputs (the suite's smoke)")
    args = parser.parse_args(argv)
    total = 1000 if args.quick else args.inputs
    started = time.monotonic()
    tally = asyncio.run(run(total, args.seconds, args.concurrency, args.seed, args.log))
    elapsed = time.monotonic() - started
    print(f"inputs: {tally.total} ({dict(tally.inputs)}) in {elapsed:.0f} s")
    print(f"process crashes: {len(tally.crashes)} {tally.crashes}  hangs: {tally.hangs}")
    print(f"answers: {dict(tally.closes.most_common())}")
    return 1 if tally.crashes or tally.hangs else 0


if __name__ == "__main__":
    sys.exit(main())
