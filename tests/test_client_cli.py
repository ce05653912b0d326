"""`ysync doc get`, `ysync doc put` and `ysync watch`, run as the real command
against a real server."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pycrdt import Doc, Map, Text

from ysync.clients import connect
from ysync.rooms.hooks import ConnectionRequest, Hooks, Identity
from ysync.server import create_app
from ysync.server.settings import Settings

from support.aio import run
from support.servers import YsyncProcess, free_port
from support.threaded_server import ThreadedServer


def ysync(
    *args: str, stdin: bytes | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "ysync", *args],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def test_put_then_get_json_round_trip(server: YsyncProcess, tmp_path: Path) -> None:
    url = ("--url", server.ws_url)
    content = {"title": "Notes ✍️", "meta": {"owner": "ada", "n": 1}, "tags": ["a", "b"]}
    file = tmp_path / "doc.json"
    file.write_text(json.dumps(content), encoding="utf-8")
    put = ysync("doc", "put", "cli/doc", str(file), *url)
    assert put.returncode == 0, put.stderr.decode()
    assert b"changed" in put.stderr
    got = ysync("doc", "get", "cli/doc", *url)
    assert got.returncode == 0, got.stderr.decode()
    assert json.loads(got.stdout) == content

    # A second put changes only what differs; a live session sees it.
    async def scenario() -> None:
        async with connect(server.ws_url, "cli/doc") as live:
            await live.synced()
            title = live.doc.get("title", type=Text)
            edited = {"title": "Notes ✍️ (v2)", "meta": {"owner": "bob"}}
            file.write_text(json.dumps(edited), encoding="utf-8")
            result = await asyncio.to_thread(ysync, "doc", "put", "cli/doc", str(file), *url)
            assert result.returncode == 0, result.stderr.decode()
            await live.wait_until(lambda s: str(title) == "Notes ✍️ (v2)", 5)
            meta = live.doc.get("meta", type=Map)
            await live.wait_until(lambda s: meta.to_py() == {"owner": "bob"}, 5)

    run(scenario())
    again = ysync("doc", "put", "cli/doc", str(file), *url)
    assert b"already up to date" in again.stderr
    final = json.loads(ysync("doc", "get", "cli/doc", *url).stdout)
    assert final == {"title": "Notes ✍️ (v2)", "meta": {"owner": "bob"}, "tags": ["a", "b"]}


def test_binary_update_round_trip_through_get_and_put(server: YsyncProcess, tmp_path: Path) -> None:
    url = ("--url", server.ws_url)
    source = Doc()
    source.get("t", type=Text).insert(0, "from a binary update")
    update = tmp_path / "doc.bin"
    update.write_bytes(source.get_update())
    assert ysync("doc", "put", "cli/bin", str(update), *url).returncode == 0
    # stdin, and an update that adds nothing new.
    same = ysync("doc", "put", "cli/bin", "-", *url, stdin=source.get_update())
    assert same.returncode == 0 and b"no news" in same.stderr
    got = ysync("doc", "get", "cli/bin", "--format", "update", *url)
    assert got.returncode == 0
    copy = Doc()
    copy.apply_update(got.stdout)
    assert str(copy.get("t", type=Text)) == "from a binary update"


def test_errors_exit_1_with_a_message(server: YsyncProcess, tmp_path: Path) -> None:
    nowhere = ysync("doc", "get", "x", "--url", f"ws://127.0.0.1:{free_port()}", "--timeout", "3")
    assert nowhere.returncode == 1
    assert b"ysync: error: cannot connect" in nowhere.stderr
    file = tmp_path / "bad.json"
    file.write_text('{"t": "text"}')
    assert ysync("doc", "put", "cli/types", str(file), "--url", server.ws_url).returncode == 0
    file.write_text('{"t": {"now": "a map"}}')
    mismatch = ysync("doc", "put", "cli/types", str(file), "--url", server.ws_url)
    assert mismatch.returncode == 1
    assert b"root 't' is a text on the server, not a map" in mismatch.stderr
    file.write_text("[1, 2]")
    assert ysync("doc", "put", "cli/types", str(file), "--url", server.ws_url).returncode == 1


class ReadOnlyHooks(Hooks):
    async def authenticate(self, request: ConnectionRequest) -> Identity:
        return Identity(user_id="viewer", read_only=request.query.get("token") != "editor")


@pytest.fixture
def read_only_server() -> Iterator[ThreadedServer]:
    app = create_app(Settings(store="memory://", unload_grace=0.0), ReadOnlyHooks())
    with ThreadedServer(app) as server:
        yield server


def test_put_reports_a_read_only_refusal(read_only_server: ThreadedServer, tmp_path: Path) -> None:
    file = tmp_path / "doc.json"
    file.write_text('{"t": "hello"}')
    url = ("--url", read_only_server.ws_url)
    refused = ysync("doc", "put", "ro", str(file), *url, "--token", "viewer")
    assert refused.returncode == 1
    assert b"the server refused the edit: read-only" in refused.stderr
    assert ysync("doc", "put", "ro", str(file), *url, "--token", "editor").returncode == 0
    assert json.loads(ysync("doc", "get", "ro", *url, "--token", "viewer").stdout) == {"t": "hello"}


def test_watch_shows_joins_edits_and_leaves(server: YsyncProcess) -> None:
    async def read_until(stream: asyncio.StreamReader, needle: str, seen: list[str]) -> None:
        while not any(needle in line for line in seen):
            line = await stream.readline()
            if not line:
                raise AssertionError(f"watch ended before {needle!r}: {seen}")
            seen.append(line.decode().rstrip("\n"))

    async def scenario() -> list[str]:
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ysync",
            "watch",
            "cli/watch",
            "--url",
            server.ws_url,
            "--duration",
            "20",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        lines: list[str] = []
        try:
            await asyncio.wait_for(read_until(proc.stdout, "synced", lines), 15)
            async with connect(server.ws_url, "cli/watch") as ada:
                await ada.synced()
                ada.awareness.set_local_state({"user": {"name": "Ada"}})
                await asyncio.wait_for(read_until(proc.stdout, "joined", lines), 10)
                ada.doc.get("t", type=Text).insert(0, "hello")
                await asyncio.wait_for(read_until(proc.stdout, '"hello"', lines), 10)
                ada.doc.get("m", type=Map)["k"] = "v"
                await asyncio.wait_for(read_until(proc.stdout, "m = ", lines), 10)
                ada.doc.get("m", type=Map)["k"] = "w"
                await asyncio.wait_for(read_until(proc.stdout, 'm.k = "w"', lines), 10)
                del ada.doc.get("t", type=Text)[0:2]
                await asyncio.wait_for(read_until(proc.stdout, "-2 bytes", lines), 10)
            await asyncio.wait_for(read_until(proc.stdout, "left", lines), 10)
        finally:
            proc.terminate()
            await proc.wait()
        assert time.monotonic() - started < 20  # we stopped it; --duration is the backstop
        return lines

    lines = run(scenario())
    text = "\n".join(lines)
    ada = next(line for line in lines if "joined" in line).split("+ ", 1)[1].split(" joined")[0]
    assert ada.startswith("Ada (")
    # A root's first edit shows its whole value; later ones the change.
    assert f'{ada}: t = "hello" (new root)' in text
    assert f'{ada}: m = {{"k": "v"}} (new root)' in text
    assert "someone (deletions only): t -2 bytes" in text
    assert f"- {ada} left" in text


def test_watch_ends_after_duration(server: YsyncProcess) -> None:
    started = time.monotonic()
    result = ysync("watch", "cli/idle", "--url", server.ws_url, "--duration", "1")
    assert result.returncode == 0, result.stderr.decode()
    assert b"synced: empty document" in result.stdout
    assert b"present: nobody else" in result.stdout
    assert time.monotonic() - started < 15
