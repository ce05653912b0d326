"""Abuse limits: what one client, one address or one room may take from a node.

Every limit exceeded closes only the offending connection, with a code and a
reason naming the limit (README "Limits"); the room and its other clients are
untouched:

| limit (setting)                             | close code |
|---------------------------------------------|------------|
| message size (max_message_bytes)            | 4413       |
| document size (max_document_bytes, in Room) | 4413       |
| messages/s, bytes/s (rate_*)                | 4529       |
| connection attempts per address (ip_*)      | 4529       |
| clients per room (max_clients_per_room)     | 4503       |
| rooms per node (max_rooms)                  | 4503       |
| Origin not allowed (allowed_origins)        | 4403       |

Elsewhere: update nesting and pending structs (`ysync.rooms.structure`, 4400),
request heads (`ysync.server.http_head`: 408/431/429/503), frames and the
pre-authentication buffer (`ysync.server.ws_frames`/`ws_protocol`), per-user
quotas (`ysync.server.admission.UserQuota`, 4503); all in docs/security.md.

All checks are O(1) per message or per connection; no timers, no tasks.
`LimitsExtension` applies the per-address, Origin, message-size and rate
limits; the capacity limits are the endpoint's admission
(`ysync.server.admission`) and the document size is the room's (`RoomConfig`).
"""

from __future__ import annotations

import functools
import ipaddress
import time
from collections.abc import Mapping
from dataclasses import dataclass

from ysync.rooms.extensions import Extension, MessageGate
from ysync.rooms.hooks import ConnectionRequest, Identity
from ysync.rooms.vocabulary import CloseCode, Refusal, Refused
from ysync.server.settings import Settings

_MAX_TRACKED_ADDRESSES = 100_000  # bounds the per-address table whatever the traffic


class TokenBucket:
    """Tokens refill at `rate` per second up to `burst`; `take` spends them."""

    __slots__ = ("burst", "last", "rate", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.last = now

    def take(self, amount: float, now: float) -> bool:
        """Spend `amount` tokens if there are that many; False (nothing spent) otherwise."""
        tokens = self.tokens + (now - self.last) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        self.last = now
        if tokens < amount:
            self.tokens = tokens
            return False
        self.tokens = tokens - amount
        return True


class ConnectionRate:
    """Per-connection budget of messages/s and bytes/s (two token buckets)."""

    __slots__ = ("_bytes", "_messages")

    def __init__(self, limits: Limits, now: float) -> None:
        self._messages = (
            TokenBucket(limits.rate_messages, limits.rate_messages_burst, now)
            if limits.rate_messages
            else None
        )
        self._bytes = (
            TokenBucket(limits.rate_bytes, limits.rate_bytes_burst, now)
            if limits.rate_bytes
            else None
        )

    def exceeded(self, size: int, now: float) -> Refusal | None:
        """Account for one message of `size` bytes; the refusal if over budget."""
        if self._messages is not None and not self._messages.take(1, now):
            return Refusal(
                CloseCode.RATE_LIMITED,
                f"rate limited: over {self._messages.rate:g} messages/s (rate_messages)",
            )
        if self._bytes is not None and not self._bytes.take(size, now):
            return Refusal(
                CloseCode.RATE_LIMITED,
                f"rate limited: over {self._bytes.rate:g} bytes/s (rate_bytes)",
            )
        return None


class AddressThrottle:
    """Connection attempts per address per minute; over it, the address is banned a while.

    IPv6 addresses count per /64 (one host usually owns a whole /64). The
    table is pruned as it goes and never holds more than 100,000 addresses.
    """

    def __init__(self, per_minute: int, ban_seconds: float) -> None:
        self.per_minute = per_minute
        self.ban_seconds = ban_seconds
        self._buckets: dict[str, TokenBucket] = {}
        self._banned: dict[str, float] = {}  # address -> monotonic time the ban ends

    def admit(self, address: str | None, now: float | None = None) -> Refusal | None:
        """Count one attempt from `address` (an IP, no port); the refusal if over the limit."""
        if not self.per_minute or address is None:
            return None
        now = time.monotonic() if now is None else now
        key = address_key(address)
        until = self._banned.get(key)
        if until is not None:
            if now < until:
                return Refusal(
                    CloseCode.RATE_LIMITED,
                    f"too many connection attempts: address banned for {self.ban_seconds:g} s",
                )
            del self._banned[key]
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= _MAX_TRACKED_ADDRESSES:
                self._prune(now)
            bucket = self._buckets[key] = TokenBucket(self.per_minute / 60.0, self.per_minute, now)
        if bucket.take(1, now):
            return None
        del self._buckets[key]
        self._banned[key] = now + self.ban_seconds
        if len(self._banned) > _MAX_TRACKED_ADDRESSES:
            self._prune(now)
        return Refusal(
            CloseCode.RATE_LIMITED,
            f"too many connection attempts: over {self.per_minute} a minute "
            f"(ip_connections_per_minute), banned for {self.ban_seconds:g} s",
        )

    def _prune(self, now: float) -> None:
        # A bucket that has refilled completely holds no information.
        full_after = 60.0
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.last < full_after}
        self._banned = {k: t for k, t in self._banned.items() if t > now}
        while len(self._buckets) >= _MAX_TRACKED_ADDRESSES:  # a flood of fresh addresses
            del self._buckets[next(iter(self._buckets))]  # oldest first (insertion order)


def address_key(host: str) -> str:
    """The unit an address (IP, no port) is throttled by: the IP; IPv6 per /64."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@functools.cache
def parse_origins(value: str) -> tuple[frozenset[str], tuple[tuple[str, str], ...]]:
    """Exact origins, and (scheme://, .suffix) pairs for `scheme://*.domain` entries."""
    exact: set[str] = set()
    wildcards: list[tuple[str, str]] = []
    for item in value.split(","):
        origin = item.strip().lower().rstrip("/")
        if not origin:
            continue
        scheme, sep, host = origin.partition("://")
        if sep and host.startswith("*."):
            wildcards.append((scheme + "://", host[1:]))
        else:
            exact.add(origin)
    return frozenset(exact), tuple(wildcards)


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits in force on a node; `from_settings` builds them."""

    max_message_bytes: int = 16 * 1024 * 1024
    max_document_bytes: int = 32 * 1024 * 1024
    max_clients_per_room: int = 1000
    max_rooms: int = 10_000
    rate_messages: float = 500.0
    rate_messages_burst: int = 2000
    rate_bytes: int = 1024 * 1024
    rate_bytes_burst: int = 32 * 1024 * 1024
    ip_connections_per_minute: int = 1000
    ip_ban_seconds: float = 60.0
    allowed_origins: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_message_bytes=settings.max_message_bytes,
            max_document_bytes=settings.max_document_bytes,
            max_clients_per_room=settings.max_clients_per_room,
            max_rooms=settings.max_rooms,
            rate_messages=settings.rate_messages,
            rate_messages_burst=settings.rate_messages_burst,
            rate_bytes=settings.rate_bytes,
            rate_bytes_burst=settings.rate_bytes_burst,
            ip_connections_per_minute=settings.ip_connections_per_minute,
            ip_ban_seconds=settings.ip_ban_seconds,
            allowed_origins=settings.allowed_origins,
        )

    @classmethod
    def off(cls) -> Limits:
        """No limit at all except the message size (for tests and trusted embeddings)."""
        return cls(
            max_document_bytes=0,
            max_clients_per_room=0,
            max_rooms=0,
            rate_messages=0,
            rate_bytes=0,
            ip_connections_per_minute=0,
        )

    def origin_refusal(self, headers: Mapping[str, str]) -> Refusal | None:
        """Why a browser connection's Origin is not allowed, or None.

        Clients that send no Origin (servers, bots, native apps) are not browsers
        and cannot be abused cross-site; they are let through.
        """
        if not self.allowed_origins:
            return None
        origin = headers.get("origin")
        if origin is None:
            return None
        normalized = origin.strip().lower().rstrip("/")
        exact, wildcards = parse_origins(self.allowed_origins)
        if normalized in exact:
            return None
        for scheme, suffix in wildcards:
            if normalized.startswith(scheme) and normalized.endswith(suffix):
                host = normalized[len(scheme) : len(normalized) - len(suffix)]
                if host and "/" not in host and "@" not in host:
                    return None
        return Refusal(CloseCode.FORBIDDEN, f"origin {origin[:60]!r} not allowed (allowed_origins)")

    def message_refusal(self, size: int) -> Refusal | None:
        if size > self.max_message_bytes:
            return Refusal(
                CloseCode.TOO_LARGE,
                f"message too large: {size} bytes, over the {self.max_message_bytes}-byte "
                "limit (max_message_bytes)",
            )
        return None


class LimitsExtension(Extension):
    """Per-address throttle and Origin list at connect; message size and rate per frame."""

    priority = 900  # before authentication: a banned address costs no token check

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.throttle = AddressThrottle(limits.ip_connections_per_minute, limits.ip_ban_seconds)

    async def on_connect(self, request: ConnectionRequest) -> None:
        address = request.client.rpartition(":")[0] if request.client else None
        refusal = self.throttle.admit(address) or self.limits.origin_refusal(request.headers)
        if refusal is not None:
            raise Refused(refusal)

    def message_gate(self, request: ConnectionRequest, identity: Identity) -> MessageGate:
        return FrameLimits(self.limits)


class FrameLimits:
    """One connection's per-frame check: message size, then its rate budget."""

    __slots__ = ("limits", "max_bytes", "rate")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.max_bytes = limits.max_message_bytes
        self.rate = (
            ConnectionRate(limits, time.monotonic())
            if limits.rate_messages or limits.rate_bytes
            else None
        )

    def __call__(self, frame: bytes) -> Refusal | None:
        size = len(frame)
        if size > self.max_bytes:
            return self.limits.message_refusal(size)
        if self.rate is not None:
            return self.rate.exceeded(size, time.monotonic())
        return None
