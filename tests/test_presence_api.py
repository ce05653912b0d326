"""The presence API against real nodes: one entry per verified user, cluster-wide
through Redis for a room the answering node does not hold, and a SIGKILLed
node's users gone within --node-ttl + 1 s."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ysync.clients import connect

from support import aio
from support import authtokens as tk
from support.jsclient import JSClient
from support.servers import RedisProcess, YsyncProcess

NODE_TTL = 3.0


def get(server: YsyncProcess, path: str, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(server.http_url + path)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def users_in(server: YsyncProcess, room: str, token: str | None = None) -> list[dict[str, Any]]:
    status, body = get(server, f"/api/rooms/{quote(room, safe='')}/presence", token)
    assert status == 200, body
    return body["users"]  # type: ignore[no-any-return]


def test_one_entry_per_user_with_verified_and_client_fields(tmp_path: Path) -> None:
    room = "team/board"
    ada = tk.token("ada", {"team/*": "editor"}, name="Ada")
    bob = tk.token("bob", {"team/*": "viewer"}, name="Bob")
    admin = tk.token("root", {"*": "owner"})
    with YsyncProcess(*tk.JWT_FLAGS, log_path=tmp_path / "log") as server:

        async def scenario() -> None:
            async with (
                connect(server.ws_url, room, params={"token": ada}) as tab1,
                connect(server.ws_url, room, params={"token": ada}) as tab2,
                connect(server.ws_url, room, params={"token": bob}) as viewer,
            ):
                for session, cursor in ((tab1, 1), (tab2, 2), (viewer, 9)):
                    await session.synced()
                    session.awareness.set_local_state({"cursor": cursor, "name": "forged"})
                await aio.wait_until(lambda: len(users_in(server, room, bob)) == 2, 5)
                await aio.wait_until(
                    lambda: (
                        users_in(server, room, bob)[-1]["connections"] == 2
                        or users_in(server, room, bob)[0]["connections"] == 2
                    ),
                    5,
                )
                by_id = {u["userId"]: u for u in users_in(server, room, bob)}
                assert by_id["ada"]["name"] == "Ada" and by_id["ada"]["role"] == "editor"
                assert by_id["ada"]["connections"] == 2
                assert by_id["ada"]["state"]["name"] == "forged"  # the client's, kept apart
                assert by_id["ada"]["state"]["cursor"] in (1, 2)
                assert by_id["bob"] == {
                    **by_id["bob"],
                    "name": "Bob",
                    "role": "viewer",
                    "connections": 1,
                    "idle": False,
                }
                assert by_id["ada"]["since"] <= by_id["ada"]["lastActive"] <= time.time()
                # Batch, and a user's rooms (node-wide owners only).
                status, body = get(server, f"/api/presence?room={room}&room=empty/room", bob)
                assert status == 403  # bob has no grant on empty/room
                status, body = get(server, f"/api/presence?room={room}&room=empty/room", admin)
                assert status == 200 and body["rooms"]["empty/room"] == []
                assert len(body["rooms"][room]) == 2
                assert get(server, "/api/users/ada/presence", ada)[0] == 403
                assert get(server, "/api/users/ada/presence", admin) == (
                    200,
                    {"userId": "ada", "rooms": [room]},
                )
            await aio.wait_until(lambda: users_in(server, room, bob) == [], 5)

        aio.run(scenario(), timeout=60)
        # Bad input: clear JSON errors.
        status, body = get(server, "/api/presence", admin)
        assert status == 400 and "room" in body["error"]
        many = "&".join(f"room=r{i}" for i in range(101))
        status, body = get(server, f"/api/presence?{many}", admin)
        assert status == 400 and body["code"] == "too_many_rooms"
        assert get(server, "/api/rooms/other%2Froom/presence", ada)[0] == 403


def test_presence_is_cluster_wide_and_a_killed_nodes_users_go(tmp_path: Path) -> None:
    room = "cluster/presence"
    store = f"sqlite:///{tmp_path}/shared.db"
    flags = ("--node-ttl", str(NODE_TTL))
    with RedisProcess() as redis:
        node_a = YsyncProcess(
            "--redis-url", redis.url, *flags, store=store, log_path=tmp_path / "a.log"
        ).start()
        try:
            with YsyncProcess(
                "--redis-url", redis.url, *flags, store=store, log_path=tmp_path / "b.log"
            ) as node_b:

                async def scenario() -> tuple[float, float]:
                    async with (
                        connect(node_a.ws_url, room) as session,
                        connect(node_a.ws_url, "cluster/held") as on_a,
                        connect(node_b.ws_url, "cluster/held") as on_b,
                    ):
                        for each in (session, on_a, on_b):
                            await each.synced()
                        session.awareness.set_local_state({"cursor": 7})
                        on_a.awareness.set_local_state({"on": "a"})
                        on_b.awareness.set_local_state({"on": "b"})
                        # Node B does not hold `room`: it answers from Redis.
                        await aio.wait_until(lambda: len(users_in(node_b, room)) == 1, 5)
                        (user,) = users_in(node_b, room)
                        assert user["anonymous"] is True and user["state"] == {"cursor": 7}
                        assert get(node_b, f"/api/users/{user['userId']}/presence")[1] == {
                            "userId": user["userId"],
                            "rooms": [room],
                        }
                        # B holds "cluster/held": A's user reaches it over the bus.
                        await aio.wait_until(lambda: len(users_in(node_b, "cluster/held")) == 2, 5)
                        node_a.kill()
                        killed = time.monotonic()
                        await aio.wait_until(lambda: users_in(node_b, room) == [], NODE_TTL + 1)
                        from_redis = time.monotonic() - killed
                        await aio.wait_until(
                            lambda: (
                                [u["state"] for u in users_in(node_b, "cluster/held")]
                                == [{"on": "b"}]
                            ),
                            NODE_TTL + 1,
                        )
                        return from_redis, time.monotonic() - killed

                from_redis, held = aio.run(scenario(), timeout=60)
                print(
                    f"a SIGKILLed node's user left node B's answer after {from_redis:.2f} s "
                    f"(room B does not hold), {held:.2f} s (room B holds)"
                )
        finally:
            node_a.stop()


def post(
    server: YsyncProcess, path: str, body: Any, token: str | None = None, method: str = "POST"
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(server.http_url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_an_agent_without_a_websocket_appears_in_awareness_and_presence(
    js_clients_dir: Path, tmp_path: Path
) -> None:
    room = "team/agents"
    bot = tk.token("helper-bot", {"team/*": "editor"}, name="Helper")
    viewer = tk.token("vi", {"team/*": "viewer"})
    path = f"/api/rooms/{quote(room, safe='')}/presence"
    with YsyncProcess(*tk.JWT_FLAGS, log_path=tmp_path / "log") as server:
        # Bad input first: clear errors, nothing created.
        assert post(server, path, {"ttl": 0}, bot)[1]["code"] == "invalid_ttl"
        assert post(server, path, {"ttl": 99999}, bot)[0] == 400
        assert post(server, path, {"state": [1]}, bot)[1]["code"] == "invalid_state"
        assert post(server, path, {"state": {}}, viewer)[0] == 403
        assert post(server, path, {"state": {"x": "y" * 9000}}, bot)[0] == 413
        assert users_in(server, room, viewer) == []

        async def scenario() -> None:
            async with JSClient.start(js_clients_dir) as js:
                await js.call("connect", url=server.ws_url, room=room, params={"token": viewer})
                await js.call("wait_synced", timeout_ms=10_000)
                status, created = post(server, path, {"state": {"typing": True}, "ttl": 60}, bot)
                assert status == 201, created
                await js.call(
                    "wait_awareness",
                    client_id=created["clientId"],
                    equals={
                        "typing": True,
                        "ysync": {"userId": "helper-bot", "name": "Helper", "role": "editor"},
                    },
                )
                (user,) = [u for u in users_in(server, room, viewer) if u["userId"] == "helper-bot"]
                assert user["state"] == {"typing": True}
                gone = f"{path}/{created['presenceId']}"
                assert post(server, gone, None, viewer, "DELETE")[0] == 403
                assert post(server, gone, None, bot, "DELETE") == (204, None)
                assert post(server, gone, None, bot, "DELETE")[0] == 404
                await js.call("wait_awareness", client_id=created["clientId"], present=False)

        aio.run(scenario(), timeout=60)
