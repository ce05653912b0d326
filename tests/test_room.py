"""The room: frames from peers in, frames to peers out (via `Peer.send`), origins to listeners.

Sans-I/O: a `FakePeer` records what the room sends; tests decode those frames with
the codec and check documents with real pycrdt docs. No sockets, no sleeps.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Array, Awareness, Doc, Map, Text

from ysync.rooms import codec
from ysync.rooms.codec import (
    Auth,
    AwarenessEntry,
    AwarenessUpdate,
    ProtocolError,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
)
from ysync.rooms.hooks import Identity
from ysync.rooms.room import Room, RoomConfig, Source

from support.fakes import FakePeer, feed

ALICE = '{"user":{"name":"alice"}}'
BOB = '{"user":{"name":"bob"}}'


def connect(
    room: Room, name: str, *, read_only: bool = False, sync: bool = True, user: str | None = None
) -> FakePeer:
    """Join a peer; with `sync`, complete its handshake (its SyncStep1 answered)."""
    peer = FakePeer(name, Identity(user_id=user) if user else None)
    room.join(peer, read_only=read_only)
    if sync:
        feed(room, peer, codec.encode_sync_step1(b"\x00"), now=0)
    peer.take()
    return peer


def edit(client_id: int, text: str, *, base: bytes | None = None, at: int = 0) -> bytes:
    """An update from a client `client_id` inserting `text` into the shared Text "t"."""
    doc: Doc = Doc(client_id=client_id)
    if base is not None:
        doc.apply_update(base)
    before = doc.get_state()
    doc.get("t", type=Text).insert(at, text)
    return doc.get_update(before)


def text_of(*updates: bytes) -> str:
    doc: Doc = Doc()
    for update in updates:
        doc.apply_update(update)
    return str(doc.get("t", type=Text))


def room_text(room: Room) -> str:
    return str(room.doc.get("t", type=Text))


def awareness(*entries: tuple[int, int, str | None]) -> bytes:
    return codec.encode_awareness(
        [AwarenessEntry(c, k, "null" if s is None else s) for c, k, s in entries]
    )


def aw_msg(*entries: tuple[int, int, str | None]) -> AwarenessUpdate:
    return AwarenessUpdate(
        tuple(AwarenessEntry(c, k, "null" if s is None else s) for c, k, s in entries)
    )


class Recorder:
    """Update and awareness listener that records its calls."""

    def __init__(self, room: Room) -> None:
        self.updates: list[tuple[Room, bytes, Any]] = []
        self.awareness: list[tuple[Room, list[AwarenessEntry], Any]] = []
        room.update_listeners.append(
            lambda r, delta, origin: self.updates.append((r, delta, origin))
        )
        room.awareness_listeners.append(
            lambda r, entries, origin: self.awareness.append((r, entries, origin))
        )

    @property
    def origins(self) -> list[Any]:
        return [origin for _, _, origin in self.updates]


class AwarenessClient:
    """The awareness half of a y-websocket provider, modelled with pycrdt's port of
    y-protocols/awareness.js: it sends every change it applies, remote ones included."""

    def __init__(
        self, room: Room, name: str, *, client_id: int, awareness: Awareness | None = None
    ) -> None:
        self.peer = connect(room, name)
        self.awareness = awareness or Awareness(Doc(client_id=client_id))
        self.outbox: list[bytes] = []
        self.awareness.observe(self._on_change)

    def frame(self, client_ids: list[int]) -> bytes:
        return b"\x01" + codec.var_bytes(self.awareness.encode_awareness_update(client_ids))

    def _on_change(self, topic: str, event: tuple[dict[str, list[int]], Any]) -> None:
        if topic == "update":
            changes, _ = event
            self.outbox.append(
                self.frame(changes["added"] + changes["updated"] + changes["removed"])
            )

    def deliver(self) -> bool:
        """Apply what the room sent; True if there was anything."""
        frames = self.peer.drain()
        for frame in frames:
            if isinstance(codec.decode(frame), AwarenessUpdate):
                self.awareness.apply_awareness_update(awareness_payload(frame), "remote")
        return bool(frames)


def awareness_payload(frame: bytes) -> bytes:
    """The awareness update inside a (well-formed) awareness frame."""
    end_of_length = 1
    while frame[end_of_length] & 0x80:
        end_of_length += 1
    return frame[end_of_length + 1 :]


def pump(room: Room, *clients: AwarenessClient) -> None:
    """Deliver frames both ways until nobody has anything left to say."""
    for _ in range(50):
        busy = False
        for client in clients:
            busy |= client.deliver()
            frames, client.outbox[:] = list(client.outbox), []
            for frame in frames:
                feed(room, client.peer, frame, now=0)
            busy |= bool(frames)
        if not busy:
            return
    raise AssertionError("awareness traffic never came to rest")


@pytest.fixture
def room() -> Room:
    # States relayed as sent, to check the relay byte for byte (stamping: test_room_identity.py).
    return Room("notes/42", RoomConfig(stamp_identity=False))


# -- joining and the sync handshake ------------------------------------------------------------


def test_join_sends_sync_step1_with_the_room_state(room: Room) -> None:
    room.load([edit(1, "hello")])
    peer = FakePeer("a")
    room.join(peer)
    assert peer.messages() == [SyncStep1(room.doc.get_state())]
    assert not room.is_empty
    assert room.peers[peer].synced is False
    assert room.peers[peer].read_only is False


def test_join_sends_sync_step1_then_the_awareness_states(room: Room) -> None:
    a = connect(room, "a")
    feed(room, a, awareness((1, 1, ALICE), (2, 3, BOB)), now=0)
    feed(room, a, awareness((2, 4, None)), now=0)  # removed states are not sent
    b = FakePeer("b")
    room.join(b)
    assert b.messages() == [SyncStep1(room.doc.get_state()), aw_msg((1, 1, ALICE))]


def test_empty_room(room: Room) -> None:
    assert room.is_empty
    peer = connect(room, "a")
    assert not room.is_empty
    room.leave(peer)
    assert room.is_empty


def test_sync_step1_is_answered_with_sync_step2_holding_the_whole_document(room: Room) -> None:
    first = edit(1, "hello")
    room.load([first, edit(2, " world", base=first, at=5)])
    peer = FakePeer("a")
    room.join(peer)
    peer.take()
    feed(room, peer, codec.encode_sync_step1(Doc().get_state()))
    (reply,) = peer.messages()
    assert isinstance(reply, SyncStep2)
    assert text_of(reply.update) == "hello world"
    assert room.peers[peer].synced


def test_sync_step2_holds_only_what_the_client_lacks(room: Room) -> None:
    first = edit(1, "hello")
    room.load([first, edit(2, " world", base=first, at=5)])
    client: Doc = Doc()
    client.apply_update(first)
    peer = connect(room, "a", sync=False)
    feed(room, peer, codec.encode_sync_step1(client.get_state()))
    (reply,) = peer.messages()
    assert isinstance(reply, SyncStep2)
    assert len(reply.update) < len(room.doc.get_update())
    client.apply_update(reply.update)
    assert str(client.get("t", type=Text)) == "hello world"


def test_sync_step2_of_an_empty_room(room: Room) -> None:
    peer = connect(room, "a", sync=False)
    feed(room, peer, codec.encode_sync_step1(b"\x00"))
    (reply,) = peer.messages()
    assert isinstance(reply, SyncStep2)
    assert text_of(reply.update) == ""


def test_client_sync_step2_uploads_offline_edits(room: Room) -> None:
    # The client's reply to our SyncStep1 carries its offline edits.
    b = connect(room, "b")
    a = connect(room, "a", sync=False)
    feed(room, a, codec.encode_sync_step2(edit(7, "offline")))
    assert room_text(room) == "offline"
    (message,) = b.messages()
    assert isinstance(message, SyncUpdate)
    assert text_of(message.update) == "offline"
    assert a.sent == []


def test_both_directions_of_the_handshake(room: Room) -> None:
    room.load([edit(1, "server ")])
    client: Doc = Doc(client_id=9)
    client.get("t", type=Text).insert(0, "client ")
    peer = FakePeer("a")
    room.join(peer)
    (step1,) = peer.take()
    assert isinstance(step1, SyncStep1)
    feed(room, peer, codec.encode_sync_step2(client.get_update(step1.state_vector)))
    feed(room, peer, codec.encode_sync_step1(client.get_state()))
    (step2,) = peer.take()
    assert isinstance(step2, SyncStep2)
    client.apply_update(step2.update)
    assert str(client.get("t", type=Text)) == room_text(room)
    assert sorted(room_text(room)) == sorted("server client ")


# -- document updates --------------------------------------------------------------------------


def test_update_reaches_synced_peers_as_one_frame_and_not_its_sender(room: Room) -> None:
    a, b, c = connect(room, "a"), connect(room, "b"), connect(room, "c")
    update = edit(1, "hi")
    feed(room, a, codec.encode_update(update))
    assert a.sent == []
    (frame_b,) = b.sent
    (_frame_c,) = c.sent
    assert b.raw[0] is c.raw[0]  # one message object: encoded once per codec
    message = codec.decode(frame_b)
    assert isinstance(message, SyncUpdate)
    assert text_of(message.update) == "hi"
    assert room_text(room) == "hi"


def test_unsynced_peer_gets_no_updates_but_gets_awareness(room: Room) -> None:
    a = connect(room, "a")
    waiting = connect(room, "waiting", sync=False)
    feed(room, a, codec.encode_update(edit(1, "hi")))
    assert waiting.sent == []
    feed(room, a, awareness((1, 1, ALICE)), now=0)
    assert waiting.messages() == [aw_msg((1, 1, ALICE))]
    # Once it syncs, its SyncStep2 carries what it missed, and updates flow.
    waiting.take()
    feed(room, waiting, codec.encode_sync_step1(b"\x00"))
    (reply,) = waiting.take()
    assert isinstance(reply, SyncStep2)
    assert text_of(reply.update) == "hi"
    feed(room, a, codec.encode_update(edit(2, "!", base=room.doc.get_update(), at=2)))
    (message,) = waiting.take()
    assert isinstance(message, SyncUpdate)


def test_duplicate_update_is_not_rebroadcast(room: Room) -> None:
    a, b = connect(room, "a"), connect(room, "b")
    recorder = Recorder(room)
    update = edit(1, "once")
    feed(room, a, codec.encode_update(update))
    b.take()
    feed(room, a, codec.encode_update(update))
    feed(room, b, codec.encode_update(update))
    feed(room, b, codec.encode_sync_step2(update))
    assert a.sent == [] and b.sent == []
    assert len(recorder.updates) == 1
    assert room_text(room) == "once"


def test_only_the_new_part_of_an_update_is_broadcast(room: Room) -> None:
    a, b = connect(room, "a"), connect(room, "b")
    first = edit(1, "abc")
    feed(room, a, codec.encode_update(first))
    b.take()
    second = edit(1, "def", base=first, at=3)
    merged: Doc = Doc()
    merged.apply_update(first)
    merged.apply_update(second)
    feed(room, a, codec.encode_update(merged.get_update()))  # old and new together
    (message,) = b.messages()
    assert isinstance(message, SyncUpdate)
    assert len(message.update) < len(merged.get_update())
    assert text_of(first, message.update) == "abcdef"


@pytest.mark.parametrize("encode", [codec.encode_update, codec.encode_sync_step2])
@pytest.mark.parametrize("read_only", [False, True])
def test_empty_update_is_ignored(room: Room, encode: Any, read_only: bool) -> None:
    # What a client with nothing new sends as its SyncStep2: not an edit, not denied.
    a = connect(room, "a", read_only=read_only)
    b = connect(room, "b")
    recorder = Recorder(room)
    feed(room, a, encode(b"\x00\x00"))
    assert a.sent == [] and b.sent == []
    assert recorder.updates == []


def test_read_only_peer_cannot_edit_and_is_told_so(room: Room) -> None:
    room.load([edit(1, "keep")])
    ro = connect(room, "ro", read_only=True)
    b = connect(room, "b")
    recorder = Recorder(room)
    before = room.doc.get_update()
    for frame in (
        codec.encode_update(edit(2, "vandal")),
        codec.encode_sync_step2(edit(3, "offline")),
    ):
        feed(room, ro, frame)
        (denied,) = ro.take()
        assert isinstance(denied, Auth)
        assert denied.kind == codec.AUTH_PERMISSION_DENIED
        assert denied.reason
    assert room.doc.get_update() == before
    assert room_text(room) == "keep"
    assert b.sent == []
    assert recorder.updates == []


def test_read_only_peer_still_syncs_and_receives_updates(room: Room) -> None:
    room.load([edit(1, "doc")])
    ro = connect(room, "ro", read_only=True, sync=False)
    feed(room, ro, codec.encode_sync_step1(b"\x00"))
    (reply,) = ro.take()
    assert isinstance(reply, SyncStep2)
    assert text_of(reply.update) == "doc"
    a = connect(room, "a")
    feed(room, a, codec.encode_update(edit(2, "more", base=room.doc.get_update())))
    (message,) = ro.messages()
    assert isinstance(message, SyncUpdate)


def test_read_only_peer_may_share_awareness(room: Room) -> None:
    # Presence is a separate right from document write.
    ro = connect(room, "ro", read_only=True)
    b = connect(room, "b")
    feed(room, ro, awareness((5, 1, ALICE)), now=0)
    assert b.messages() == [aw_msg((5, 1, ALICE))]


def _bad_updates() -> list[tuple[str, bytes]]:
    valid = edit(1, "hello")
    return [
        ("garbage", b"\xff\xff\xff"),
        ("truncated", valid[:-3]),
        ("one byte", b"\x01"),
        ("empty", b""),
        ("huge struct count", b"\x01" + b"\xff" * 7 + b"\x0f"),
    ]


@pytest.mark.parametrize(
    "bad", [u for _, u in _bad_updates()], ids=[name for name, _ in _bad_updates()]
)
def test_malformed_update_raises_and_changes_nothing(room: Room, bad: bytes) -> None:
    room.load([edit(1, "safe")])
    a, b = connect(room, "a"), connect(room, "b")
    recorder = Recorder(room)
    before = room.doc.get_update()
    with pytest.raises(ProtocolError):
        feed(room, a, codec.encode_update(bad))
    assert room.doc.get_update() == before
    assert a.sent == [] and b.sent == []
    assert recorder.updates == []
    # The room still works, and blames the next edit on the right origin.
    feed(room, b, codec.encode_update(edit(2, "still ", base=before)))
    assert room_text(room) == "still safe"
    assert recorder.origins == [b]


@pytest.mark.parametrize(
    "frame",
    [b"", b"\x04", b"\x00\x02\x09", codec.encode_sync_step1(b"\x01")],
    ids=["empty", "unknown type", "truncated", "bad state vector"],
)
def test_malformed_frame_raises_and_changes_nothing(room: Room, frame: bytes) -> None:
    a, b = connect(room, "a"), connect(room, "b")
    with pytest.raises(ProtocolError):
        feed(room, a, frame)
    assert a.sent == [] and b.sent == []
    assert room.peers[a].synced


# An update the CRDT rejects half-way (found by fuzzing): it decodes, references a
# block of the room's document, then fails integration with
# "block parent <2#2> must be deleted or shared ref type".
HALF_APPLYING_BASE_CLIENT = 1
HALF_APPLYING = (
    b"\x01\x03\x02\x81\x00\xc4\x01\x04\x01\x05\x02XY'\x01\x01m\x01q\x01(\x00\x02\x02\x01a\x01|?"
    b"\x80\x00\x00\x01\x01\x01\x00\x03"
)


def half_applying_base() -> bytes:
    doc: Doc = Doc(client_id=HALF_APPLYING_BASE_CLIENT)
    text = doc.get("t", type=Text)
    text += "hello world"
    doc.get("m", type=Map)["k"] = {"x": [1, 2]}
    doc.get("a", type=Array).append("z")
    del text[0:3]
    return doc.get_update()


def test_update_rejected_half_way_is_propagated_so_nobody_diverges(room: Room) -> None:
    # yrs integrates part of this update before rejecting it and cannot roll back:
    # the part that stuck is sent and stored like a server edit.
    base = half_applying_base()
    room.load([base])
    a, b = connect(room, "a"), connect(room, "b")
    recorder = Recorder(room)
    with pytest.raises(ProtocolError):
        feed(room, a, codec.encode_update(HALF_APPLYING))
    assert b.sent and recorder.updates  # something did stick
    replica = Doc()
    replica.apply_update(base)
    for frame in b.sent:
        message = codec.decode(frame)
        assert isinstance(message, codec.SyncUpdate)
        replica.apply_update(message.update)
    assert replica.get_state() == room.doc.get_state()
    assert [origin for _, _, origin in recorder.updates] == [Source.SERVER] * len(recorder.updates)
    stored = Doc()
    stored.apply_update(base)
    for _, delta, _ in recorder.updates:
        stored.apply_update(delta)
    assert stored.get_state() == room.doc.get_state()


def test_auth_message_from_a_client_is_ignored(room: Room) -> None:
    a, b = connect(room, "a"), connect(room, "b")
    feed(room, a, codec.encode_permission_denied("whatever"))
    assert a.sent == [] and b.sent == []


# -- origins and listeners ---------------------------------------------------------------------


def test_update_listeners_get_room_delta_and_the_peer_as_origin(room: Room) -> None:
    a = connect(room, "a")
    recorder = Recorder(room)
    update = edit(1, "hi")
    feed(room, a, codec.encode_update(update))
    ((r, delta, origin),) = recorder.updates
    assert r is room
    assert origin is a
    assert text_of(delta) == "hi"


def test_host_app_edits_are_broadcast_with_origin_server(room: Room) -> None:
    a, b = connect(room, "a"), connect(room, "b")
    waiting = connect(room, "waiting", sync=False)
    recorder = Recorder(room)
    text = room.doc.get("t", type=Text)
    with room.doc.transaction():
        text.insert(0, "from ")
        text.insert(5, "the app")
    (frame_a,) = a.sent
    (_frame_b,) = b.sent
    assert a.raw[0] is b.raw[0]  # one message object: encoded once per codec
    message = codec.decode(frame_a)
    assert isinstance(message, SyncUpdate)
    assert text_of(message.update) == "from the app"
    assert waiting.sent == []
    ((r, delta, origin),) = recorder.updates  # one transaction, one delta
    assert r is room and origin is Source.SERVER
    assert delta == message.update


def test_host_app_edits_of_maps_and_arrays(room: Room) -> None:
    a = connect(room, "a")
    room.doc.get("m", type=Map)["k"] = "v"
    room.doc.get("arr", type=Array).append(1)
    client: Doc = Doc()
    for message in a.messages():
        assert isinstance(message, SyncUpdate)
        client.apply_update(message.update)
    assert client.get("m", type=Map).to_py() == {"k": "v"}
    assert client.get("arr", type=Array).to_py() == [1.0]


def test_load_applies_with_origin_store_and_broadcasts_nothing(room: Room) -> None:
    a = connect(room, "a")
    waiting = connect(room, "waiting", sync=False)
    recorder = Recorder(room)
    first = edit(1, "stored")
    room.load([first, edit(2, "!", base=first, at=6)])
    assert room_text(room) == "stored!"
    assert a.sent == [] and waiting.sent == []
    assert recorder.origins == [Source.STORE, Source.STORE]


def test_load_of_an_empty_list(room: Room) -> None:
    recorder = Recorder(room)
    room.load([])
    assert recorder.updates == []


def test_load_of_a_malformed_update_raises(room: Room) -> None:
    with pytest.raises(ProtocolError):
        room.load([b"\xff\xff"])


def test_updates_from_other_nodes_reach_every_synced_peer(room: Room) -> None:
    a, b = connect(room, "a"), connect(room, "b")
    waiting = connect(room, "waiting", sync=False)
    recorder = Recorder(room)
    room.apply_update(edit(1, "via bus"), Source.BUS)
    assert len(a.sent) == len(b.sent) == 1
    assert a.raw[0] is b.raw[0]  # one message object: each codec encodes it once
    assert waiting.sent == []
    assert recorder.origins == [Source.BUS]


def test_origin_is_reset_after_each_update(room: Room) -> None:
    a = connect(room, "a")
    recorder = Recorder(room)
    feed(room, a, codec.encode_update(edit(1, "a")))
    with pytest.raises(ProtocolError):
        feed(room, a, codec.encode_update(b"\xff"))
    room.load([edit(2, "s")])
    room.doc.get("t", type=Text).insert(0, "app")
    assert recorder.origins == [a, Source.STORE, Source.SERVER]


def test_a_failing_listener_does_not_stop_broadcast_or_other_listeners(
    room: Room, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = connect(room, "a"), connect(room, "b")

    def broken(*_: Any) -> None:
        raise RuntimeError("listener bug")

    room.update_listeners.append(broken)
    room.awareness_listeners.append(broken)
    recorder = Recorder(room)
    with caplog.at_level(logging.ERROR, logger="ysync.room"):
        feed(room, a, codec.encode_update(edit(1, "x")))
        feed(room, a, awareness((1, 1, ALICE)), now=0)
    assert len(b.sent) == 2
    assert len(recorder.updates) == 1 and len(recorder.awareness) == 1
    assert [r.getMessage() for r in caplog.records] == [
        "update listener failed",
        "awareness listener failed",
    ]


def test_close_stops_broadcasting_and_notifying(room: Room) -> None:
    a = connect(room, "a")
    recorder = Recorder(room)
    room.close()
    room.doc.get("t", type=Text).insert(0, "after close")
    assert a.sent == []
    assert recorder.updates == []


# -- awareness ---------------------------------------------------------------------------------


def test_awareness_goes_to_others_but_not_back(room: Room) -> None:
    a, b, c = connect(room, "a"), connect(room, "b"), connect(room, "c")
    recorder = Recorder(room)
    feed(room, a, awareness((1, 1, ALICE)), now=0)
    assert a.messages() == [aw_msg((1, 1, None))]  # only the nudge (see below), not its state
    (frame_b,) = b.sent
    (_frame_c,) = c.sent
    assert b.raw[0] is c.raw[0]  # one message object: encoded once per codec
    assert codec.decode(frame_b) == aw_msg((1, 1, ALICE))
    ((r, entries, origin),) = recorder.awareness
    assert r is room and origin is a
    assert entries == [AwarenessEntry(1, 1, ALICE)]


def test_a_changed_state_is_not_echoed_to_its_sender(room: Room) -> None:
    a, b = connect(room, "a"), connect(room, "b")
    feed(room, a, awareness((1, 1, ALICE)), now=0)
    a.take()
    feed(room, a, awareness((1, 2, BOB)), now=1)
    assert a.sent == []
    assert b.messages() == [aw_msg((1, 1, ALICE)), aw_msg((1, 2, BOB))]


def test_a_pure_renewal_is_echoed_to_its_sender_too(room: Room) -> None:
    # The echo is what keeps a lone client's 30 s silence timer from firing.
    a, b = connect(room, "a"), connect(room, "b")
    feed(room, a, awareness((1, 1, ALICE)), now=0)
    a.take()
    b.take()
    feed(room, a, awareness((1, 2, ALICE)), now=15)
    assert a.messages() == [aw_msg((1, 2, ALICE))]
    assert b.messages() == [aw_msg((1, 2, ALICE))]
    assert a.raw[0] is b.raw[0]  # one message object: each codec encodes it once


def test_a_lone_client_gets_its_renewal_echoed(room: Room) -> None:
    a = connect(room, "a")
    feed(room, a, awareness((1, 1, ALICE)), now=0)
    a.take()
    feed(room, a, awareness((1, 3, BOB)), now=10)
    assert a.sent == []  # a change: nobody else to tell
    feed(room, a, awareness((1, 4, BOB)), now=15)
    assert a.messages() == [aw_msg((1, 4, BOB))]


def test_a_new_client_is_nudged_so_it_rebroadcasts_at_a_newer_clock(room: Room) -> None:
    # Others may already know clock 0 (a reconnect to a reloaded room): only the
    # nudged client's re-broadcast at clock 1 is sure to reach them.
    a, b = connect(room, "a"), connect(room, "b")
    feed(room, a, awareness((1, 0, "{}")), now=0)
    assert a.messages() == [aw_msg((1, 0, None))]
    assert b.messages() == [aw_msg((1, 0, "{}"))]


def test_a_reconnecting_client_is_nudged_past_its_removal(room: Room) -> None:
    old, b = connect(room, "old"), connect(room, "b")
    feed(room, old, awareness((1, 4, ALICE)), now=0)
    room.leave(old)  # removal at clock 5
    new = connect(room, "new")
    b.take()
    feed(room, new, awareness((1, 4, ALICE)), now=1)  # its unchanged clock
    assert new.messages() == [aw_msg((1, 5, None))]
    assert b.sent == []


def test_reconnect_with_a_y_protocols_client(room: Room) -> None:
    """The nudge as pycrdt's port of awareness.js answers it: the client reappears at once."""
    watcher = AwarenessClient(room, "watcher", client_id=100)
    watcher.awareness.set_local_state({"user": "bob"})
    first = AwarenessClient(room, "first", client_id=7)
    first.awareness.set_local_state({"user": "alice"})
    pump(room, watcher, first)
    assert watcher.awareness.states.get(7) == {"user": "alice"}
    assert first.awareness.states.get(100) == {"user": "bob"}
    room.leave(first.peer)
    pump(room, watcher)
    assert 7 not in watcher.awareness.states
    # Same client (same awareness clock) on a new connection: announces its state again.
    again = AwarenessClient(room, "again", client_id=7, awareness=first.awareness)
    again.outbox.append(again.frame([7]))
    pump(room, watcher, again)
    assert watcher.awareness.states.get(7) == {"user": "alice"}
    assert sorted(e.client_id for e in room.awareness.states()) == [7, 100]
    # (pump() also checked that every echo died at the room: the exchange came to rest.)


def test_echo_of_a_known_awareness_entry_produces_no_traffic(room: Room) -> None:
    a, b, c = connect(room, "a"), connect(room, "b"), connect(room, "c")
    recorder = Recorder(room)
    feed(room, a, awareness((1, 1, ALICE)), now=0)
    for peer in (a, b, c):
        peer.take()
    # Clients re-broadcast every awareness change they receive.
    feed(room, b, awareness((1, 1, ALICE)), now=1)
    feed(room, c, awareness((1, 1, ALICE)), now=1)
    feed(room, b, awareness((1, 0, BOB)), now=1)  # and stale ones
    assert a.sent == [] and b.sent == [] and c.sent == []
    assert len(recorder.awareness) == 1


def test_only_the_changed_entries_are_broadcast(room: Room) -> None:
    a, b = connect(room, "a"), connect(room, "b")
    feed(room, a, awareness((1, 1, ALICE), (2, 1, BOB)), now=0)
    b.take()
    feed(room, a, awareness((1, 1, ALICE), (2, 2, ALICE)), now=1)
    assert b.messages() == [aw_msg((2, 2, ALICE))]


def test_awareness_removal_by_a_client(room: Room) -> None:
    a, b = connect(room, "a"), connect(room, "b")
    feed(room, a, awareness((1, 1, ALICE)), now=0)
    b.take()
    feed(room, a, awareness((1, 1, None)), now=1)
    assert b.messages() == [aw_msg((1, 1, None))]
    assert len(room.awareness) == 0
    room.leave(a)
    assert b.messages() == [aw_msg((1, 1, None))]  # nothing more to remove


def test_leave_broadcasts_the_removal_of_the_states_the_peer_owned(room: Room) -> None:
    a, b, c = connect(room, "a"), connect(room, "b"), connect(room, "c")
    feed(room, a, awareness((1, 4, ALICE)), now=0)
    feed(room, b, awareness((2, 7, BOB)), now=0)
    for peer in (a, b, c):
        peer.take()
    recorder = Recorder(room)
    room.leave(a)
    assert a not in room.peers
    assert a.sent == []
    assert b.messages() == [aw_msg((1, 5, None))]
    assert b.raw[0] is c.raw[0]  # one message object: each codec encodes it once
    ((_, entries, origin),) = recorder.awareness
    assert origin is a
    assert entries == [AwarenessEntry(1, 5, "null")]
    assert [e.client_id for e in room.awareness.states()] == [2]


def test_leave_reaches_unsynced_peers_too(room: Room) -> None:
    a = connect(room, "a")
    feed(room, a, awareness((1, 4, ALICE)), now=0)
    waiting = connect(room, "waiting", sync=False)
    room.leave(a)
    assert waiting.messages() == [aw_msg((1, 5, None))]


def test_leave_without_awareness_sends_nothing(room: Room) -> None:
    a, b = connect(room, "a"), connect(room, "b")
    recorder = Recorder(room)
    room.leave(a)
    assert b.sent == []
    assert recorder.awareness == []


def test_leave_of_an_unknown_or_departed_peer_is_a_no_op(room: Room) -> None:
    a, b = connect(room, "a"), connect(room, "b")
    feed(room, a, awareness((1, 4, ALICE)), now=0)
    b.take()
    room.leave(FakePeer("stranger"))
    room.leave(a)
    room.leave(a)
    assert len(b.sent) == 1


def test_awareness_moved_to_a_new_connection_survives_the_old_one(room: Room) -> None:
    # The same verified user reloading before its old socket was noticed dead.
    old, b = connect(room, "old", user="ada"), connect(room, "b")
    feed(room, old, awareness((1, 4, ALICE)), now=0)
    new = connect(room, "new", user="ada")
    feed(room, new, awareness((1, 5, ALICE)), now=1)
    b.take()
    room.leave(old)
    assert b.sent == []
    room.leave(new)
    assert b.messages() == [aw_msg((1, 6, None))]


def test_expire_awareness(room: Room) -> None:
    a, b = connect(room, "a"), connect(room, "b")
    feed(room, a, awareness((1, 4, ALICE)), now=100)
    feed(room, b, awareness((2, 1, BOB)), now=120)
    a.take()
    b.take()
    recorder = Recorder(room)
    room.expire_awareness(now=129)
    assert a.sent == [] and b.sent == []
    room.expire_awareness(now=130)
    assert a.messages() == [aw_msg((1, 5, None))]  # everyone, the owner included
    assert a.raw[0] is b.raw[0]  # one message object: each codec encodes it once
    ((_, entries, origin),) = recorder.awareness
    assert origin is Source.SERVER
    assert entries == [AwarenessEntry(1, 5, "null")]
    room.leave(a)  # its state already expired: no second removal
    assert len(b.sent) == 1


def test_awareness_timeout_is_configurable() -> None:
    room = Room("r", RoomConfig(awareness_timeout=5))
    a = connect(room, "a")
    feed(room, a, awareness((1, 1, ALICE)), now=0)
    a.take()
    room.expire_awareness(now=4.9)
    assert a.sent == []
    room.expire_awareness(now=5)
    assert a.messages() == [aw_msg((1, 2, None))]


def test_query_awareness_gets_the_states(room: Room) -> None:
    a, b = connect(room, "a"), connect(room, "b")
    feed(room, a, awareness((1, 1, ALICE), (3, 1, None)), now=0)
    feed(room, b, awareness((2, 9, BOB)), now=0)
    a.take()
    b.take()
    feed(room, b, codec.encode_query_awareness())
    assert a.sent == []
    (reply,) = b.messages()
    assert isinstance(reply, AwarenessUpdate)
    assert sorted(reply.entries, key=lambda e: e.client_id) == [
        AwarenessEntry(1, 1, ALICE),
        AwarenessEntry(2, 9, BOB),
    ]


def test_query_awareness_of_an_empty_room(room: Room) -> None:
    a = connect(room, "a")
    feed(room, a, codec.encode_query_awareness())
    assert a.messages() == [AwarenessUpdate(())]


def test_awareness_from_other_nodes_reaches_everyone_and_has_no_owner(room: Room) -> None:
    a, b = connect(room, "a"), connect(room, "b")
    recorder = Recorder(room)
    room.apply_awareness((AwarenessEntry(8, 1, ALICE),), Source.BUS, now=0)
    assert a.messages() == b.messages() == [aw_msg((8, 1, ALICE))]
    assert recorder.awareness[0][2] is Source.BUS
    a.take()
    b.take()
    room.leave(a)
    assert b.sent == []  # not a's to remove


def test_receive_without_now_uses_the_monotonic_clock(room: Room) -> None:
    a = connect(room, "a")
    before = time.monotonic()
    feed(room, a, awareness((1, 1, ALICE)))
    room.expire_awareness(now=before + 29)
    assert len(room.awareness) == 1
    room.expire_awareness(now=time.monotonic() + 30)
    assert len(room.awareness) == 0


# -- convergence and fuzzing -------------------------------------------------------------------


def replay(peer: FakePeer, *own: bytes) -> Doc:
    """The document a client builds from its own edits and everything the room sent it."""
    doc: Doc = Doc()
    for update in own:
        doc.apply_update(update)
    for message in peer.messages():
        if isinstance(message, SyncStep2 | SyncUpdate):
            doc.apply_update(message.update)
    return doc


def test_every_peer_converges_to_the_room_document(room: Room) -> None:
    room.load([edit(1, "base")])
    a = FakePeer("a")
    b = FakePeer("b")
    room.join(a)
    room.join(b)
    feed(room, a, codec.encode_sync_step1(b"\x00"))
    edit_a = edit(2, "A", base=room.doc.get_update())
    feed(room, a, codec.encode_update(edit_a))
    edit_b = edit(3, "B")
    feed(room, b, codec.encode_sync_step2(edit_b))  # offline edit, not yet synced
    room.doc.get("t", type=Text).insert(0, "S")
    feed(room, b, codec.encode_sync_step1(b"\x00"))
    room.apply_update(edit(4, "N", base=room.doc.get_update()), Source.BUS)
    expected = room_text(room)
    assert sorted(expected) == sorted("baseABSN")
    assert str(replay(a, edit_a).get("t", type=Text)) == expected
    assert str(replay(b, edit_b).get("t", type=Text)) == expected


def test_out_of_order_updates_are_sent_once_the_gap_is_filled(room: Room) -> None:
    # yrs integrates an update past a gap in its client's clocks without advancing
    # the state vector; the room sends no update until the missing one arrives,
    # and asks its peers (once) for what its state vector lacks.
    room.load([edit(1, "hello world")])
    client: Doc = Doc(client_id=2)
    client.apply_update(room.doc.get_update())
    updates: list[bytes] = []
    client.observe(lambda event: updates.append(event.update))
    text = client.get("t", type=Text)
    text.insert(2, "XY")
    text.insert(0, "Q")  # these two refer only to the room's own text,
    text.insert(13, "Z")  # not to the first update
    a, b = connect(room, "a"), connect(room, "b")
    recorder = Recorder(room)
    feed(room, a, codec.encode_update(updates[1]))
    feed(room, a, codec.encode_update(updates[2]))
    assert [type(m) for m in b.take()] == [codec.SyncStep1]
    assert recorder.updates == []
    assert len(room.pending) == 2
    feed(room, a, codec.encode_update(updates[0]))
    (message,) = b.messages()
    assert isinstance(message, SyncUpdate)
    assert text_of(edit(1, "hello world"), message.update) == "QheXYllo worlZd"
    assert room_text(room) == str(text) == "QheXYllo worlZd"
    ((_, delta, origin),) = recorder.updates
    assert delta == message.update and origin is a
    assert not room.pending


BASE = edit(1, "hello world")
FRAMES = [
    codec.encode_update(edit(2, "XY", base=BASE, at=2)),
    codec.encode_sync_step2(edit(3, "offline")),
    codec.encode_sync_step1(Doc().get_state()),
    awareness((1, 3, ALICE), (2, 1, None)),
    codec.encode_query_awareness(),
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    frame = bytearray(draw(st.sampled_from(FRAMES)))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        pos = draw(st.integers(min_value=0, max_value=max(len(frame) - 1, 0)))
        op = draw(st.sampled_from(["set", "insert", "delete"]))
        if op == "set" and frame:
            frame[pos] = draw(st.integers(min_value=0, max_value=255))
        elif op == "insert":
            frame.insert(pos, draw(st.integers(min_value=0, max_value=255)))
        elif frame:
            del frame[pos]
    return bytes(frame)


@given(st.lists(mutated(), min_size=1, max_size=4))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_frames_either_apply_or_raise_protocol_error(frames: list[bytes]) -> None:
    room = Room("fuzz")
    room.load([BASE])
    a, b = connect(room, "a"), connect(room, "b")
    for frame in frames:
        with contextlib.suppress(ProtocolError):
            feed(room, a, frame, now=0)
    # Whatever b was sent decodes, and never includes an empty update.
    for message in b.messages():
        # (a SyncStep1: the room asks for what an unintegrable update lacks)
        assert isinstance(message, SyncUpdate | AwarenessUpdate | SyncStep1)
        if isinstance(message, SyncUpdate):
            assert message.update != b"\x00\x00"
