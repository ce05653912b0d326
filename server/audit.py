"""Audit log: who did what, in which room, from where — one structured event each.

Events go to the `ysync.audit` logger with `extra` fields, so `--log-format
json` prints one JSON object per line: `{"event": "audit <action>", "action":
..., "subject": ..., "room": ..., "client": ..., "reason": ..., "code": ...,
"ts": ...}`. Actions:

- `connect` (info): a connection was admitted, with its role;
- `auth_failed` (warning): missing, invalid or expired token (4401);
- `access_denied` (warning): no grant for the room, or a forbidden Origin (4403);
- `edit_denied` (warning): a viewer or commenter sent a document edit (once per connection);
- `limit_exceeded` (warning): a limit closed a connection (4413, 4503, 4529);
- `room_deleted`, `version_restored` (info): for the HTTP API to record.

Never logs tokens or document content.
"""

from __future__ import annotations

import logging

log = logging.getLogger("ysync.audit")

_WARNING_ACTIONS = frozenset({"auth_failed", "access_denied", "edit_denied", "limit_exceeded"})


def record(
    action: str,
    *,
    subject: str | None,
    room: str | None,
    client: str | None,
    reason: str | None = None,
    code: int | None = None,
    **fields: object,
) -> None:
    """Log one audit event; `subject` is the user id (None: not authenticated)."""
    level = logging.WARNING if action in _WARNING_ACTIONS else logging.INFO
    if not log.isEnabledFor(level):
        return
    extra: dict[str, object] = {
        "audit": True,
        "action": action,
        "subject": subject,
        "room": room,
        "client": client,
    }
    if reason is not None:
        extra["reason"] = reason
    if code is not None:
        extra["code"] = code
    extra.update(fields)
    log.log(level, "audit %s", action, extra=extra)
