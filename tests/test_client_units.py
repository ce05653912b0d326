"""The SDK's pure parts: close-code mapping, backoff, client-side awareness."""

from __future__ import annotations

import json
import random

import pytest

from ysync.clients import AwarenessChange, Backoff, ClientAwareness
from ysync.clients.errors import (
    AuthenticationError,
    ConnectError,
    ConnectionLostError,
    ForbiddenError,
    MalformedMessageError,
    RefusedError,
    TooLargeError,
    close_error,
    handshake_error,
    is_permanent,
)
from ysync.rooms import codec

# -- close codes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "kind", "terminal"),
    [
        (4400, MalformedMessageError, True),
        (4401, AuthenticationError, True),
        (4403, ForbiddenError, True),
        (4413, TooLargeError, True),
        (4404, RefusedError, True),
        (4499, RefusedError, True),
        (4508, ConnectionLostError, False),
        (4529, ConnectionLostError, False),
        (4503, ConnectionLostError, False),
        (1012, ConnectionLostError, False),
        (1013, ConnectionLostError, False),
        (1006, ConnectionLostError, False),
        (1000, ConnectionLostError, False),
    ],
)
def test_close_codes_map_to_typed_errors(code: int, kind: type, terminal: bool) -> None:
    error = close_error(code, "why")
    assert type(error) is kind
    assert error.code == code and error.reason == "why"
    assert error.terminal is terminal is is_permanent(code)
    assert str(code) in str(error) and "why" in str(error)


def test_handshake_statuses_map_like_close_codes() -> None:
    assert isinstance(handshake_error(401, "no token"), AuthenticationError)
    assert isinstance(handshake_error(403), ForbiddenError)
    not_found = handshake_error(404, "Not Found")
    assert isinstance(not_found, RefusedError) and not_found.code == 4404
    assert "HTTP 404: Not Found" in str(not_found)
    assert isinstance(handshake_error(429), ConnectError)  # transient: retried
    assert isinstance(handshake_error(503), ConnectError)


# -- backoff -----------------------------------------------------------------------------


def test_backoff_grows_exponentially_up_to_the_cap_with_jitter() -> None:
    backoff = Backoff(initial=0.1, factor=2.0, max_delay=5.0, jitter=0.5)
    rng = random.Random(7)
    for attempt, ceiling in enumerate([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]):
        delays = [backoff.delay(attempt, rng) for _ in range(200)]
        assert all(ceiling * 0.5 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling * 0.3  # really spread out
    assert backoff.delay(10_000, rng) <= 5.0  # no float overflow


def test_backoff_without_jitter_and_attempt_limits() -> None:
    exact = Backoff(initial=1.0, factor=3.0, max_delay=100.0, jitter=0.0)
    assert [exact.delay(n) for n in range(5)] == [1.0, 3.0, 9.0, 27.0, 81.0]
    assert not Backoff().gives_up(10**6)
    limited = Backoff(max_attempts=2)
    assert [limited.gives_up(n) for n in range(4)] == [False, False, True, True]


@pytest.mark.parametrize(
    "kwargs", [{"initial": -1}, {"factor": 0.5}, {"jitter": 1.5}, {"max_attempts": -1}]
)
def test_backoff_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="Backoff"):
        Backoff(**kwargs)  # type: ignore[arg-type]


# -- client awareness -------------------------------------------------------------------------


def entry(client_id: int, clock: int, state: object) -> codec.AwarenessEntry:
    return codec.AwarenessEntry(client_id, clock, json.dumps(state))


def sent_entries(frames: list[bytes]) -> list[codec.AwarenessEntry]:
    out: list[codec.AwarenessEntry] = []
    for frame in frames:
        message = codec.decode(frame)
        assert isinstance(message, codec.AwarenessUpdate)
        out.extend(message.entries)
    return out


def test_awareness_applies_by_clock_and_reports_changes() -> None:
    sent: list[bytes] = []
    changes: list[AwarenessChange] = []
    aw = ClientAwareness(1, sent.append)
    unsubscribe = aw.observe(changes.append)
    aw.apply((entry(2, 1, {"n": "ada"}),))
    aw.apply((entry(2, 1, {"n": "ada"}),))  # an echo: nothing new
    aw.apply((entry(2, 2, {"n": "ada"}),))  # a renewal: no change reported
    aw.apply((entry(2, 3, {"n": "ada", "cursor": 4}), entry(3, 1, {"n": "bob"})))
    aw.apply((entry(2, 2, {"n": "stale"}),))  # older clock: ignored
    aw.apply((entry(3, 2, None),))
    assert aw.states == {2: {"n": "ada", "cursor": 4}}
    assert changes == [
        AwarenessChange((2,), (), ()),
        AwarenessChange((3,), (2,), ()),
        AwarenessChange((), (), (3,)),
    ]
    unsubscribe()
    aw.apply((entry(4, 1, {}),))
    assert len(changes) == 3
    assert sent == []  # applying remote states sends nothing


def test_awareness_own_state_is_ours_to_say() -> None:
    sent: list[bytes] = []
    aw = ClientAwareness(1, sent.append)
    aw.set_local_state({"n": "me"})
    assert aw.local_state == {"n": "me"} and aw.states[1] == {"n": "me"}
    # The server says we were removed (our previous connection closed): we
    # re-announce at a newer clock instead of vanishing.
    aw.apply((entry(1, 5, None),))
    assert aw.local_state == {"n": "me"}
    assert [(e.client_id, e.clock, e.state) for e in sent_entries(sent)] == [
        (1, 1, '{"n": "me"}'),
        (1, 6, '{"n": "me"}'),
    ]
    removal = aw.removal_frame()
    assert removal is not None and aw.local_state is None
    assert sent_entries([removal]) == [codec.AwarenessEntry(1, 7, "null")]
    assert aw.removal_frame() is None


def test_awareness_forgets_others_on_disconnect_and_when_outdated() -> None:
    aw = ClientAwareness(1, lambda frame: None)
    aw.set_local_state({"me": True})
    aw.apply((entry(2, 9, {"n": 2}),), now=100.0)
    aw.apply((entry(3, 1, {"n": 3}),), now=120.0)
    aw.drop_outdated(now=125.0)
    assert set(aw.states) == {1, 2, 3}
    aw.drop_outdated(now=130.0)  # client 2 was not renewed for 30 s
    assert set(aw.states) == {1, 3}
    aw.drop_remote()
    assert aw.states == {1: {"me": True}}
    # Clocks were forgotten with the states: the next connection's view is accepted.
    aw.apply((entry(2, 1, {"n": "back"}),))
    assert aw.states[2] == {"n": "back"}


def test_awareness_states_are_decoded_on_read_and_cannot_be_changed_from_outside() -> None:
    aw = ClientAwareness(1, lambda frame: None)
    aw.apply((entry(2, 1, {"cursor": [1, 2]}),))
    got = aw.states[2]
    got["cursor"].append(3)  # a private copy
    assert aw.states[2] == {"cursor": [1, 2]}
    assert aw.states == {2: {"cursor": [1, 2]}} and 2 in aw.states and len(aw.states) == 1
    assert "cursor" in repr(aw.states)
    with pytest.raises(TypeError):
        aw.states[3] = {}  # type: ignore[index]
