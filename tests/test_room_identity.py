"""The room stamps each connection's verified identity into its awareness states
(rooms/awareness_identity.py) and holds them to its bounds. Sans-I/O: FakePeers."""

from __future__ import annotations

import json

from ysync.rooms import codec
from ysync.rooms.awareness_identity import identity_fields, stamper
from ysync.rooms.codec import AwarenessEntry, AwarenessUpdate
from ysync.rooms.hooks import Identity, Role
from ysync.rooms.room import Room, RoomConfig

from support.fakes import FakePeer, feed


def states(peer: FakePeer) -> dict[int, object]:
    seen: dict[int, object] = {}
    for message in peer.take():
        if isinstance(message, AwarenessUpdate):
            seen.update({e.client_id: json.loads(e.state) for e in message.entries})
    return seen


def cursor(client_id: int, clock: int, state: object) -> bytes:
    return codec.encode_awareness([AwarenessEntry(client_id, clock, json.dumps(state))])


def test_the_verified_identity_overwrites_what_the_client_claims() -> None:
    room = Room("r")
    ada = FakePeer("ada", Identity(user_id="ada", name="Ada", role=Role.VIEWER, color="#f00"))
    watcher = FakePeer("w")
    room.join(ada)
    room.join(watcher)
    watcher.take()
    feed(room, ada, cursor(1, 1, {"x": 1, "ysync": {"userId": "root"}}), now=0)
    assert states(watcher) == {
        1: {"x": 1, "ysync": {"userId": "ada", "name": "Ada", "role": "viewer", "color": "#f00"}}
    }


def test_an_anonymous_connection_keeps_one_user_id() -> None:
    room = Room("r")
    anon, watcher = FakePeer("anon"), FakePeer("w")
    room.join(anon)
    room.join(watcher)
    feed(room, anon, cursor(1, 1, {"x": 1}), now=0)
    feed(room, anon, cursor(1, 2, {"x": 2}), now=1)
    ids = {s["ysync"]["userId"] for s in states(watcher).values()}  # type: ignore[index]
    assert len(ids) == 1 and next(iter(ids)).startswith("anon-")


def test_no_nudge_loop_for_a_dropped_state() -> None:
    # A nudge makes a y-protocols client re-send: never for what we drop anyway.
    room = Room("r", RoomConfig(awareness_state_bytes=100))
    peer = FakePeer("p")
    room.join(peer)
    peer.take()
    feed(room, peer, cursor(1, 0, {"blob": "x" * 200}), now=0)
    assert peer.take() == []
    assert room.config.awareness_stats.too_large == 1


def test_truncated_entries_are_counted() -> None:
    room = Room("r")
    peer = FakePeer("p")
    room.join(peer)
    frame = codec.encode_awareness([AwarenessEntry(i, 1, "{}") for i in range(1, 11)])
    room.receive(peer, codec.decode(frame, max_awareness_entries=3), now=0)
    assert room.config.awareness_stats.truncated == 7
    assert len(room.awareness) == 3


def test_stamp_reads_numbers_as_a_browser_does_and_drops_non_objects() -> None:
    stamp = stamper(identity_fields(Identity(user_id="u")))
    # JSON.parse gives a double for an integer past 2**53: so does the stamped text.
    assert json.loads(stamp('{"n": 123456789012345678901234567890}') or "") == {
        "n": 1.2345678901234568e29,
        "ysync": {"userId": "u", "name": "u", "role": "editor"},
    }
    assert stamp("[1, 2]") is None
    assert stamp('"text"') is None
