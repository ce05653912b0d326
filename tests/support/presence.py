"""Helpers for awareness states as the server relays them (with its "ysync" identity field)."""

from __future__ import annotations

from typing import Any


def client_fields(state: Any) -> Any:
    """A relayed state without the server-stamped "ysync" field: what its client set."""
    if isinstance(state, dict):
        return {k: v for k, v in state.items() if k != "ysync"}
    return state
