"""The ysync server: `create_app(settings, hooks)` for embedding, `ysync serve` to run it."""

from ysync.server.app import create_app
from ysync.server.settings import Settings

__all__ = ["Settings", "create_app"]
