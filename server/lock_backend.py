"""Where locks live: `MemoryLocks` on a single node, `RedisLocks` for a cluster.

Both give the same answers. Redis does each change in one Lua script, so two
nodes racing for an element get exactly one winner; every change bumps the
room's version (also the fencing counter), which other nodes poll to refresh
what their clients see. A lock's key expires with its lease: a holder whose
node died loses it without anyone cleaning up.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

import orjson
import redis.asyncio as redis

from ysync.presence.locks import Lock


class LockBackend(Protocol):
    async def acquire(self, room: str, lock: Lock, ttl: float) -> tuple[bool, Lock]:
        """(True, our lock with its fence) or (False, the current holder's)."""
        ...

    async def renew(self, room: str, element: str, fence: int, ttl: float) -> bool: ...

    async def release(self, room: str, element: str, fence: int | None) -> Lock | None:
        """Release (any holder's when `fence` is None); the released lock, or None."""
        ...

    async def locks(self, room: str) -> list[Lock]: ...

    async def expire(self, room: str) -> list[Lock]:
        """Forget locks past their lease; the ones forgotten (to announce once)."""
        ...

    async def versions(self, rooms: Sequence[str]) -> list[int]: ...

    async def close(self) -> None: ...


class MemoryLocks:
    def __init__(self) -> None:
        self._rooms: dict[str, dict[str, Lock]] = {}
        self._versions: dict[str, int] = {}

    def _bump(self, room: str) -> int:
        self._versions[room] = version = self._versions.get(room, 0) + 1
        return version

    async def acquire(self, room: str, lock: Lock, ttl: float) -> tuple[bool, Lock]:
        await self.expire(room)
        held = self._rooms.setdefault(room, {})
        current = held.get(lock.element)
        if current is not None:
            return False, current
        ours = _with(lock, fence=self._bump(room), expires_at=time.time() + ttl)
        held[lock.element] = ours
        return True, ours

    async def renew(self, room: str, element: str, fence: int, ttl: float) -> bool:
        current = self._rooms.get(room, {}).get(element)
        if current is None or current.fence != fence or current.expires_at <= time.time():
            return False
        self._rooms[room][element] = _with(current, expires_at=time.time() + ttl)
        return True

    async def release(self, room: str, element: str, fence: int | None) -> Lock | None:
        held = self._rooms.get(room, {})
        current = held.get(element)
        if current is None or (fence is not None and current.fence != fence):
            return None
        del held[element]
        self._bump(room)
        return current

    async def locks(self, room: str) -> list[Lock]:
        now = time.time()
        return [lock for lock in self._rooms.get(room, {}).values() if lock.expires_at > now]

    async def expire(self, room: str) -> list[Lock]:
        held = self._rooms.get(room)
        if not held:
            return []
        now = time.time()
        gone = [lock for lock in held.values() if lock.expires_at <= now]
        for lock in gone:
            del held[lock.element]
        if gone:
            self._bump(room)
        if not held:
            del self._rooms[room]
        return gone

    async def versions(self, rooms: Sequence[str]) -> list[int]:
        return [self._versions.get(room, 0) for room in rooms]

    async def close(self) -> None:
        pass


# Lease times come from Redis's clock (TIME), never a node's: skewed nodes agree.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
# KEYS: lock, index, version; ARGV: lock JSON (fence 0), ttl ms, (unused), element
_ACQUIRE = (
    _NOW
    + """
local current = redis.call('GET', KEYS[1])
if current then return {0, current} end
local fence = redis.call('INCR', KEYS[3])
local value = string.gsub(ARGV[1], '"fence":0', '"fence":' .. fence, 1)
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[4])
redis.call('PEXPIRE', KEYS[2], 2 * 3600 * 1000)
return {1, value}
"""
)
# KEYS: lock, index; ARGV: fence, ttl ms, (unused), element, new JSON
_RENEW = (
    _NOW
    + """
local current = redis.call('GET', KEYS[1])
if not current or cjson.decode(current)['fence'] ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[5], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[4])
return 1
"""
)
# KEYS: lock, index, version; ARGV: fence ('' for any), element
_RELEASE = """
local current = redis.call('GET', KEYS[1])
if not current then return false end
if ARGV[1] ~= '' and cjson.decode(current)['fence'] ~= tonumber(ARGV[1]) then return false end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('INCR', KEYS[3])
return current
"""
# KEYS: index, version. The elements whose lease passed.
_EXPIRE = (
    _NOW
    + """
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #gone == 0 then return gone end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('INCR', KEYS[2])
return gone
"""
)


class RedisLocks:
    def __init__(self, url: str) -> None:
        self._redis = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._renew = self._redis.register_script(_RENEW)
        self._release = self._redis.register_script(_RELEASE)
        self._expire = self._redis.register_script(_EXPIRE)

    @staticmethod
    def _keys(room: str, element: str = "") -> tuple[str, str, str]:
        base = "ysync:locks:{" + room + "}"
        return f"{base}:e:{element}", f"{base}:index", f"{base}:version"

    async def acquire(self, room: str, lock: Lock, ttl: float) -> tuple[bool, Lock]:
        key, index, version = self._keys(room, lock.element)
        ttl_ms = int(ttl * 1000)
        fresh = _with(lock, fence=0, expires_at=time.time() + ttl)
        won, value = await self._acquire(
            keys=[key, index, version],
            args=[orjson.dumps(fresh.to_json()), ttl_ms, int(time.time() * 1000), lock.element],
        )
        parsed = _parse(value)
        if parsed is None:
            raise RuntimeError("unreadable lock in redis")
        return bool(won), parsed

    async def renew(self, room: str, element: str, fence: int, ttl: float) -> bool:
        key, index, _ = self._keys(room, element)
        current = _parse(await self._redis.get(key))
        if current is None or current.fence != fence:
            return False
        renewed = _with(current, expires_at=time.time() + ttl)
        ttl_ms = int(ttl * 1000)
        now_ms = int(time.time() * 1000)
        body = orjson.dumps(renewed.to_json())
        return bool(
            await self._renew(keys=[key, index], args=[fence, ttl_ms, now_ms, element, body])
        )

    async def release(self, room: str, element: str, fence: int | None) -> Lock | None:
        key, index, version = self._keys(room, element)
        value = await self._release(
            keys=[key, index, version], args=["" if fence is None else fence, element]
        )
        return _parse(value) if value else None

    async def locks(self, room: str) -> list[Lock]:
        _, index, _ = self._keys(room)
        elements = await self._redis.zrange(index, 0, -1)  # an expired key reads as None
        if not elements:
            return []
        keys = [self._keys(room, _text(e))[0] for e in elements]
        return [lock for lock in map(_parse, await self._redis.mget(keys)) if lock is not None]

    async def expire(self, room: str) -> list[Lock]:
        _, index, version = self._keys(room)
        gone = await self._expire(keys=[index, version], args=[])
        return [
            Lock(_text(e), "", "", 0.0, 0.0, 0, "") for e in gone
        ]  # only the element is known once the key expired

    async def versions(self, rooms: Sequence[str]) -> list[int]:
        if not rooms:
            return []
        values = await self._redis.mget([self._keys(room)[2] for room in rooms])
        return [int(v) if v is not None else 0 for v in values]

    async def close(self) -> None:
        await self._redis.aclose()


def _with(lock: Lock, **changes: object) -> Lock:
    fields = lock.to_json()
    fields.update(changes)
    return Lock(**fields)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _parse(value: object) -> Lock | None:
    if value is None:
        return None
    try:
        return Lock.from_json(orjson.loads(value if isinstance(value, bytes | str) else b""))
    except orjson.JSONDecodeError:
        return None
