"""uvicorn's HTTP protocol (httptools), with the limits a request head must keep to.

uvicorn reads request heads with no deadline and no size bound, never closes a
fresh connection that sends nothing, and answers parser errors with
`400 text/plain`. A socket that has not finished its request head is the
cheapest thing an attacker can hold, so `ysync serve` runs this subclass
(`http=HttpHeadProtocol`), which adds:

- a deadline (`header_timeout`) for each request head, from the first byte of
  the connection or of the next request: past it, 408 and the connection closes;
- a size bound (`max_header_bytes`) on each head: 431;
- caps on connections still in their head, per address
  (`max_handshakes_per_ip`) and in all (`max_handshakes`), checked when a
  connection is made: past a cap, the oldest head that has taken longer than
  BURST_GRACE is closed (408) to make room, so slow-header sockets cannot pile
  up, while a burst of fresh connections (a reconnect storm) is never refused
  per address; only when every head in the node is fresh is a newcomer refused
  (503);
- every error as JSON `{"error": ..., "code": ...}`, as everywhere else.

Nothing of this runs per WebSocket frame: an upgraded connection leaves here
(`ysync.server.ws_protocol` takes over) as soon as its head is complete.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from ysync.server.settings import Settings

log = logging.getLogger("ysync.server")

LINGER = 2.0  # seconds an answered connection's further bytes are read and dropped
# A head younger than this is part of a burst (a reconnect storm, a NATed office):
# never evicted, never the reason to refuse. Slow heads are older.
BURST_GRACE = 1.0


@dataclass(frozen=True, slots=True)
class HeadLimits:
    header_timeout: float = 10.0
    max_header_bytes: int = 32 * 1024
    max_handshakes: int = 1024
    max_handshakes_per_ip: int = 16

    @classmethod
    def from_settings(cls, settings: Settings) -> HeadLimits:
        return cls(
            header_timeout=settings.header_timeout,
            max_header_bytes=settings.max_header_bytes,
            max_handshakes=settings.max_handshakes,
            max_handshakes_per_ip=settings.max_handshakes_per_ip,
        )


class _InHead:
    """The connections still in a request head, oldest first: in all and per address."""

    def __init__(self) -> None:
        self.all: dict[HttpHeadProtocol, float] = {}  # -> when its head started
        self.by_address: dict[str, dict[HttpHeadProtocol, float]] = {}

    def enter(self, protocol: HttpHeadProtocol, address: str, now: float) -> None:
        self.all[protocol] = now
        self.by_address.setdefault(address, {})[protocol] = now

    def leave(self, protocol: HttpHeadProtocol, address: str) -> None:
        self.all.pop(protocol, None)
        mine = self.by_address.get(address)
        if mine is not None:
            mine.pop(protocol, None)
            if not mine:
                del self.by_address[address]

    @staticmethod
    def oldest(group: dict[HttpHeadProtocol, float], now: float) -> HttpHeadProtocol | None:
        """The oldest of `group` if it has been in its head longer than BURST_GRACE."""
        for protocol, started in group.items():
            return protocol if now - started > BURST_GRACE else None
        return None


def http_error(status: int, code: str, message: str, extra: bytes = b"") -> bytes:
    """A complete HTTP/1.1 error response with a JSON body; the connection closes."""
    body = orjson.dumps({"error": message, "code": code})
    return (
        STATUS_LINE[status]
        + b"content-type: application/json\r\nconnection: close\r\n"
        + extra
        + b"content-length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


class HttpHeadProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with head deadlines, size and count limits."""

    limits: ClassVar[HeadLimits] = HeadLimits()  # `configure` sets the node's
    in_head: ClassVar[_InHead] = _InHead()

    @classmethod
    def configure(cls, limits: HeadLimits) -> None:
        cls.limits = limits

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._counted = False  # counted in `in_head`
        self._address = ""
        self._answered = False  # an error was sent: the rest is dropped

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._address = self.client[0] if self.client else ""
        limits, in_head = self.limits, self.in_head
        now = self.loop.time()
        mine = in_head.by_address.get(self._address, {})
        if limits.max_handshakes_per_ip and len(mine) >= limits.max_handshakes_per_ip:
            # The address's oldest slow head makes room; a burst of fresh ones is let in.
            evicted = in_head.oldest(mine, now)
            if evicted is not None:
                evicted._evict("max_handshakes_per_ip")
        if limits.max_handshakes and len(in_head.all) >= limits.max_handshakes:
            evicted = in_head.oldest(in_head.all, now)
            if evicted is None:
                self._answer(
                    http_error(
                        503,
                        "over_capacity",
                        f"{limits.max_handshakes} connections already in their request head "
                        "(max_handshakes), retry later",
                        b"retry-after: 1\r\n",
                    )
                )
                return
            evicted._evict("max_handshakes")
        self._start_head()

    def _evict(self, setting: str) -> None:
        self._answer(
            http_error(
                408,
                "header_timeout",
                f"request head too slow: closed to make room for another ({setting})",
            )
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_head()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._answered:
            return  # dropped: see `_answer`
        if self._counted:
            end = data.find(b"\r\n\r\n")
            self._head_bytes += len(data) if end < 0 else end + 4
            limit = self.limits.max_header_bytes
            if limit and self._head_bytes > limit:
                self._answer(
                    http_error(
                        431,
                        "headers_too_large",
                        f"request head over {limit} bytes (max_header_bytes)",
                    )
                )
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._counted:
            self._start_head()  # the next request on a kept-alive connection

    def on_headers_complete(self) -> None:
        self._end_head()
        super().on_headers_complete()

    def handle_websocket_upgrade(self) -> None:
        self._end_head()
        super().handle_websocket_upgrade()

    def send_400_response(self, msg: str) -> None:
        # uvicorn's parser-error answer, as JSON like every other error.
        self._answer(
            http_error(400, "bad_request", "invalid HTTP request: the HTTP/1.1 parser refused it")
        )

    # -- internals ----------------------------------------------------------------------

    def _start_head(self) -> None:
        self._counted = True
        self._head_bytes = 0
        self.in_head.enter(self, self._address, self.loop.time())
        timeout = self.limits.header_timeout
        if timeout:
            self._head_timer = self.loop.call_later(timeout, self._head_timed_out)

    def _end_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if self._counted:
            self._counted = False
            self.in_head.leave(self, self._address)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        timeout = self.limits.header_timeout
        self._answer(
            http_error(
                408,
                "header_timeout",
                f"request head not complete within {timeout:g} s (header_timeout)",
            )
        )

    def _answer(self, response: bytes) -> None:
        """Send an error and hang up. What the client still sends is read and
        dropped for LINGER seconds: closing with unread bytes would reset the
        connection, and the client would never see the answer."""
        self._end_head()
        if self.transport.is_closing() or self._answered:
            return
        self._answered = True
        self.transport.write(response)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER, self.transport.close)
