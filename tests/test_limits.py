"""Abuse limits: each one hit over a real socket gives its close code, and the
other clients of the room are unaffected and converge."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pycrdt import Doc, Text
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from ysync.clients import Session, connect, room_url
from ysync.rooms import codec
from ysync.rooms.room import Room, RoomConfig, Source
from ysync.rooms.vocabulary import Refusal
from ysync.server.limits import (
    AddressThrottle,
    ConnectionRate,
    Limits,
    TokenBucket,
    address_key,
)

from support.aio import run, wait_until
from support.fakes import FakePeer, feed
from support.servers import YsyncProcess


async def raw(url: str, room: str, **kwargs: Any) -> ClientConnection:
    return await ws_connect(room_url(url, room), compression=None, proxy=None, **kwargs)


async def close_of(ws: ClientConnection, timeout: float = 10.0) -> tuple[int | None, str]:
    async with asyncio.timeout(timeout):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            pass
    return ws.close_code, ws.close_reason or ""


def text_update(content: str) -> bytes:
    doc = Doc()
    doc["t"] = text = Text()
    text += content
    return doc.get_update()


@asynccontextmanager
async def bystanders(url: str, room: str) -> AsyncIterator[tuple[Session, Session]]:
    """Two well-behaved clients of `room`, synced, with some shared text."""
    async with connect(url, room) as a, connect(url, room) as b:
        await a.synced()
        await b.synced()
        a.doc.get("t", type=Text).insert(0, "before ")
        await wait_until(lambda: "before" in str(b.doc.get("t", type=Text)))
        yield a, b


async def still_converge(a: Session, b: Session) -> None:
    """Both bystanders still connected, still editing, and end with the same document."""
    assert a.close_code is None and b.close_code is None
    a.doc.get("t", type=Text).insert(0, "after-a ")
    b.doc.get("t", type=Text).insert(0, "after-b ")
    ta, tb = a.doc.get("t", type=Text), b.doc.get("t", type=Text)
    await wait_until(lambda: "after-a" in str(tb) and "after-b" in str(ta))
    await wait_until(lambda: str(ta) == str(tb))


# -- the pieces, in-process ------------------------------------------------------------------


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=10, burst=5, now=0.0)
    assert all(bucket.take(1, 0.0) for _ in range(5))
    assert not bucket.take(1, 0.0)
    assert bucket.take(1, 0.1)  # 0.1 s at 10/s refills one
    assert not bucket.take(1, 0.1)
    assert bucket.take(5, 100.0) and not bucket.take(1, 100.0)  # never above the burst


def test_connection_rate_names_the_limit() -> None:
    limits = Limits(rate_messages=10, rate_messages_burst=3, rate_bytes=100, rate_bytes_burst=250)
    rate = ConnectionRate(limits, 0.0)
    assert [rate.exceeded(10, 0.0) for _ in range(3)] == [None, None, None]
    assert "messages/s" in _reason(rate.exceeded(10, 0.0))
    rate = ConnectionRate(limits, 0.0)
    assert rate.exceeded(200, 0.0) is None
    assert "bytes/s" in _reason(rate.exceeded(100, 0.0))
    assert ConnectionRate(Limits.off(), 0.0).exceeded(10**9, 0.0) is None


def test_address_throttle_bans_then_forgives() -> None:
    throttle = AddressThrottle(per_minute=3, ban_seconds=10)
    assert [throttle.admit("10.0.0.1", 0.0) for _ in range(3)] == [None, None, None]
    assert "ip_connections_per_minute" in _reason(throttle.admit("10.0.0.1", 0.0))
    assert "banned" in _reason(throttle.admit("10.0.0.1", 5.0))
    assert throttle.admit("10.0.0.2", 5.0) is None  # others are not affected
    assert throttle.admit("10.0.0.1", 10.5) is None  # the ban is over
    assert AddressThrottle(0, 10).admit("10.0.0.1") is None  # 0: off


def test_addresses_are_throttled_per_ip_and_ipv6_per_64() -> None:
    assert address_key("192.0.2.7") == "192.0.2.7"
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("unix-socket") == "unix-socket"


def test_address_table_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import ysync.server.limits as limits_module

    monkeypatch.setattr(limits_module, "_MAX_TRACKED_ADDRESSES", 100)
    throttle = AddressThrottle(per_minute=5, ban_seconds=60)
    for i in range(1000):
        throttle.admit(f"10.0.{i // 256}.{i % 256}", now=float(i) / 100)
    assert len(throttle._buckets) <= 100


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (None, True),  # not a browser
        ("https://app.example.com", True),
        ("HTTPS://APP.EXAMPLE.COM/", True),
        ("https://eu.trusted.test", True),
        ("https://a.b.trusted.test", True),
        ("https://trusted.test", False),
        ("https://eviltrusted.test", False),
        ("http://eu.trusted.test", False),  # scheme must match
        ("https://app.example.com.evil.test", False),
        ("null", False),
    ],
)
def test_origin_list(origin: str | None, allowed: bool) -> None:
    limits = Limits(allowed_origins="https://app.example.com, https://*.trusted.test")
    headers = {} if origin is None else {"origin": origin}
    assert (limits.origin_refusal(headers) is None) is allowed
    assert Limits().origin_refusal(headers) is None  # no list: any origin


def _reason(refusal: Refusal | None) -> str:
    assert refusal is not None and refusal.code == 4529
    return refusal.reason


class _CountingRoom(Room):
    measurements = 0

    @property
    def document_bytes(self) -> int:
        self.measurements += 1
        return Room.document_bytes.fget(self)  # type: ignore[attr-defined,no-any-return]


def test_document_size_is_tracked_without_encoding_per_edit() -> None:
    room = _CountingRoom("r", RoomConfig(max_document_bytes=64 * 1024))
    writer, reader = FakePeer(), FakePeer()
    room.join(writer)
    room.join(reader)
    client = Doc()
    client["t"] = text = Text()
    sent = 0
    updates: list[bytes] = []
    client.observe(lambda event: updates.append(event.update))
    for i in range(4000):  # typing: 4,000 one-character edits, each its own update
        text.insert(len(text), "abcdefgh"[i % 8])
        feed(room, writer, codec.encode_update(updates[-1]))
        sent += len(updates[-1])
    assert writer.closed is None
    # Deltas add up to far more than the document: the estimate crossed the
    # limit, yet the document was measured only a handful of times, not per edit.
    assert sent > room.config.max_document_bytes
    assert 1 <= room.measurements <= 10
    assert room.document_bytes < room.config.max_document_bytes
    # An edit that would really outgrow the limit is refused with 4413.
    text.insert(0, "x" * 70_000)
    feed(room, writer, codec.encode_update(updates[-1]))
    assert writer.closed is not None and writer.closed[0] == 4413
    assert "max_document_bytes" in writer.closed[1]
    assert "xxxx" not in str(room.doc.get("t", type=Text))


def test_update_from_another_node_is_never_refused_for_size() -> None:
    room = Room("r", RoomConfig(max_document_bytes=1000))
    room.apply_update(text_update("y" * 5000), Source.BUS)  # the other node accepted it
    assert len(str(room.doc.get("t", type=Text))) == 5000


# -- over real sockets -----------------------------------------------------------------------

LIMITED = (
    "--max-message-bytes",
    "100000",
    "--max-document-bytes",
    "150000",
    "--max-clients-per-room",
    "3",
    "--rate-messages",
    "50",
    "--rate-messages-burst",
    "100",
    "--rate-bytes",
    "100000",
    "--rate-bytes-burst",
    "400000",
    "--allowed-origins",
    "https://app.example.com,https://*.trusted.test",
)


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YsyncProcess]:
    log = tmp_path_factory.mktemp("limits") / "ysync.log"
    with YsyncProcess(*LIMITED, log_path=log) as process:
        yield process


def audit_actions(server: YsyncProcess) -> list[dict[str, Any]]:
    assert server.log_path is not None
    events = [json.loads(line) for line in server.log_path.read_text().splitlines()]
    return [event for event in events if event.get("audit") is True]


def test_message_over_max_message_bytes_gets_4413(limited: YsyncProcess) -> None:
    async def scenario() -> None:
        async with bystanders(limited.ws_url, "big-message") as (a, b):
            offender = await raw(limited.ws_url, "big-message", max_size=None)
            await offender.send(codec.encode_update(text_update("x" * 120_000)))
            code, reason = await close_of(offender)
            assert code == 4413 and "max_message_bytes" in reason
            await still_converge(a, b)
            assert "xxx" not in str(a.doc.get("t", type=Text))

    run(scenario())


def test_document_over_max_document_bytes_gets_4413(limited: YsyncProcess) -> None:
    async def scenario() -> None:
        async with bystanders(limited.ws_url, "big-doc") as (a, b):
            async with connect(limited.ws_url, "big-doc") as offender:
                await offender.synced()
                text = offender.doc.get("t", type=Text)
                for chunk in "pqr":  # 60 KB each: the third would pass 150 KB
                    text += chunk * 60_000
                await offender.closed()
                assert offender.close_code == 4413
                assert "max_document_bytes" in (offender.close_reason or "")
            await still_converge(a, b)
            content = str(b.doc.get("t", type=Text))
            assert "ppp" in content and "qqq" in content and "rrr" not in content

    run(scenario())


def test_client_over_max_clients_per_room_gets_4503(limited: YsyncProcess) -> None:
    async def scenario() -> None:
        async with bystanders(limited.ws_url, "crowded") as (a, b):
            async with connect(limited.ws_url, "crowded") as third:
                await third.synced()
                fourth = await raw(limited.ws_url, "crowded")
                code, reason = await close_of(fourth)
                assert code == 4503 and "max_clients_per_room" in reason
                await still_converge(a, b)
            # Once someone left, there is room again.
            async with connect(limited.ws_url, "crowded") as later:
                await later.synced()

    run(scenario())


@pytest.mark.parametrize("kind", ["messages", "bytes"])
def test_flooding_client_gets_4529(limited: YsyncProcess, kind: str) -> None:
    room = f"flood-{kind}"

    async def scenario() -> None:
        async with bystanders(limited.ws_url, room) as (a, b):
            offender = await raw(limited.ws_url, room)
            if kind == "messages":  # 300 tiny messages at once; burst is 100
                for clock in range(1, 301):
                    entry = codec.AwarenessEntry(99, clock, f'{{"c":{clock}}}')
                    await offender.send(codec.encode_awareness([entry]))
            else:  # 6 x 90 KB presence states at once; burst is 400 KB
                with contextlib.suppress(ConnectionClosed):
                    for clock in range(1, 7):
                        state = json.dumps({"pad": "x" * 90_000})
                        entry = codec.AwarenessEntry(98, clock, state)
                        await offender.send(codec.encode_awareness([entry]))
            code, reason = await close_of(offender)
            assert code == 4529 and f"{kind}/s" in reason
            await still_converge(a, b)

    run(scenario())


@pytest.mark.parametrize(
    ("origin", "code"),
    [
        ("https://evil.test", 4403),
        ("https://app.example.com", None),
        ("https://x.trusted.test", None),
    ],
)
def test_origin_outside_the_list_gets_4403(
    limited: YsyncProcess, origin: str, code: int | None
) -> None:
    async def scenario() -> None:
        async with bystanders(limited.ws_url, "origins") as (a, b):
            ws = await raw(limited.ws_url, "origins", origin=origin)  # type: ignore[arg-type]
            if code is None:
                assert isinstance(codec.decode(await ws.recv()), codec.SyncStep1)  # type: ignore[arg-type]
                await ws.close()
            else:
                got, reason = await close_of(ws)
                assert got == code and "allowed_origins" in reason
            await still_converge(a, b)

    run(scenario())


def test_limit_hits_are_in_the_audit_log(limited: YsyncProcess) -> None:
    async def scenario() -> None:
        offender = await raw(limited.ws_url, "audited", max_size=None)
        await offender.send(codec.encode_update(text_update("z" * 120_000)))
        assert (await close_of(offender))[0] == 4413

    run(scenario())
    hits = [e for e in audit_actions(limited) if e["action"] == "limit_exceeded"]
    audited = [e for e in hits if e["room"] == "audited"]
    assert audited and audited[0]["code"] == 4413
    assert audited[0]["client"].startswith("127.0.0.1:")


def test_rooms_over_max_rooms_get_4503(tmp_path: Any) -> None:
    flags = ("--max-rooms", "2", "--unload-grace", "0")
    with YsyncProcess(*flags, log_path=tmp_path / "log") as server:

        def loaded() -> int:
            with urllib.request.urlopen(server.http_url + "/api/rooms", timeout=5) as response:
                return len(json.loads(response.read())["rooms"])

        async def scenario() -> None:
            async with bystanders(server.ws_url, "r1") as (a, b):
                async with connect(server.ws_url, "r2") as other:
                    await other.synced()
                    refused = await raw(server.ws_url, "r3")
                    code, reason = await close_of(refused)
                    assert code == 4503 and "max_rooms" in reason
                    async with connect(server.ws_url, "r1") as joiner:  # an open room: fine
                        await joiner.synced()
                    await still_converge(a, b)
                await wait_until(lambda: loaded() == 1)  # r2 unloaded
                async with connect(server.ws_url, "r3") as now_fine:
                    await now_fine.synced()

        run(scenario())


def test_connection_storm_from_one_address_is_banned(tmp_path: Any) -> None:
    flags = ("--ip-connections-per-minute", "20", "--ip-ban-seconds", "2")
    with YsyncProcess(*flags, log_path=tmp_path / "log") as server:

        async def scenario() -> None:
            async with bystanders(server.ws_url, "storm") as (a, b):
                codes: list[int | None] = []
                for _ in range(30):
                    ws = await raw(server.ws_url, "storm")
                    try:
                        await asyncio.wait_for(ws.recv(), 5)  # admitted: our SyncStep1
                        await ws.close()
                        codes.append(None)
                    except ConnectionClosed:
                        codes.append(ws.close_code)
                        break
                assert codes[-1] == 4529, codes
                banned = await raw(server.ws_url, "storm")
                code, reason = await close_of(banned)
                assert code == 4529 and "banned" in reason
                # Connections already open are not touched by the ban.
                await still_converge(a, b)
                await asyncio.sleep(2.1)  # the ban's length: nothing to wait on
                async with connect(server.ws_url, "storm") as after_ban:
                    await after_ban.synced()

        run(scenario())
