"""Audit log: who did what, in which room, from where — one structured event each.

Events go to the `ysync.audit` logger with `extra` fields, so `--log-format
json` prints one JSON object per line: `{"event": "audit <action>", "action":
..., "subject": ..., "room": ..., "client": ..., "reason": ..., "code": ...,
"ts": ...}`. Actions (`ysync.rooms.vocabulary.AuditAction`):

- `connect` (info): a connection was admitted, with its role;
- `auth_failed` (warning): missing, invalid or expired token (4401);
- `access_denied` (warning): no grant for the room, or a forbidden Origin (4403);
- `edit_denied` (warning): a viewer or commenter sent a document edit (once per connection);
- `limit_exceeded` (warning): a limit closed a connection (4413, 4503, 4529).

`AuditExtension` records the WebSocket side; the HTTP API records its own
refusals with `record`. Never logs tokens or document content.
"""

from __future__ import annotations

import logging

from ysync.rooms.extensions import Extension
from ysync.rooms.hooks import ConnectionRequest, Identity
from ysync.rooms.protocols import Peer
from ysync.rooms.room import Room
from ysync.rooms.vocabulary import AuditAction, Refusal

log = logging.getLogger("ysync.audit")

_WARNING_ACTIONS = frozenset(
    {
        AuditAction.AUTH_FAILED,
        AuditAction.ACCESS_DENIED,
        AuditAction.EDIT_DENIED,
        AuditAction.LIMIT_EXCEEDED,
    }
)


def record(
    action: AuditAction,
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
        "action": action.value,
        "subject": subject,
        "room": room,
        "client": client,
    }
    if reason is not None:
        extra["reason"] = reason
    if code is not None:
        extra["code"] = code
    extra.update(fields)
    log.log(level, "audit %s", action.value, extra=extra)


def record_refusal(
    refusal: Refusal, *, subject: str | None, room: str | None, client: str | None, **fields: object
) -> None:
    """Record a refusal as its audit action; refusals without one are not audited."""
    action = refusal.audit_action
    if action is not None:
        record(
            action,
            subject=subject,
            room=room,
            client=client,
            reason=refusal.reason,
            code=int(refusal.code),
            **fields,
        )


class AuditExtension(Extension):
    """Records admissions, refusals and refused edits of WebSocket connections."""

    priority = 10

    def on_refused(
        self, request: ConnectionRequest, identity: Identity | None, refusal: Refusal
    ) -> None:
        record_refusal(
            refusal,
            subject=identity.user_id if identity is not None else None,
            room=request.room,
            client=request.client,
        )

    def on_join(self, room: Room, peer: Peer, request: ConnectionRequest) -> None:
        identity = peer.identity
        record(
            AuditAction.CONNECT,
            subject=identity.user_id,
            room=room.name,
            client=request.client,
            role=identity.role.value,
            read_only=not identity.can_edit,
        )

    def on_edit_refused(self, room: Room, peer: Peer, refusal: Refusal) -> None:
        identity = peer.identity
        record(
            AuditAction.EDIT_DENIED,
            subject=identity.user_id,
            room=room.name,
            client=peer.client,
            role=identity.role.value,
            reason="document edits not allowed for this role",
        )
