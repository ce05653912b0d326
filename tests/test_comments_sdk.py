"""The SDK's comment methods and `ysync comments ROOM [--follow]` against a real server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

from ysync.clients.http import AsyncClient, Client, FeedEvent

from support.aio import run
from support.servers import YsyncProcess


def test_the_sdk_creates_replies_reacts_resolves_and_follows(server: YsyncProcess) -> None:
    room = "sdk/comments"
    with Client(server.http_url) as api:
        thread = api.create_thread(room, "Is this right?\nSecond line", metadata={"x": 1})
        reply = api.reply(room, thread["id"], "Yes")
        assert api.react(room, thread["id"], reply["id"], "👍")["reactions"] == {
            "👍": ["anonymous"]
        }
        assert api.unreact(room, thread["id"], reply["id"], "👍")["reactions"] == {}
        assert api.resolve(room, thread["id"])["resolved"]
        assert api.edit_comment(room, thread["id"], reply["id"], "Yes!")["text"] == "Yes!"
        page = api.threads(room, resolved=True, metadata={"x": 1})
        assert [c["text"] for c in page["threads"][0]["comments"]] == [
            "Is this right?\nSecond line",
            "Yes!",
        ]
        assert api.threads(room, resolved=False)["threads"] == []
        assert api.follow_thread(room, thread["id"], "muted")["state"] == "muted"
        api.delete_comment(room, thread["id"], reply["id"])
        assert api.thread(room, thread["id"], resolve_anchors=True)["resolvedAnchor"] == {
            "orphaned": False
        }

    async def follow() -> FeedEvent:
        async with AsyncClient(server.ws_url) as api:

            async def first() -> FeedEvent:
                async for event in api.comment_events(room):
                    return event
                raise AssertionError("the feed ended")

            reader = asyncio.create_task(first())
            # The subscription is open once the server has counted it; poke until then.
            for _ in range(100):
                await api.reply(room, thread["id"], "live")
                done, _ = await asyncio.wait({reader}, timeout=0.1)
                if done:
                    return reader.result()
            raise AssertionError("no comment event arrived")

    event = run(follow())
    assert event.type == "comment.created" and event.data["comment"]["text"] == "live"


def test_the_cli_prints_threads_then_follows(server: YsyncProcess) -> None:
    room = "cli/comments"
    with Client(server.http_url) as api:
        thread = api.create_thread(room, "from the SDK")
        command = [sys.executable, "-m", "ysync", "comments", room, "--url", server.http_url]
        shown = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True)
        assert f"{thread['id']} [open] none by anonymous" in shown.stdout
        assert "  anonymous: from the SDK" in shown.stdout
        follower = subprocess.Popen([*command, "--follow"], stdout=subprocess.PIPE, text=True)
        # Reply every 0.1 s (at most 100 times) until the follower, once subscribed, prints one:
        # a reply made before it subscribed is never printed, so one reply could block readline.
        printed = threading.Event()

        def keep_replying() -> None:
            with Client(server.http_url) as poster:
                for _ in range(100):
                    if printed.wait(0.1):
                        return
                    poster.reply(room, thread["id"], "and live")

        poster = threading.Thread(target=keep_replying, daemon=True)
        try:
            assert follower.stdout is not None
            assert "from the SDK" in follower.stdout.readline() + follower.stdout.readline()
            poster.start()
            line = follower.stdout.readline()
            printed.set()
            assert line.strip() == f"comment.created {thread['id']} anonymous: and live"
        finally:
            follower.terminate()
            follower.wait(10)
            printed.set()
            if follower.stdout is not None:
                follower.stdout.close()
