"""ysync: a real-time collaboration server for Yjs clients.

Subpackages: `ysync.rooms` (protocol codec, rooms), `ysync.persistence` (stores),
`ysync.presence` (awareness views), `ysync.server` (ASGI app, CLI), `ysync.clients` (SDK).
"""

__version__ = "0.1.0"
