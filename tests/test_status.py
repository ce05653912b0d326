"""The admin HTTP API (/api/rooms, /api/rooms/<room>) and `ysync status`, with and without auth."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ysync.clients import connect
from ysync.server.status import duration, format_node, format_room, size

from support import authtokens as tk
from support.aio import run
from support.servers import YsyncProcess, free_port


def api(server: YsyncProcess, path: str, token: str | None = None) -> tuple[int, Any, Any]:
    """GET `path`: status, JSON body, headers."""
    request = urllib.request.Request(server.http_url + path)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response), response.headers
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error), error.headers


def status_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ysync", "status", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


# Minted at import: valid for a day, since the suite may run this module long after collection.
DAY = 24 * 3600
ADMIN = tk.token("root", {"*": "owner"}, ttl=DAY)
TEAM_OWNER = tk.token("olga", {"team/*": "owner"}, ttl=DAY)
EDITOR = tk.token("ed", {"*": "editor"}, name="Ed", ttl=DAY)
VIEWER = tk.token("vi", {"team/*": "viewer"}, ttl=DAY)


def test_api_needs_an_owner_token_when_auth_is_on(tmp_path: Path) -> None:
    with YsyncProcess(*tk.JWT_FLAGS, log_path=tmp_path / "log") as server:

        async def scenario() -> None:
            async with (
                connect(server.ws_url, "team/notes", token=EDITOR) as ed,
                connect(server.ws_url, "team/notes", token=VIEWER) as vi,
            ):
                await ed.synced()
                await vi.synced()
                await asyncio.to_thread(check_api, server)
                await asyncio.to_thread(check_cli, server)

        run(scenario())
        log = (tmp_path / "log").read_text()
        assert '"action":"auth_failed"' in log and '"api":"/api/rooms"' in log


def check_api(server: YsyncProcess) -> None:
    status, body, headers = api(server, "/api/rooms")
    assert status == 401 and "token missing" in body["error"]
    assert headers["WWW-Authenticate"].startswith("Bearer")
    status, body, _ = api(server, "/api/rooms", "not-a-jwt")
    assert status == 401 and "invalid token" in body["error"]
    expired = tk.token("root", {"*": "owner"}, ttl=-60)
    assert api(server, "/api/rooms", expired)[0] == 401
    # Query-string tokens are not read by the API (URLs end up in logs).
    assert api(server, f"/api/rooms?token={ADMIN}")[0] == 401

    for token in (EDITOR, TEAM_OWNER):  # an editor everywhere; owner of some rooms only
        status, body, _ = api(server, "/api/rooms", token)
        assert status == 403 and '"owner" on "*"' in body["error"]
    assert api(server, "/api/rooms/team/notes", EDITOR)[0] == 403
    assert api(server, "/api/rooms/elsewhere", TEAM_OWNER)[0] == 403

    status, body, _ = api(server, "/api/rooms", ADMIN)
    assert status == 200
    assert body["node"]["ready"] and body["connections"] == 2
    (room,) = body["rooms"]
    assert room["name"] == "team/notes"
    assert (room["clients"], room["read_only"], room["idle"]) == (2, 1, False)

    for token in (ADMIN, TEAM_OWNER):  # the owner of the room may look inside it
        status, detail, _ = api(server, "/api/rooms/team/notes", token)
        assert status == 200, detail
        people = {(c["user"], c["name"], c["role"], c["read_only"]) for c in detail["connections"]}
        assert people == {("ed", "Ed", "editor", False), ("vi", None, "viewer", True)}
        for connection in detail["connections"]:
            assert connection["client"].startswith("127.0.0.1:")
            assert connection["connected_seconds"] >= 0 and connection["synced"]
    status, body, _ = api(server, "/api/rooms/team/unknown", ADMIN)
    assert status == 404 and body == {
        "error": "room not loaded on this node",
        "code": "room_not_loaded",
    }


def check_cli(server: YsyncProcess) -> None:
    refused = status_cli("--url", server.ws_url)
    assert refused.returncode == 2 and "HTTP 401" in refused.stderr
    shown = status_cli("--url", server.ws_url, "--token", ADMIN)  # a ws:// URL works too
    assert shown.returncode == 0, shown.stderr
    assert "ready" in shown.stdout and "connections 2" in shown.stdout
    line = next(line for line in shown.stdout.splitlines() if line.startswith("team/notes"))
    assert line.split()[:5] == ["team/notes", "2", "1", "0", "0"], line  # 0 B uncommitted
    overview = status_cli("--url", server.http_url, "--token", TEAM_OWNER)
    assert overview.returncode == 2 and "HTTP 403" in overview.stderr  # it needs "*"
    room = status_cli("--url", server.http_url, "--token", TEAM_OWNER, "--room", "team/notes")
    assert room.returncode == 0, room.stderr  # the room's owner may see the room
    assert room.stdout.splitlines()[0] == "ready"
    assert "ed (Ed)" in room.stdout and "viewer" in room.stdout
    as_json = status_cli("--url", server.http_url, "--token", ADMIN, "--json")
    assert json.loads(as_json.stdout)["rooms"][0]["name"] == "team/notes"


def test_status_shows_idle_rooms_and_unreachable_nodes(tmp_path: Path) -> None:
    with YsyncProcess("--unload-grace", "60", log_path=tmp_path / "log") as server:

        async def scenario() -> None:
            async with connect(server.ws_url, "short/visit") as visitor:
                await visitor.synced()
            async with connect(server.ws_url, "still/here") as stayer:
                await stayer.synced()
                shown = await asyncio.to_thread(status_cli, "--url", server.http_url)
                assert shown.returncode == 0, shown.stderr
                lines = shown.stdout.splitlines()
                assert "rooms 2 loaded (1 idle)" in lines[2]
                idle = next(line for line in lines if line.startswith("short/visit"))
                assert "idle, unloads in" in idle
                active = next(line for line in lines if line.startswith("still/here"))
                assert active.endswith("active")
                # Auth off: the API is open, like the rooms.
                status, body, _ = api(server, "/api/rooms/still/here")
                assert status == 200 and len(body["connections"]) == 1
                assert body["connections"][0]["user"] is None

        run(scenario())
    gone = status_cli("--url", f"http://127.0.0.1:{free_port()}", "--timeout", "2")
    assert gone.returncode == 2 and "cannot reach" in gone.stderr


def test_status_formatting() -> None:
    body = {
        "node": {
            "id": "abc123",
            "pid": 42,
            "version": "0.1.0",
            "uptime_seconds": 3725.0,
            "ready": False,
            "problems": ["draining: shutting down", "store: writes failing, retrying"],
            "store_healthy": False,
            "pending_bytes": 5 * 1024 * 1024,
            "redis": "connected",
            "loading": ["c"],
        },
        "connections": 3,
        "rooms": [
            {"name": "b", "clients": 0, "read_only": 0, "syncing": 0, "awareness": 0,
             "idle": True, "unload_in": 4.2, "pending_bytes": 0},
            {"name": "a", "clients": 3, "read_only": 1, "syncing": 1, "awareness": 2,
             "idle": False, "unload_in": None, "pending_bytes": 1536},
        ],
    }  # fmt: skip
    text = format_node(body)
    assert text.splitlines()[:3] == [
        "node abc123  pid 42  ysync 0.1.0  up 1h02m",
        "NOT READY: draining: shutting down; store: writes failing, retrying",
        "connections 3  rooms 2 loaded (1 idle), 1 loading  store FAILING, 5.0 MiB uncommitted"
        "  redis connected",
    ]
    rows = text.splitlines()[4:]
    assert rows[0].split() == ["ROOM", "CLIENTS", "READ-ONLY", "PRESENCE", "UNCOMMITTED", "STATE"]
    assert rows[1].split() == ["a", "3", "1", "2", "1.5", "KiB", "active,", "1", "syncing"]
    assert rows[2].endswith("idle, unloads in 4 s")
    assert format_node(body, limit=1).splitlines()[-1].startswith("... and 1 more rooms")
    body["rooms"][0]["pending_updates"] = 3  # stranded behind a missing dependency
    stranded = format_node(body).splitlines()
    assert stranded[3] == "1 room(s) hold updates waiting for a missing dependency (see STATE)"
    assert stranded[-1].endswith(
        "idle, unloads in 4 s, 3 update(s) waiting for a missing dependency"
    )
    del body["rooms"][0]["pending_updates"]

    room = {
        **body["rooms"][1],
        "document_bytes": 2048,
        "other_nodes": 1,
        "connections": [
            {"id": 7, "user": "ada", "name": "Ada", "role": "editor", "read_only": True,
             "client": "10.0.0.1:5000", "connected_at": 0, "connected_seconds": 75,
             "synced": False, "queued_frames": 2, "queued_bytes": 40, "closing": False},
        ],
    }  # fmt: skip
    detail = format_room(room).splitlines()
    assert detail[1] == "room a: active, 1 syncing"
    assert "document 2.0 KiB" in detail[2] and "open on 1 other node(s)" in detail[2]
    assert detail[-1].split()[:5] == ["7", "ada", "(Ada)", "editor", "(read-only)"]
    assert detail[-1].endswith("2 / 40 B  syncing")
    assert (size(0), size(1023), size(1536), duration(59), duration(75)) == (
        "0 B",
        "1023 B",
        "1.5 KiB",
        "59s",
        "1m15s",
    )
