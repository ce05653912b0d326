"""The hooks a Hocuspocus extension author looks for first: stateless, awareness, disconnect."""

from __future__ import annotations

from collections.abc import Sequence

from ysync.rooms import codec
from ysync.rooms.codec import AwarenessEntry
from ysync.rooms.extensions import Extension, Extensions, from_hooks
from ysync.rooms.hooks import Hooks, Identity
from ysync.rooms.protocols import Peer
from ysync.rooms.room import Room

from support.fakes import FakePeer


class Recorder(Hooks):
    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def on_stateless(self, room: str, payload: str, identity: Identity) -> bool:
        self.calls.append(("stateless", room, payload, identity.user_id))
        return payload == "relay"

    def on_awareness_update(
        self, room: str, changes: Sequence[AwarenessEntry], origin: str
    ) -> None:
        self.calls.append(("awareness", room, [(e.client_id, e.state) for e in changes], origin))

    def on_disconnect(self, room: str, identity: Identity, clients: int) -> None:
        self.calls.append(("disconnect", room, identity.user_id, clients))


def room_with(extensions: Extensions) -> Room:
    room = Room("hooks/room")
    room.awareness_listeners.append(extensions.awareness)
    return room


def test_hooks_see_stateless_awareness_and_disconnects() -> None:
    hooks = Recorder()
    extensions = Extensions([from_hooks(hooks)])
    room = room_with(extensions)
    ada, bo = FakePeer("ada", Identity(user_id="ada")), FakePeer("bo")
    room.join(ada)
    room.join(bo)
    assert extensions.stateless(room, ada, "relay") is True
    assert extensions.stateless(room, ada, "keep") is False
    room.receive(ada, codec.AwarenessUpdate((AwarenessEntry(7, 1, '{"n":1}'),)), now=0.0)
    room.leave(ada)
    extensions.left(room, ada)
    assert hooks.calls == [
        ("stateless", "hooks/room", "relay", "ada"),
        ("stateless", "hooks/room", "keep", "ada"),
        # As stored and relayed: with the verified identity.
        (
            "awareness",
            "hooks/room",
            [(7, '{"n":1,"ysync":{"userId":"ada","name":"ada","role":"editor"}}')],
            "client",
        ),
        ("awareness", "hooks/room", [(7, "null")], "client"),
        ("disconnect", "hooks/room", "ada", 1),
    ]


def test_hooks_not_overridden_are_not_run() -> None:
    extensions = Extensions([from_hooks(Hooks())])
    room = room_with(extensions)
    assert extensions._stateless == () and extensions._awareness == () and extensions._leave == ()
    assert extensions.stateless(room, FakePeer(), "x") is False


class Loud(Extension):
    def on_stateless(self, room: Room, peer: Peer, payload: str) -> bool:
        raise RuntimeError("boom")


class Yes(Extension):
    def on_stateless(self, room: Room, peer: Peer, payload: str) -> bool:
        return True


def test_one_extension_saying_relay_is_enough_and_a_failing_one_is_logged() -> None:
    room = Room("x")
    assert Extensions([Loud(), Yes()]).stateless(room, FakePeer(), "p") is True
    assert Extensions([Loud()]).stateless(room, FakePeer(), "p") is False
