"""uvicorn's HTTP protocol (httptools), with the limits a request head must keep to.

uvicorn reads request heads with no deadline and no size bound, never closes a
fresh connection that sends nothing, and answers parser errors with
`400 text/plain`. A socket that has not finished its request head is the
cheapest thing an attacker can hold, so `ysync serve` runs this subclass
(`http=HttpHeadProtocol`), which adds:

- a deadline (`header_timeout`) for each request head, from the first byte of
  the connection or of the next request: past it, 408 and the connection closes;
- a size bound (`max_header_bytes`) on each head: 431;
- a cap on connections still in their head, per address
  (`max_handshakes_per_ip`, 429) and in all (`max_handshakes`, 503), checked
  when the connection is made, so a slow-header flood cannot take every file
  descriptor;
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


@dataclass(frozen=True, slots=True)
class HeadLimits:
    header_timeout: float = 10.0
    max_header_bytes: int = 32 * 1024
    max_handshakes: int = 256
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
    """The connections still in a request head: in all and per address."""

    def __init__(self) -> None:
        self.total = 0
        self.by_address: dict[str, int] = {}

    def enter(self, address: str) -> None:
        self.total += 1
        self.by_address[address] = self.by_address.get(address, 0) + 1

    def leave(self, address: str) -> None:
        self.total -= 1
        left = self.by_address.get(address, 1) - 1
        if left:
            self.by_address[address] = left
        else:
            self.by_address.pop(address, None)


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
        if limits.max_handshakes and in_head.total >= limits.max_handshakes:
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
        if (
            limits.max_handshakes_per_ip
            and in_head.by_address.get(self._address, 0) >= limits.max_handshakes_per_ip
        ):
            self._answer(
                http_error(
                    429,
                    "rate_limited",
                    f"{limits.max_handshakes_per_ip} connections from this address already in "
                    "their request head (max_handshakes_per_ip)",
                    b"retry-after: 1\r\n",
                )
            )
            return
        self._start_head()

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
        self.in_head.enter(self._address)
        timeout = self.limits.header_timeout
        if timeout:
            self._head_timer = self.loop.call_later(timeout, self._head_timed_out)

    def _end_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if self._counted:
            self._counted = False
            self.in_head.leave(self._address)

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
