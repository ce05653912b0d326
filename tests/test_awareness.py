"""Server-side awareness state: apply by clock, owners, removal, expiry (y-protocols semantics).

Pure: time is passed in as `now`, owners are plain strings standing in for connections.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ysync.rooms.awareness import UNBOUNDED, AwarenessPolicy, AwarenessState
from ysync.rooms.codec import AwarenessEntry

ALICE = '{"user":"alice"}'
ALICE_MOVED = '{"user":"alice","cursor":3}'
BOB = '{"user":"bob"}'


def entry(client_id: int, clock: int, state: str | None) -> AwarenessEntry:
    return AwarenessEntry(client_id, clock, "null" if state is None else state)


def present(aw: AwarenessState) -> dict[int, tuple[int, str]]:
    return {e.client_id: (e.clock, e.state) for e in aw.states()}


def _apply(
    aw: AwarenessState,
    entries: list[AwarenessEntry],
    owner: str,
    now: float,
    policy: AwarenessPolicy = UNBOUNDED,
) -> tuple[list[AwarenessEntry], bool]:
    result = aw.apply(entries, owner, now, policy)
    return result.entries, result.renewals_only


@pytest.fixture
def aw() -> AwarenessState:
    return AwarenessState(timeout=30.0)


# -- apply by clock ----------------------------------------------------------------------------


def test_new_client_is_applied(aw: AwarenessState) -> None:
    applied, renewals_only = _apply(aw, [entry(1, 0, ALICE)], "a", now=0)
    assert applied == [entry(1, 0, ALICE)]
    assert not renewals_only
    assert present(aw) == {1: (0, ALICE)}
    assert len(aw) == 1


def test_newer_clock_applies(aw: AwarenessState) -> None:
    _apply(aw, [entry(1, 1, ALICE)], "a", now=0)
    applied, renewals_only = _apply(aw, [entry(1, 2, ALICE_MOVED)], "a", now=1)
    assert applied == [entry(1, 2, ALICE_MOVED)]
    assert not renewals_only
    assert present(aw) == {1: (2, ALICE_MOVED)}


def test_clock_may_jump(aw: AwarenessState) -> None:
    _apply(aw, [entry(1, 1, ALICE)], "a", now=0)
    applied, _ = _apply(aw, [entry(1, 2**53 - 1, ALICE_MOVED)], "a", now=1)
    assert applied == [entry(1, 2**53 - 1, ALICE_MOVED)]


@pytest.mark.parametrize("clock", [5, 4, 0])
@pytest.mark.parametrize("state", [ALICE, ALICE_MOVED])
def test_equal_or_older_clock_is_dropped(aw: AwarenessState, clock: int, state: str) -> None:
    # Clients re-broadcast every change they receive: these echoes must die here.
    _apply(aw, [entry(1, 5, ALICE)], "a", now=0)
    applied, renewals_only = _apply(aw, [entry(1, clock, state)], "b", now=1)
    assert applied == []
    assert not renewals_only
    assert present(aw) == {1: (5, ALICE)}


def test_renewal_is_flagged(aw: AwarenessState) -> None:
    _apply(aw, [entry(1, 1, ALICE), entry(2, 1, BOB)], "a", now=0)
    applied, renewals_only = _apply(aw, [entry(1, 2, ALICE), entry(2, 2, BOB)], "a", now=15)
    assert applied == [entry(1, 2, ALICE), entry(2, 2, BOB)]
    assert renewals_only


def test_renewal_mixed_with_a_change_is_not_renewals_only(aw: AwarenessState) -> None:
    _apply(aw, [entry(1, 1, ALICE), entry(2, 1, BOB)], "a", now=0)
    applied, renewals_only = _apply(aw, [entry(1, 2, ALICE), entry(2, 2, "{}")], "a", now=15)
    assert len(applied) == 2
    assert not renewals_only


def test_renewal_mixed_with_a_new_client_is_not_renewals_only(aw: AwarenessState) -> None:
    _apply(aw, [entry(1, 1, ALICE)], "a", now=0)
    _, renewals_only = _apply(aw, [entry(1, 2, ALICE), entry(2, 0, BOB)], "a", now=15)
    assert not renewals_only


def test_renewal_with_a_dropped_echo_is_still_renewals_only(aw: AwarenessState) -> None:
    _apply(aw, [entry(1, 1, ALICE), entry(2, 7, BOB)], "a", now=0)
    applied, renewals_only = _apply(aw, [entry(1, 2, ALICE), entry(2, 7, BOB)], "a", now=15)
    assert applied == [entry(1, 2, ALICE)]
    assert renewals_only


def test_nothing_applied_is_not_a_renewal(aw: AwarenessState) -> None:
    assert _apply(aw, [], "a", now=0) == ([], False)


def test_only_the_newest_of_several_entries_for_one_client_wins(aw: AwarenessState) -> None:
    applied, _ = _apply(aw, [entry(1, 3, ALICE_MOVED), entry(1, 2, ALICE)], "a", now=0)
    assert applied == [entry(1, 3, ALICE_MOVED)]
    assert present(aw) == {1: (3, ALICE_MOVED)}


# -- removal -----------------------------------------------------------------------------------


def test_removal_with_the_same_clock_applies(aw: AwarenessState) -> None:
    # y-protocols: `currClock === clock && state === null && states.has(clientID)`.
    _apply(aw, [entry(1, 4, ALICE)], "a", now=0)
    applied, renewals_only = _apply(aw, [entry(1, 4, None)], "a", now=1)
    assert applied == [entry(1, 4, None)]
    assert not renewals_only
    assert present(aw) == {}
    assert len(aw) == 0


def test_removal_with_a_newer_clock_applies(aw: AwarenessState) -> None:
    _apply(aw, [entry(1, 4, ALICE)], "a", now=0)
    applied, _ = _apply(aw, [entry(1, 5, None)], "a", now=1)
    assert applied == [entry(1, 5, None)]
    assert present(aw) == {}


def test_removal_with_an_older_clock_is_dropped(aw: AwarenessState) -> None:
    _apply(aw, [entry(1, 4, ALICE)], "a", now=0)
    assert _apply(aw, [entry(1, 3, None)], "b", now=1) == ([], False)
    assert present(aw) == {1: (4, ALICE)}


def test_repeated_removal_is_dropped(aw: AwarenessState) -> None:
    # Every client echoes the removal it received: it must not be broadcast again.
    _apply(aw, [entry(1, 4, ALICE)], "a", now=0)
    _apply(aw, [entry(1, 5, None)], "a", now=1)
    assert _apply(aw, [entry(1, 5, None)], "b", now=2) == ([], False)


def test_removing_an_unknown_client_is_a_no_op(aw: AwarenessState) -> None:
    assert _apply(aw, [entry(9, 3, None)], "a", now=0) == ([], False)
    assert present(aw) == {}
    assert len(aw) == 0
    assert aw.remove_owned_by("a") == []
    assert aw.expire(now=1000) == []


def test_removing_an_unknown_client_among_other_entries(aw: AwarenessState) -> None:
    applied, _ = _apply(aw, [entry(9, 3, None), entry(1, 0, ALICE)], "a", now=0)
    assert applied == [entry(1, 0, ALICE)]


def test_tombstone_prevents_resurrection_by_a_stale_entry(aw: AwarenessState) -> None:
    _apply(aw, [entry(1, 4, ALICE)], "a", now=0)
    _apply(aw, [entry(1, 5, None)], "a", now=1)
    for clock in (3, 4, 5):
        assert _apply(aw, [entry(1, clock, ALICE)], "b", now=2) == ([], False)
    assert present(aw) == {}


def test_newer_state_after_removal_revives_the_client(aw: AwarenessState) -> None:
    _apply(aw, [entry(1, 4, ALICE)], "a", now=0)
    _apply(aw, [entry(1, 5, None)], "a", now=1)
    applied, renewals_only = _apply(aw, [entry(1, 6, ALICE)], "a", now=2)
    assert applied == [entry(1, 6, ALICE)]
    assert not renewals_only  # from removed to present is a change, not a renewal
    assert present(aw) == {1: (6, ALICE)}


# -- owners ------------------------------------------------------------------------------------


def test_remove_owned_by_bumps_the_clock_and_removes_only_that_owners_states(
    aw: AwarenessState,
) -> None:
    _apply(aw, [entry(1, 4, ALICE), entry(3, 0, "{}")], "a", now=0)
    _apply(aw, [entry(2, 7, BOB)], "b", now=0)
    removed = aw.remove_owned_by("a")
    # As removeAwarenessStates(): clock + 1 so every client accepts the removal.
    assert sorted(removed, key=lambda e: e.client_id) == [entry(1, 5, None), entry(3, 1, None)]
    assert present(aw) == {2: (7, BOB)}
    assert aw.remove_owned_by("a") == []  # already gone: nothing to broadcast twice


def test_remove_owned_by_an_unknown_owner(aw: AwarenessState) -> None:
    _apply(aw, [entry(1, 4, ALICE)], "a", now=0)
    assert aw.remove_owned_by("nobody") == []
    assert present(aw) == {1: (4, ALICE)}


def test_another_connection_cannot_take_over_a_client_id(aw: AwarenessState) -> None:
    # First introduction wins: a newer clock from someone else is dropped, counted.
    _apply(aw, [entry(1, 4, ALICE)], "victim", now=0)
    result = aw.apply([entry(1, 5, BOB)], "attacker", 1)
    assert (result.entries, result.foreign) == ([], 1)
    assert aw.stats.foreign == 1
    assert present(aw) == {1: (4, ALICE)}
    assert aw.remove_owned_by("attacker") == []
    assert aw.remove_owned_by("victim") == [entry(1, 5, None)]


def test_the_same_user_takes_over_its_own_client_id(aw: AwarenessState) -> None:
    # A reload on a new connection before the old socket was noticed dead.
    ada = AwarenessPolicy(user="ada")
    _apply(aw, [entry(1, 4, ALICE)], "old", now=0, policy=ada)
    applied, _ = _apply(aw, [entry(1, 5, ALICE)], "new", now=1, policy=ada)
    assert applied == [entry(1, 5, ALICE)]
    assert aw.remove_owned_by("old") == []
    assert aw.remove_owned_by("new") == [entry(1, 6, None)]


def test_an_anonymous_connection_never_takes_over(aw: AwarenessState) -> None:
    _apply(aw, [entry(1, 4, ALICE)], "old", now=0)
    assert _apply(aw, [entry(1, 5, ALICE)], "new", now=1) == ([], False)


def test_a_departed_owners_id_is_free_again(aw: AwarenessState) -> None:
    _apply(aw, [entry(1, 4, ALICE)], "old", now=0)
    aw.remove_owned_by("old")
    applied, _ = _apply(aw, [entry(1, 6, ALICE)], "new", now=1)
    assert applied == [entry(1, 6, ALICE)]
    assert aw.owner_of(1) == "new"


def test_per_connection_cap_on_client_ids(aw: AwarenessState) -> None:
    two = AwarenessPolicy(max_clients=2)
    applied, _ = _apply(aw, [entry(i, 1, "{}") for i in range(1, 6)], "a", now=0, policy=two)
    assert [e.client_id for e in applied] == [1, 2]
    assert aw.stats.over_cap == 3
    # Its own removals and updates still work; a freed slot does not (tombstones count).
    applied, _ = _apply(aw, [entry(1, 2, None), entry(3, 1, "{}")], "a", now=1, policy=two)
    assert applied == [entry(1, 2, None)]


def test_state_size_bound(aw: AwarenessState) -> None:
    small = AwarenessPolicy(max_state_bytes=64)
    result = aw.apply([entry(1, 1, '{"x":"' + "é" * 40 + '"}')], "a", 0, small)
    assert (result.entries, result.rejected) == ([], {1})
    assert aw.stats.too_large == 1
    assert _apply(aw, [entry(2, 1, '{"x":1}')], "a", now=0, policy=small)[0]


def test_stamp_replaces_the_state_and_non_objects_are_dropped(aw: AwarenessState) -> None:
    stamped = AwarenessPolicy(stamp=lambda s: None if s[0] != "{" else '{"ysync":1}')
    applied, _ = _apply(aw, [entry(1, 1, ALICE), entry(2, 1, "[1]")], "a", now=0, policy=stamped)
    assert applied == [entry(1, 1, '{"ysync":1}')]
    assert aw.stats.not_object == 1


def test_tombstones_are_bounded() -> None:
    aw = AwarenessState(timeout=30.0, max_tombstones=10)
    for owner in range(50):
        _apply(aw, [entry(owner, 1, "{}")], f"c{owner}", now=owner)
        aw.remove_owned_by(f"c{owner}")
    assert len(aw._clients) <= 10
    assert len(aw) == 0


def test_a_dropped_echo_does_not_take_ownership(aw: AwarenessState) -> None:
    _apply(aw, [entry(1, 4, ALICE)], "a", now=0)
    _apply(aw, [entry(1, 4, ALICE)], "b", now=1)  # b echoes what it received
    assert aw.remove_owned_by("b") == []
    assert aw.remove_owned_by("a") == [entry(1, 5, None)]


def test_removal_by_another_connection_is_dropped(aw: AwarenessState) -> None:
    _apply(aw, [entry(1, 4, ALICE)], "a", now=0)
    assert _apply(aw, [entry(1, 4, None)], "b", now=1) == ([], False)
    assert present(aw) == {1: (4, ALICE)}
    assert aw.remove_owned_by("b") == []
    assert aw.remove_owned_by("a") == [entry(1, 5, None)]


def test_owner_none_for_states_from_other_nodes(aw: AwarenessState) -> None:
    _apply(aw, [entry(1, 4, ALICE)], None, now=0)
    _apply(aw, [entry(2, 1, BOB)], "a", now=0)
    assert aw.remove_owned_by("a") == [entry(2, 2, None)]
    assert present(aw) == {1: (4, ALICE)}


def test_tombstone_from_remove_owned_by_blocks_stale_echoes(aw: AwarenessState) -> None:
    _apply(aw, [entry(1, 4, ALICE)], "a", now=0)
    aw.remove_owned_by("a")
    assert _apply(aw, [entry(1, 4, ALICE)], "b", now=1) == ([], False)
    assert _apply(aw, [entry(1, 5, ALICE)], "b", now=1) == ([], False)
    assert _apply(aw, [entry(1, 5, None)], "b", now=1) == ([], False)
    # The client itself answers its removal with clock + 1 (awareness.js): it comes back.
    assert _apply(aw, [entry(1, 6, ALICE)], "c", now=2) == ([entry(1, 6, ALICE)], False)


# -- nudges ------------------------------------------------------------------------------------
# A removal sent back to the sender only, at a clock >= its own: y-protocols then
# bumps its clock and re-broadcasts, so clients that already knew the old clock
# (a reconnect, a fresh `{}` at clock 0) see it at once.


def test_nudge_for_a_client_we_do_not_know(aw: AwarenessState) -> None:
    assert aw.nudges_for([entry(1, 0, "{}"), entry(2, 7, ALICE)], "a") == [
        entry(1, 0, None),
        entry(2, 7, None),
    ]


def test_no_nudge_for_removals(aw: AwarenessState) -> None:
    _apply(aw, [entry(1, 4, ALICE)], "a", now=0)
    assert aw.nudges_for([entry(1, 4, None), entry(9, 1, None)], "b") == []


def test_no_nudge_for_the_owners_own_updates_and_renewals(aw: AwarenessState) -> None:
    _apply(aw, [entry(1, 4, ALICE)], "a", now=0)
    assert aw.nudges_for([entry(1, 5, ALICE), entry(1, 6, BOB)], "a") == []


def test_no_nudge_for_echoes_from_other_connections(aw: AwarenessState) -> None:
    _apply(aw, [entry(1, 4, ALICE)], "a", now=0)
    assert aw.nudges_for([entry(1, 4, ALICE), entry(1, 3, BOB)], "b") == []


def test_no_nudge_for_someone_elses_client_id(aw: AwarenessState) -> None:
    _apply(aw, [entry(1, 4, ALICE)], "old", now=0)
    assert aw.nudges_for([entry(1, 5, ALICE)], "new") == []


def test_nudge_for_a_removed_client_resending_its_old_clock(aw: AwarenessState) -> None:
    # A client reconnects after its old connection's states were removed (clock 4 -> 5)
    # and re-sends its state at clock 4: tell it about the removal at clock 5.
    _apply(aw, [entry(1, 4, ALICE)], "old", now=0)
    aw.remove_owned_by("old")
    assert aw.nudges_for([entry(1, 4, ALICE)], "new") == [entry(1, 5, None)]
    assert aw.nudges_for([entry(1, 5, ALICE)], "new") == [entry(1, 5, None)]


def test_nudges_for_does_not_change_the_state(aw: AwarenessState) -> None:
    _apply(aw, [entry(1, 4, ALICE)], "a", now=0)
    aw.nudges_for([entry(1, 9, BOB), entry(2, 1, BOB)], "b")
    assert present(aw) == {1: (4, ALICE)}
    assert aw.remove_owned_by("b") == []


# -- expiry ------------------------------------------------------------------------------------


def test_expire_after_the_timeout(aw: AwarenessState) -> None:
    _apply(aw, [entry(1, 4, ALICE)], "a", now=100)
    _apply(aw, [entry(2, 0, BOB)], "b", now=110)
    assert aw.expire(now=129.9) == []
    assert aw.expire(now=130) == [entry(1, 5, None)]
    assert present(aw) == {2: (0, BOB)}
    assert aw.expire(now=140) == [entry(2, 1, None)]
    assert present(aw) == {}
    assert aw.expire(now=150) == []


def test_custom_timeout() -> None:
    aw = AwarenessState(timeout=5)
    _apply(aw, [entry(1, 0, ALICE)], "a", now=0)
    assert aw.expire(now=4.9) == []
    assert aw.expire(now=5) == [entry(1, 1, None)]


def test_default_timeout_is_30_seconds() -> None:
    assert AwarenessState().timeout == 30.0


def test_renewal_postpones_expiry(aw: AwarenessState) -> None:
    _apply(aw, [entry(1, 4, ALICE)], "a", now=0)
    _apply(aw, [entry(1, 5, ALICE)], "a", now=15)
    assert aw.expire(now=40) == []
    assert aw.expire(now=45) == [entry(1, 6, None)]


def test_a_dropped_echo_does_not_postpone_expiry(aw: AwarenessState) -> None:
    _apply(aw, [entry(1, 4, ALICE)], "a", now=0)
    _apply(aw, [entry(1, 4, ALICE)], "b", now=20)
    assert aw.expire(now=30) == [entry(1, 5, None)]


def test_expired_state_is_not_removed_again_on_close(aw: AwarenessState) -> None:
    _apply(aw, [entry(1, 4, ALICE)], "a", now=0)
    aw.expire(now=30)
    assert aw.remove_owned_by("a") == []


def test_tombstone_after_expiry_blocks_stale_echoes(aw: AwarenessState) -> None:
    _apply(aw, [entry(1, 4, ALICE)], "a", now=0)
    aw.expire(now=30)
    assert aw.expire(now=31) == []
    assert _apply(aw, [entry(1, 4, ALICE)], "b", now=31) == ([], False)
    assert _apply(aw, [entry(1, 5, ALICE)], "b", now=31) == ([], False)
    assert present(aw) == {}


def test_old_tombstones_are_forgotten(aw: AwarenessState) -> None:
    _apply(aw, [entry(1, 4, ALICE)], "a", now=0)
    _apply(aw, [entry(1, 5, None)], "a", now=0)
    aw.expire(now=59)
    assert _apply(aw, [entry(1, 5, ALICE)], "b", now=59) == ([], False)  # still remembered
    aw.expire(now=60)
    # Forgotten after twice the timeout: the client id is unknown again.
    assert _apply(aw, [entry(1, 1, ALICE)], "b", now=61) == ([entry(1, 1, ALICE)], False)


# -- states() ----------------------------------------------------------------------------------


def test_states_lists_only_present_clients(aw: AwarenessState) -> None:
    _apply(aw, [entry(1, 1, ALICE), entry(2, 1, BOB), entry(3, 1, "{}")], "a", now=0)
    _apply(aw, [entry(2, 2, None)], "a", now=1)
    _apply(aw, [entry(3, 2, '{"x":1}')], "a", now=1)
    assert present(aw) == {1: (1, ALICE), 3: (2, '{"x":1}')}
    assert len(aw) == 2
    assert all(not e.removed for e in aw.states())


def test_states_of_an_empty_room(aw: AwarenessState) -> None:
    assert aw.states() == []
    assert len(aw) == 0


# -- a model check -----------------------------------------------------------------------------

ops = st.lists(
    st.tuples(
        st.sampled_from(["apply", "remove_owned_by", "expire"]),
        st.integers(min_value=1, max_value=3),  # client id
        st.integers(min_value=0, max_value=6),  # clock
        st.sampled_from([ALICE, BOB, None]),
        st.sampled_from(["a", "b"]),  # owner
        st.sampled_from([0, 1, 3, 10]),  # time step
    ),
    max_size=30,
)


@given(ops)
@settings(max_examples=200, deadline=None)
def test_clocks_never_go_backwards_and_states_match_what_was_broadcast(
    steps: list[tuple[str, int, int, str | None, str, int]],
) -> None:
    """Applying everything the state emits to a replica gives the same present states."""
    aw = AwarenessState(timeout=10)
    replica = AwarenessState(timeout=10**9)  # what a client that saw every broadcast knows
    clocks: dict[int, int] = {}
    now = 0.0
    for op, client_id, clock, state, owner, step in steps:
        now = min(
            now + step, 19.9
        )  # states expire; tombstones (kept 2 * timeout) are not forgotten
        if op == "apply":
            out, _ = _apply(aw, [entry(client_id, clock, state)], owner, now)
        elif op == "remove_owned_by":
            out = aw.remove_owned_by(owner)
        else:
            out = aw.expire(now)
        for e in out:
            assert e.clock >= clocks.get(e.client_id, 0)
            clocks[e.client_id] = e.clock
        replica.apply(out, None, now)
        assert present(replica) == present(aw)
