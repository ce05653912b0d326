"""Webhooks against real nodes and a real local HTTP receiver: correctly signed events,
each exactly once with 3 nodes (real redis-server, one SQLite store); a receiver answering
500 then 200 gets the event again; a hanging receiver does not hold edits up."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from pycrdt import Map
from standardwebhooks.webhooks import Webhook

from ysync.clients.session import connect
from ysync.server.webhooks import new_secret, static_id

from support.aio import run, wait_until
from support.servers import RedisProcess, YsyncProcess

SECRET = new_secret()
THREAD = {
    "body": {"version": 1, "content": [{"type": "paragraph", "children": [{"text": "hi"}]}]},
    "anchor": {"kind": "none"},
}


class Receiver:
    """A local HTTP server that records every POST; `mode`: ok, fail-first, hang."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.received: list[tuple[dict[str, str], bytes, int]] = []
        self.release = threading.Event()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver.lock:
                    seen = sum(
                        1
                        for h, _, _ in receiver.received
                        if h["webhook-id"] == headers["webhook-id"]
                    )
                    status = 500 if receiver.mode == "fail-first" and not seen else 200
                    receiver.received.append((headers, body, status))
                if receiver.mode == "hang":
                    receiver.release.wait(20)  # bounded: the test releases it sooner
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def events(self, status: int | None = 200) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(b) for _, b, s in self.received if status is None or s == status]

    def types(self) -> set[str]:
        return {event["type"] for event in self.events()}


def flags(receiver: Receiver, *extra: str) -> tuple[str, ...]:
    return ("--webhook", receiver.url, "--webhook-secret", SECRET, *extra)


async def all_delivered(
    api: httpx.AsyncClient, endpoint: str, count: int = 1
) -> list[dict[str, Any]]:
    for _ in range(200):
        found = (await api.get(f"/api/webhooks/{endpoint}/deliveries")).json()["deliveries"]
        if len(found) >= count and all(d["state"] == "delivered" for d in found):
            return list(found)
        await asyncio.sleep(0.1)
    raise AssertionError(f"not all delivered: {found}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


def test_three_nodes_deliver_each_signed_event_exactly_once(
    tmp_path: Path, receiver: Receiver
) -> None:
    with RedisProcess() as redis, ExitStack() as stack:
        store = f"sqlite:///{tmp_path}/hooks.db"
        nodes = [
            stack.enter_context(
                YsyncProcess(
                    *flags(receiver, "--redis-url", redis.url, "--webhook-debounce", "0.3"),
                    store=store,
                )
            )
            for _ in range(3)
        ]

        async def main() -> None:
            apis = [httpx.AsyncClient(base_url=node.http_url, timeout=10) for node in nodes]
            try:
                op = {"ops": [{"op": "set", "root": "m", "key": "k", "value": 1}]}
                assert (await apis[0].post("/api/rooms/hooked/doc", json=op)).status_code == 200
                assert (
                    await apis[1].post("/api/rooms/hooked/versions", json={"name": "v1"})
                ).status_code == 201
                assert (
                    await apis[2].post("/api/rooms/hooked/threads", json=THREAD)
                ).status_code == 201
                wanted = {
                    "room.created",
                    "room.updated",
                    "version.created",
                    "thread.created",
                }
                await wait_until(lambda: receiver.types() >= wanted, timeout=30)
                delivered = await all_delivered(apis[0], static_id(receiver.url), len(wanted))
                assert all(d["attempts"] == 1 for d in delivered)
            finally:
                for api in apis:
                    await api.aclose()

        run(main(), timeout=90)
        with receiver.lock:
            received = list(receiver.received)
        ids = Counter(headers["webhook-id"] for headers, _, _ in received)
        assert set(ids.values()) == {1}, ids
        for headers, body, _ in received:
            event = Webhook(SECRET).verify(body, headers)
            assert event["data"]["room"] == "hooked"
        assert [e["type"] for e in receiver.events()].count("room.created") == 1


def test_a_500_is_retried_until_a_200_and_the_log_says_so() -> None:
    with (
        Receiver("fail-first") as receiver,
        YsyncProcess(*flags(receiver)) as server,
        httpx.Client(base_url=server.http_url, timeout=10) as api,
    ):
        assert api.post("/api/rooms/r/versions", json={"name": "v"}).status_code == 201

        async def main() -> list[dict[str, Any]]:
            async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as aapi:
                return await all_delivered(aapi, static_id(receiver.url), 1)

        delivered = run(main())
        assert all(d["attempts"] == 2 and d["last_status"] == 200 for d in delivered)
        with receiver.lock:
            statuses = [(h["webhook-id"], s) for h, _, s in receiver.received]
        for message_id in {m for m, _ in statuses}:
            assert [s for m, s in statuses if m == message_id] == [500, 200]

        made = api.post(
            "/api/webhooks", json={"url": receiver.url + "/2", "events": ["room.deleted"]}
        )
        assert made.status_code == 201 and made.json()["secret"].startswith("whsec_")
        listed = api.get("/api/webhooks").json()["webhooks"]
        assert {w["id"] for w in listed} == {static_id(receiver.url), made.json()["id"]}
        assert all("secret" not in w for w in listed)
        assert api.post("/api/webhooks", json={"url": "ftp://x"}).json()["code"] == "invalid_url"
        assert (
            api.post("/api/webhooks", json={"url": receiver.url, "events": ["x"]}).status_code
            == 400
        )
        assert api.delete(f"/api/webhooks/{made.json()['id']}").status_code == 200
        assert api.delete("/api/webhooks/wh_nothing").status_code == 404


def test_a_hanging_receiver_does_not_hold_up_edits() -> None:
    with (
        Receiver("hang") as receiver,
        YsyncProcess(
            *flags(receiver, "--webhook-debounce", "0.1", "--webhook-timeout", "5")
        ) as server,
    ):

        async def main() -> None:
            async with (
                connect(server.ws_url, "busy") as session,
                httpx.AsyncClient(base_url=server.http_url, timeout=10) as api,
            ):
                await session.synced()
                op = {"ops": [{"op": "set", "root": "m", "key": "first", "value": 0}]}
                assert (await api.post("/api/rooms/busy/doc", json=op)).status_code == 200
                await wait_until(lambda: receiver.received, timeout=10)  # a delivery now hangs
                for i in range(20):
                    op = {"ops": [{"op": "set", "root": "m", "key": f"k{i}", "value": i}]}
                    assert (await api.post("/api/rooms/busy/doc", json=op)).status_code == 200
                mapping = session.doc.get("m", type=Map)
                await wait_until(lambda: len(mapping) == 21, timeout=10)
                assert not receiver.release.is_set()  # all of it while the receiver hung

        run(main())


def test_events_several_nodes_report_share_one_message_id() -> None:
    from ysync.presence.events import Event
    from ysync.server.webhooks import _message_id

    created = [_message_id(Event("room.created", "r", {})) for _ in range(2)]
    assert created[0] == created[1] != _message_id(Event("room.created", "other", {}))
    same = {_message_id(Event("room.updated", "r", {"window": 7, "users": [u]})) for u in "ab"}
    assert len(same) == 1
    assert same != {_message_id(Event("room.updated", "r", {"window": 8}))}
    versions = {_message_id(Event("version.created", "r", {"id": "v"})) for _ in range(2)}
    assert len(versions) == 2  # each its own event
