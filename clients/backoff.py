"""Reconnect delays for SDK sessions (the implementation lives in `ysync.rooms.backoff`)."""

from ysync.rooms.backoff import Backoff as Backoff
