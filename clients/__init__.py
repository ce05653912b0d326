"""Python SDK: join ysync (or any y-websocket) rooms as a first-class collaborator."""

from ysync.clients.session import ClientAwareness, Session, connect, room_url

__all__ = ["ClientAwareness", "Session", "connect", "room_url"]
