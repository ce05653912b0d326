"""`GET /api/rooms/{room}/events` over real sockets: SSE framing, resume, permissions, the SDK."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ysync.clients.http import AsyncClient, FeedEvent, HTTPError
from ysync.presence.events import Event
from ysync.server import create_app
from ysync.server.settings import Settings

from support import authtokens as tk
from support.aio import run
from support.threaded_server import ThreadedServer


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    settings = Settings(
        store="memory://",
        demo=False,
        auth="jwt",
        jwt_secret=tk.SECRET,
        jwt_audience=tk.AUDIENCE,
        jwt_issuer=tk.ISSUER,
        event_queue=50,
    )
    with ThreadedServer(create_app(settings)) as running:
        yield running


def publish(server: ThreadedServer, *events: Event) -> None:
    def on_loop() -> None:
        for event in events:
            server.app.state.ysync.events.publish(event)

    server.call(on_loop)


def viewer(room: str = "*") -> str:
    return tk.token(sub="vera", rooms={room: "viewer"})


async def follow(server: ThreadedServer, room: str, count: int, **kwargs: Any) -> list[FeedEvent]:
    got: list[FeedEvent] = []
    async with AsyncClient(server.http_url, token=viewer()) as api:
        async with asyncio.timeout(10):
            async for event in api.events(room, **kwargs):
                got.append(event)
                if len(got) == count:
                    return got
    return got


def test_a_subscriber_gets_the_rooms_events_as_sse(server: ThreadedServer) -> None:
    async def scenario() -> list[FeedEvent]:
        reader = asyncio.create_task(follow(server, "team/board", 2))
        await wait_subscribed(server, "team/board")
        publish(
            server,
            Event("comment.created", "team/board", {"text": "hi"}),
            Event("other", "elsewhere"),
            Event("lock.acquired", "team/board", {"element": "e1"}),
        )
        return await reader

    first, second = run(scenario())
    assert (first.type, dict(first.data), first.room) == (
        "comment.created",
        {"text": "hi"},
        "team/board",
    )
    assert second.type == "lock.acquired" and second.id != first.id


def test_raw_sse_framing_names_the_event_and_its_id(server: ThreadedServer) -> None:
    async def scenario() -> str:
        async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
            headers = {"Authorization": f"Bearer {viewer()}"}
            async with http.stream("GET", "/api/rooms/raw/events", headers=headers) as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                await wait_subscribed(server, "raw")
                publish(server, Event("presence.joined", "raw", {"userId": "ada"}))
                text = ""
                async for chunk in response.aiter_text():
                    text += chunk.replace("\r\n", "\n")
                    if "\n\n" in text and "presence.joined" in text:
                        return text
        return ""

    frame = run(scenario())
    assert "event: presence.joined" in frame
    assert "id: " in frame and '"userId":"ada"' in frame


def test_reconnecting_with_last_event_id_resumes_where_it_left_off(server: ThreadedServer) -> None:
    async def scenario() -> list[FeedEvent]:
        reader = asyncio.create_task(follow(server, "resume", 2))
        await wait_subscribed(server, "resume")
        publish(server, Event("n", "resume", {"n": 1}), Event("n", "resume", {"n": 2}))
        first = await reader
        await wait_unsubscribed(server, "resume")
        publish(server, Event("n", "resume", {"n": 3}))  # missed while away
        return await follow(server, "resume", 1, last_event_id=first[0].id)

    (missed,) = run(scenario())
    # Resuming after the first: the second and then the third (only one asked for).
    assert missed.data == {"n": 2}


def test_the_feed_needs_a_token_that_reads_the_room(server: ThreadedServer) -> None:
    async def scenario() -> list[int]:
        statuses = []
        for token in (None, tk.token(sub="x", rooms={"other": "owner"})):
            async with AsyncClient(server.http_url, token=token) as api:
                try:
                    async for _ in api.events("private"):
                        break
                except HTTPError as exc:
                    statuses.append(exc.status)
        return statuses

    assert run(scenario()) == [401, 403]


def test_a_subscriber_that_never_reads_is_cut_off_and_others_carry_on(
    server: ThreadedServer,
) -> None:
    async def scenario() -> tuple[int, list[FeedEvent]]:
        # Opened and never read: its queue (event_queue=50) fills and it is cut off.
        stalled = httpx.AsyncClient(base_url=server.http_url, timeout=10)
        request = stalled.build_request(
            "GET", "/api/rooms/flood/events", headers={"Authorization": f"Bearer {viewer()}"}
        )
        response = await stalled.send(request, stream=True)
        await wait_subscribed(server, "flood")
        before = server.call(lambda: server.app.state.ysync.events.cut_off)
        # Big events, so the socket buffers fill and the server's queue too.
        for batch in range(20):
            publish(
                server,
                *(Event("big", "flood", {"pad": "x" * 20_000, "n": batch}) for _ in range(20)),
            )
            await asyncio.sleep(0.01)
        cut = server.call(lambda: server.app.state.ysync.events.cut_off) - before
        await response.aclose()
        await stalled.aclose()
        reader = asyncio.create_task(follow(server, "flood", 1))
        await wait_subscribed(server, "flood")
        publish(server, Event("after", "flood"))
        return cut, await reader

    cut, after = run(scenario())
    assert cut == 1
    assert after[0].type == "after"


async def wait_subscribed(server: ThreadedServer, room: str, count: int = 1) -> None:
    async with asyncio.timeout(5):
        while server.call(lambda: server.app.state.ysync.events.subscribers(room)) < count:
            await asyncio.sleep(0.01)


async def wait_unsubscribed(server: ThreadedServer, room: str) -> None:
    async with asyncio.timeout(5):
        while server.call(lambda: server.app.state.ysync.events.subscribers(room)) > 0:
            await asyncio.sleep(0.01)
