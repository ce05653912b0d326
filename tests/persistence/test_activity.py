"""Activity rows (finished sessions) survive a restart, on SQLite and PostgreSQL,
and the activity API reports them: per-user counts and peak concurrency."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from pycrdt import Text

from ysync.clients import connect
from ysync.persistence.activity_sql import SessionRow
from ysync.presence.activity import daily_active_users, peak_concurrent_users, per_user

from support import aio
from support import authtokens as tk
from support.servers import YsyncProcess

ROOM = "team/activity"
OWNER = tk.token("boss", {"*": "owner"})


def get(server: YsyncProcess, path: str, token: str = OWNER) -> tuple[int, Any]:
    request = urllib.request.Request(server.http_url + path)
    request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def activity(server: YsyncProcess) -> dict[str, Any]:
    status, body = get(server, "/api/rooms/team%2Factivity/activity?since=0")
    assert status == 200, body
    return body  # type: ignore[no-any-return]


def test_sessions_survive_a_restart(store_url: str, tmp_path: Path) -> None:
    ada = tk.token("ada", {"team/*": "editor"})
    bob = tk.token("bob", {"team/*": "editor"})
    server = YsyncProcess(*tk.JWT_FLAGS, store=store_url, log_path=tmp_path / "log").start()
    try:

        async def scenario() -> None:
            async with (
                connect(server.ws_url, ROOM, params={"token": ada}) as a,
                connect(server.ws_url, ROOM, params={"token": bob}) as b,
            ):
                await a.synced()
                await b.synced()
                for word in ("one ", "two ", "three "):
                    a.doc.get("t", type=Text).insert(0, word)
                b.doc.get("t", type=Text).insert(0, "bob ")
                await aio.wait_until(lambda: "bob" in str(a.doc.get("t", type=Text)), 5)
            await aio.wait_until(lambda: len(activity(server)["sessions"]) == 2, 10)

        aio.run(scenario(), timeout=60)
        server.restart()
        body = activity(server)
        users = {u["userId"]: u for u in body["users"]}
        assert users["ada"]["updates"] >= 1 and users["ada"]["sessions"] == 1
        assert users["bob"]["updates"] >= 1
        assert body["peakConcurrentUsers"] == 2
        assert {s["userId"] for s in body["sessions"]} == {"ada", "bob"}
        authors = {a["userId"]: a["updates"] for a in body["authors"]}  # per update, durable
        assert authors["ada"] == users["ada"]["updates"] and authors["bob"] >= 1
        status, across = get(server, "/api/activity?since=0")
        assert status == 200 and across["rooms"][0]["room"] == ROOM
        assert across["dailyActiveUsers"][-1]["users"] == 2
        # Permissions and bad input.
        assert get(server, "/api/rooms/team%2Factivity/activity", ada)[0] == 403
        assert get(server, "/api/activity", ada)[0] == 403
        assert get(server, "/api/rooms/team%2Factivity/activity?since=x")[0] == 400
        assert get(server, "/api/rooms/team%2Factivity/activity?since=10&until=5")[0] == 400
    finally:
        server.stop()


def test_reports_from_rows() -> None:
    rows = [
        SessionRow("r", "ada", "n", 0.0, 10.0, 3, 30),
        SessionRow("r", "ada", "n", 5.0, 20.0, 1, 10),  # a second tab: still one user
        SessionRow("r", "bob", "n", 10.0, 30.0, 0, 0),  # joins as ada's first tab leaves
        SessionRow("r", None, "n", 100_000.0, 100_001.0, 0, 0),
    ]
    assert peak_concurrent_users(rows) == 2
    assert per_user(rows)[0] == {
        "userId": "ada",
        "sessions": 2,
        "updates": 4,
        "bytes": 40,
        "seconds": 25.0,
    }
    assert daily_active_users(rows) == [{"day": 0, "users": 2}, {"day": 86400, "users": 1}]
