"""Compaction's merge: one smaller snapshot, and no pending content dropped."""

from __future__ import annotations

import pytest
from pycrdt import Doc, Text

from ysync.persistence.merge import merge
from ysync.rooms.protocols import StoreError


def typed(*steps: str) -> list[bytes]:
    """One update per step: text appended, or `-N` to delete the first N characters."""
    doc: Doc = Doc(client_id=1)
    text = doc.get("text", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    for step in steps:
        if step.startswith("-"):
            del text[0 : int(step[1:])]
        else:
            text += step
    return updates


def text_of(*updates: bytes) -> str:
    doc: Doc = Doc()
    for update in updates:
        doc.apply_update(update)
    return str(doc.get("text", type=Text))


def test_a_complete_log_is_fully_covered_by_a_smaller_snapshot() -> None:
    log = typed(*"hello world", "-6")
    merged = merge(None, log)
    assert merged.covered == list(range(len(log)))
    assert text_of(merged.snapshot) == "world"
    assert len(merged.snapshot) < sum(map(len, log))


def test_the_previous_snapshot_is_merged_in() -> None:
    log = typed("abc", "def", "-2")
    first = merge(None, log[:1])
    second = merge(first.snapshot, log[1:])
    assert second.covered == [0, 1]
    assert text_of(second.snapshot) == "cdef"


def test_an_insert_whose_dependency_is_missing_is_not_covered() -> None:
    first, second, third = typed("ab", "cd", "ef")
    merged = merge(None, [first, third])  # `third` builds on the missing `second`
    assert merged.covered == [0]
    assert text_of(merged.snapshot) == "ab"
    assert text_of(merged.snapshot, third, second) == "abcdef"


def test_a_deletion_of_missing_content_is_not_covered() -> None:
    first, second, deletion = typed("ab", "cd", "-3")
    merged = merge(None, [first, deletion])  # deletes "c", which it lacks
    assert merged.covered == [0]
    assert text_of(merged.snapshot, deletion, second) == "d"


def test_garbage_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="not a valid Yjs update"):
        merge(None, [b"\x05\x99garbage"])
