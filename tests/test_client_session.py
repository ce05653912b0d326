"""The Python SDK session over real sockets: statuses, reconnects, offline edits,
tokens, close codes, read-only sessions, clean close.

Fault scenarios run against a real `ysync serve` process (restarts keep the port
and, with SQLite in tmp_path, the document) or an embedded app whose hooks
refuse what each test needs.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Text

from ysync.clients import (
    AuthenticationError,
    Backoff,
    ConnectError,
    ConnectionLostError,
    ForbiddenError,
    MalformedMessageError,
    ReadOnlyError,
    RefusedError,
    SessionClosedError,
    Status,
    StatusEvent,
    TooLargeError,
    connect,
)
from ysync.rooms.hooks import ConnectionRequest, Hooks, Identity, Refused
from ysync.rooms.vocabulary import Refusal
from ysync.server import create_app
from ysync.server.settings import Settings

from support import authtokens as tk
from support.aio import run
from support.servers import YsyncProcess, free_port
from support.threaded_server import ThreadedServer

FAST = Backoff(initial=0.05, max_delay=0.5)  # quick retries keep the tests short


def text(session: Any, name: str = "t") -> Text:
    return session.doc.get(name, type=Text)


# -- an embedded server whose authenticate hook the tests control ------------------------


class TokenHooks(Hooks):
    """Tokens are "<kind>-<n>": writer-*, reader-*, expired-*, refuse-<code>-*,
    flaky-<code>-* (refused with <code> the first time only). The hook records
    every token it saw."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.expired: set[str] = set()
        self._flaked: set[str] = set()

    async def authenticate(self, request: ConnectionRequest) -> Identity:
        token = request.query.get("token")
        if token is None:
            raise Refused(4401, "token missing")
        self.seen.append(token)
        kind, _, rest = token.partition("-")
        if kind == "expired" or token in self.expired:
            raise Refused(4401, "token expired")
        if kind == "refuse":
            raise Refused(int(rest.split("-")[0]), f"refused {token}")
        if kind == "flaky" and token not in self._flaked:
            self._flaked.add(token)
            raise Refused(int(rest.split("-")[0]), "busy, retry later")
        return Identity(user_id=token, read_only=kind == "reader")


@pytest.fixture
def hooked() -> Iterator[tuple[ThreadedServer, TokenHooks, Any]]:
    hooks = TokenHooks()
    app = create_app(Settings(store="memory://", unload_grace=0.0), hooks)
    with ThreadedServer(app) as server:
        yield server, hooks, app


def close_connections_of(app: Any, user_id: str, code: int, reason: str) -> int:
    """Server side: close every open connection authenticated as `user_id` (runs on
    the server's loop). Returns how many were closed."""
    closed = 0
    for room in app.state.ysync.registry.rooms.values():
        for peer in list(room.peers):
            if peer.identity.user_id == user_id:
                peer.close(Refusal(code, reason))
                closed += 1
    return closed


# -- statuses, presence, clean close ---------------------------------------------------------


def test_status_events_presence_and_clean_close(server: YsyncProcess) -> None:
    async def scenario() -> None:
        events: list[StatusEvent] = []
        watcher = await connect(server.ws_url, "sdk/presence")
        await watcher.synced()
        try:
            async with connect(server.ws_url, "sdk/presence", on_status=events.append) as bot:
                assert bot.status is Status.CONNECTING
                await bot.synced()
                assert bot.status is Status.SYNCED and bot.is_synced
                bot.awareness.set_local_state({"user": {"name": "bot"}})
                await watcher.awareness.wait_for(
                    lambda s: s.get(bot.doc.client_id, {}).get("user") == {"name": "bot"}, 5
                )
                # The server stamped who the bot really is (auth off: anonymous).
                assert watcher.awareness.states[bot.doc.client_id]["ysync"]["anonymous"] is True
                assert bot.doc.client_id in bot.awareness.states  # our own state too
                assert watcher.doc.client_id not in bot.awareness.states  # never set
            # A clean close sent the removal: gone at once, not after the 30 s timeout.
            await watcher.awareness.wait_for(lambda s: bot.doc.client_id not in s, 2)
        finally:
            await watcher.close()
        assert [e.status for e in events] == [
            Status.CONNECTING,
            Status.CONNECTED,
            Status.SYNCED,
            Status.CLOSED,
        ]
        assert events[-1].error is None
        assert bot.error is None and bot.close_code == 1000
        with pytest.raises(SessionClosedError):
            await bot.synced(1)
        with pytest.raises(SessionClosedError), bot.edit():
            pass

    run(scenario())


def test_awaitable_connect_edit_api_and_flush(server: YsyncProcess) -> None:
    async def scenario() -> None:
        a = await connect(server.ws_url, "sdk/flush")
        try:
            await a.synced()
            with a.edit():
                text(a).insert(0, "one ")
                text(a).insert(4, "two")
            await a.flush()  # the server has applied it: a late joiner sees it
            async with connect(server.ws_url, "sdk/flush") as late:
                await late.synced()
                assert str(text(late)) == "one two"
        finally:
            await a.close()
        await a.close()  # idempotent

    run(scenario())


# -- reconnects and offline edits ---------------------------------------------------------


@pytest.mark.slow
def test_offline_edits_survive_a_server_restart(tmp_path: Path) -> None:
    """Both clients edit while the server is down; after it restarts (same port,
    same SQLite file) they reconnect and converge, and nothing is lost."""
    store = f"sqlite:///{tmp_path / 'ysync.db'}"
    with YsyncProcess(store=store, log_path=tmp_path / "ysync.log") as server:

        async def scenario() -> None:
            a_events: list[StatusEvent] = []
            async with (
                connect(server.ws_url, "sdk/restart", backoff=FAST, on_status=a_events.append) as a,
                connect(server.ws_url, "sdk/restart", backoff=FAST) as b,
            ):
                await a.synced()
                await b.synced()
                text(a).insert(0, "[before]")
                await a.flush()
                await b.wait_until(lambda s: "[before]" in str(text(s)), 5)

                await asyncio.to_thread(server.stop)
                await a.wait_until(lambda s: not s.is_synced, 5)
                await b.wait_until(lambda s: not s.is_synced, 5)
                # Offline edits: kept in the local documents.
                text(a).insert(len(text(a)), "[offline a]")
                text(b).insert(0, "[offline b]")
                a.doc.get("t2", type=Text).insert(0, "new root while offline")
                assert a.status in (Status.CONNECTING, Status.DISCONNECTED)

                await asyncio.to_thread(server.start)
                await a.wait_until(lambda s: s.connects >= 2 and s.is_synced, 20)
                await b.wait_until(lambda s: s.connects >= 2 and s.is_synced, 20)
                expected = "[offline b][before][offline a]"
                await a.wait_until(lambda s: str(text(s)) == expected, 10)
                await b.wait_until(lambda s: str(text(s)) == expected, 10)
                await b.wait_until(lambda s: str(text(s, "t2")) == "new root while offline", 10)
                await a.flush()
                await b.flush()
                disconnects = [e for e in a_events if e.status is Status.DISCONNECTED]
                assert disconnects and disconnects[0].code in (1012, 1001, 1006)
                assert all(e.retry_in is not None and e.retry_in <= 0.5 for e in disconnects)

            # The restarted server stored what the clients uploaded: restart again, check.
            await asyncio.to_thread(server.restart)
            async with connect(server.ws_url, "sdk/restart") as fresh:
                await fresh.synced()
                assert str(text(fresh)) == "[offline b][before][offline a]"
                assert str(text(fresh, "t2")) == "new root while offline"

        run(scenario(), timeout=90)


def test_reconnect_false_ends_the_session_on_a_server_restart(tmp_path: Path) -> None:
    with YsyncProcess(log_path=tmp_path / "ysync.log") as server:

        async def scenario() -> None:
            async with connect(server.ws_url, "sdk/once", reconnect=False) as session:
                await session.synced()
                await asyncio.to_thread(server.stop)
                await session.closed(10)
                assert session.status is Status.CLOSED
                assert isinstance(session.error, ConnectionLostError)
                assert session.error.code in (1012, 1001, 1006)
                assert session.connects == 1
                with pytest.raises(ConnectionLostError):
                    await session.synced(1)

        run(scenario())


def test_unreachable_server_gives_up_after_max_attempts() -> None:
    url = f"ws://127.0.0.1:{free_port()}"  # nothing listens there

    async def scenario() -> None:
        events: list[StatusEvent] = []
        backoff = Backoff(initial=0.01, max_delay=0.05, max_attempts=3)
        async with connect(url, "nowhere", backoff=backoff, on_status=events.append) as session:
            with pytest.raises(ConnectError, match="cannot connect"):
                await session.synced(10)
        assert [e.status for e in events].count(Status.CONNECTING) == 4  # first try + 3 retries
        assert events[-1].status is Status.CLOSED
        assert session.connects == 0

        # Retrying for ever: a synced() timeout names the last error, and close()
        # does not wait for the pending retry.
        slow = Backoff(initial=30, max_delay=30)
        async with connect(url, "nowhere", backoff=slow) as retrying:
            with pytest.raises(TimeoutError, match="last error: cannot connect"):
                await retrying.synced(0.5)
            assert retrying.status is Status.DISCONNECTED
            started = time.monotonic()
        assert time.monotonic() - started < 1
        assert retrying.status is Status.CLOSED and retrying.error is None

    run(scenario())


# -- tokens ----------------------------------------------------------------------------------


def test_token_expiry_reconnects_with_a_fresh_token_from_the_provider(
    hooked: tuple[ThreadedServer, TokenHooks, Any],
) -> None:
    server, hooks, app = hooked
    counter = itertools.count(1)
    issued: list[str] = []

    async def token_provider() -> str:  # async providers are awaited
        await asyncio.sleep(0)
        issued.append(f"writer-{next(counter)}")
        return issued[-1]

    async def scenario() -> None:
        events: list[StatusEvent] = []
        async with (
            connect(
                server.ws_url, "tok", token_provider=token_provider, on_status=events.append
            ) as bot,
            connect(server.ws_url, "tok", token="writer-other") as other,
        ):
            await bot.synced()
            await other.synced()
            assert issued == ["writer-1"]
            # The server expires the token of an open connection: 4401.
            hooks.expired.add("writer-1")
            closed = await server.acall(
                lambda: close_connections_of(app, "writer-1", 4401, "token expired")
            )
            assert closed == 1
            text(other).insert(0, "while the bot reconnects. ")
            await bot.wait_until(lambda s: s.connects == 2 and s.is_synced, 10)
            assert issued == ["writer-1", "writer-2"]
            assert hooks.seen.count("writer-2") == 1
            text(bot).insert(0, "after. ")
            await bot.wait_until(lambda s: "while" in str(text(s)), 5)
            await other.wait_until(lambda s: "after" in str(text(s)), 5)
            assert str(text(bot)) == str(text(other))
        disconnect = next(e for e in events if e.status is Status.DISCONNECTED)
        assert disconnect.code == 4401 and disconnect.reason == "token expired"
        assert isinstance(disconnect.error, AuthenticationError)
        assert disconnect.retry_in == 0.0  # a fresh token is tried at once

    run(scenario())


def test_a_provider_first_returning_an_expired_token_then_a_good_one(
    hooked: tuple[ThreadedServer, TokenHooks, Any],
) -> None:
    server, hooks, _ = hooked
    tokens = iter(["expired-1", "writer-2"])

    async def scenario() -> None:
        async with connect(server.ws_url, "tok2", token_provider=lambda: next(tokens)) as s:
            await s.synced()
            assert s.connects == 2
            assert hooks.seen == ["expired-1", "writer-2"]

    run(scenario())


def test_4401_is_terminal_without_a_provider_or_when_fresh_tokens_keep_failing(
    hooked: tuple[ThreadedServer, TokenHooks, Any],
) -> None:
    server, _, _ = hooked
    calls = itertools.count(1)

    async def scenario() -> None:
        async with connect(server.ws_url, "tok3", token="expired-static") as static:
            with pytest.raises(AuthenticationError, match="token expired"):
                await static.synced()
            assert static.connects == 1 and static.close_code == 4401
        async with connect(
            server.ws_url, "tok3", token_provider=lambda: f"expired-{next(calls)}", backoff=FAST
        ) as session:
            await session.closed()
            assert isinstance(session.error, AuthenticationError)
            assert session.connects == 4  # the first try and max_auth_retries=3 fresh tokens

    run(scenario())


# -- close codes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (4400, MalformedMessageError),
        (4403, ForbiddenError),
        (4413, TooLargeError),
        (4429, RefusedError),
    ],
)
def test_permanent_close_codes_end_the_session_with_a_typed_error(
    hooked: tuple[ThreadedServer, TokenHooks, Any], code: int, error: type[Exception]
) -> None:
    server, hooks, _ = hooked

    async def scenario() -> None:
        events: list[StatusEvent] = []
        token = f"refuse-{code}-x"
        async with connect(
            server.ws_url, "closed", token=token, backoff=FAST, on_status=events.append
        ) as s:
            with pytest.raises(error) as caught:
                await s.synced()
            assert caught.value.code == code  # type: ignore[attr-defined]
            assert caught.value.reason == f"refused {token}"  # type: ignore[attr-defined]
            assert s.status is Status.CLOSED and s.error is caught.value
            assert s.close_code == code
        assert hooks.seen == [token]  # never retried
        assert [e.status for e in events] == [Status.CONNECTING, Status.CONNECTED, Status.CLOSED]

    run(scenario())


@pytest.mark.parametrize("code", [4503, 4529, 1013])
def test_transient_close_codes_reconnect_with_backoff(
    hooked: tuple[ThreadedServer, TokenHooks, Any], code: int
) -> None:
    server, hooks, _ = hooked

    async def scenario() -> None:
        events: list[StatusEvent] = []
        backoff = Backoff(initial=0.01, max_delay=1.0, jitter=0.0)
        token = f"flaky-{code}-x"
        async with connect(
            server.ws_url, "busy", token=token, backoff=backoff, on_status=events.append
        ) as s:
            await s.synced()
        disconnected = next(e for e in events if e.status is Status.DISCONNECTED)
        assert disconnected.code == code
        assert isinstance(disconnected.error, ConnectionLostError)
        # "slow down" codes start the backoff a few steps in: 0.01 * 2**3.
        assert disconnected.retry_in == pytest.approx(0.08)
        assert hooks.seen == [token, token]

    run(scenario())


# -- read-only sessions --------------------------------------------------------------------------


def test_read_only_session_raises_on_local_edits_instead_of_diverging(
    hooked: tuple[ThreadedServer, TokenHooks, Any],
) -> None:
    server, _, _ = hooked

    async def scenario() -> None:
        async with (
            connect(server.ws_url, "ro", token="writer-1") as writer,
            connect(server.ws_url, "ro", token="reader-1") as reader,
        ):
            await writer.synced()
            await reader.synced()
            assert not reader.read_only
            text(reader).insert(0, "first ")  # not known yet: the server refuses it
            await reader.wait_until(lambda s: s.read_only, 5)
            assert reader.permission_denied
            with pytest.raises(ReadOnlyError, match="read-only"), reader.edit():
                text(reader).insert(0, "never")
            # A direct edit is raised out of pycrdt's observer machinery.
            with pytest.raises(ExceptionGroup) as caught:
                text(reader).insert(0, "second ")
            assert caught.group_contains(ReadOnlyError)
            assert reader.rejected_edits == 1
            text(writer).insert(0, "legit ")
            await reader.wait_until(lambda s: "legit" in str(text(s)), 5)
            await writer.flush()
            assert str(text(writer)) == "legit "

        # Knowing in advance: the first edit raises too.
        async with connect(server.ws_url, "ro", token="reader-2", read_only=True) as known:
            await known.synced()
            assert str(text(known)) == "legit "
            with pytest.raises(ReadOnlyError), known.edit():
                pass
            with pytest.raises(ExceptionGroup):
                text(known).insert(0, "x")

    run(scenario())


@pytest.mark.slow
def test_jwt_expiry_on_a_real_server_reconnects_with_fresh_tokens(tmp_path: Path) -> None:
    """`ysync serve --auth jwt` closes a connection with 4401 when its token
    expires; the provider's next token gets the session back, edits keep flowing."""
    issued: list[str] = []

    def token_provider() -> str:
        issued.append(tk.token("bot", ttl=2))  # exp is in whole seconds: expires in 1-2 s
        return issued[-1]

    with YsyncProcess(*tk.JWT_FLAGS, log_path=tmp_path / "ysync.log") as server:

        async def scenario() -> None:
            events: list[StatusEvent] = []
            async with (
                connect(
                    server.ws_url, "jwt/doc", token_provider=token_provider, on_status=events.append
                ) as bot,
                connect(server.ws_url, "jwt/doc", token=tk.token("ada")) as ada,
            ):
                await bot.synced()
                await ada.synced()
                await bot.wait_until(lambda s: s.connects >= 2 and s.is_synced, 10)
                text(bot).insert(0, "after the first expiry")
                await ada.wait_until(lambda s: str(text(s)) == "after the first expiry", 5)
            expiries = [e for e in events if e.status is Status.DISCONNECTED]
            assert expiries and all(e.code == 4401 for e in expiries)
            assert all(isinstance(e.error, AuthenticationError) for e in expiries)
            assert len(issued) == bot.connects >= 2

        run(scenario())
