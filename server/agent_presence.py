"""Presence for participants with no WebSocket (an AI agent, a backend job).

`POST /api/rooms/{room}/presence` makes an `AgentPeer`: a peer of the room that
sends nothing but its awareness state, so it is stamped with the caller's
verified identity, owned, relayed to every client and node, and listed by the
presence API like anyone's. It keeps the room loaded while it lives, renews its
state before the awareness timeout would remove it, and leaves when its TTL
passes or it is deleted. Agents live on the node that created them (a DELETE
sent to another node answers 404; the TTL bounds them anyway).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field

import orjson

from ysync.rooms import codec
from ysync.rooms.hooks import Identity
from ysync.rooms.registry import RoomRegistry
from ysync.rooms.room import Room
from ysync.rooms.vocabulary import Refusal

MIN_TTL, MAX_TTL = 1, 3600  # seconds
RENEW_SECONDS = 10.0  # well inside the 30 s awareness timeout
MAX_AGENTS_PER_ROOM = 32  # each is a state every newcomer downloads


class StateRefused(ValueError):
    """The room's awareness bounds dropped the agent's state."""


@dataclass(eq=False)
class AgentPeer:
    """One agent's presence in one room (a `Peer` that only holds awareness)."""

    identity: Identity
    room: Room
    presence_id: str
    client_id: int
    state: str  # JSON text, as the agent gave it (the room stamps it)
    expires_at: float  # Unix time
    clock: int = 0
    renewed_at: float = field(default_factory=time.monotonic)
    client: str | None = None

    def __hash__(self) -> int:
        return id(self)

    def send(self, message: codec.Message) -> None:
        """An agent reads nothing over the room's connection."""

    def close(self, refusal: Refusal) -> None:
        """Nothing to close: the agent leaves when its TTL passes."""

    def announce(self) -> None:
        self.clock += 1
        self.renewed_at = time.monotonic()
        entry = codec.AwarenessEntry(self.client_id, self.clock, self.state)
        self.room.apply_awareness((entry,), self, time.monotonic())


class Agents:
    """The agents this node hosts, by presence id."""

    def __init__(self, registry: RoomRegistry) -> None:
        self.registry = registry
        self.by_id: dict[str, AgentPeer] = {}

    async def add(self, name: str, identity: Identity, state: object, ttl: float) -> AgentPeer:
        """Join a new agent to room `name` with `state` for `ttl` seconds.
        Raises ValueError when the room already has MAX_AGENTS_PER_ROOM."""
        if sum(1 for a in self.by_id.values() if a.room.name == name) >= MAX_AGENTS_PER_ROOM:
            raise ValueError(f"room has {MAX_AGENTS_PER_ROOM} agents already")
        room = await self.registry.acquire(name)
        presence_id = secrets.token_hex(8)
        agent = AgentPeer(
            identity,
            room,
            presence_id,
            client_id=secrets.randbelow(2**31 - 2**20) + 2**20,
            state=orjson.dumps(state).decode(),
            expires_at=time.time() + ttl,
        )
        room.join(agent, read_only=True)
        self.by_id[presence_id] = agent
        agent.announce()
        if room.awareness.owner_of(agent.client_id) is not agent:
            self.remove(presence_id)
            raise StateRefused("state: over --awareness-state-bytes")
        return agent

    def remove(self, presence_id: str) -> bool:
        agent = self.by_id.pop(presence_id, None)
        if agent is None:
            return False
        if not agent.room.closed:
            agent.room.leave(agent)
            self.registry.release(agent.room.name)
        return True

    async def run(self, interval: float = 1.0) -> None:
        """Forever: end agents past their TTL, renew the others' states."""
        while True:
            await asyncio.sleep(interval)
            now, tick = time.time(), time.monotonic()
            for presence_id, agent in list(self.by_id.items()):
                if agent.expires_at <= now or agent.room.closed:
                    self.remove(presence_id)
                elif tick - agent.renewed_at >= RENEW_SECONDS:
                    agent.announce()
