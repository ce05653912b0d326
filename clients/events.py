"""Typed access to pycrdt change events (pycrdt declares their fields only in `__slots__`)."""

from __future__ import annotations

from typing import Any

from pycrdt import ArrayEvent, MapEvent, TextEvent


def map_changes(event: MapEvent) -> dict[str, dict[str, Any]]:
    """key → {"action": "add"|"update"|"delete", "oldValue", "newValue"}."""
    keys: dict[str, dict[str, Any]] = event.keys  # type: ignore[attr-defined]
    return keys


def sequence_delta(event: TextEvent | ArrayEvent) -> list[dict[str, Any]]:
    """The change as a Quill-style delta: [{"retain"|"insert"|"delete": ...}, ...]."""
    delta: list[dict[str, Any]] = event.delta  # type: ignore[union-attr]
    return delta
