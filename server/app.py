"""`create_app`: the ysync ASGI application, standalone or mounted in a host app.

Its lifespan owns everything that runs in the background (one task group):
the store, the group committer, the bus, the room registry. When mounting in
a host Starlette/FastAPI app, run this app's lifespan from the host's:

    collab = create_app(settings, hooks)
    app = Starlette(routes=[Mount("/collab", app=collab)], lifespan=collab.router.lifespan_context)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import WebSocketRoute

from ysync.persistence.group_commit import GroupCommit
from ysync.persistence.urls import open_store
from ysync.rooms.hooks import Hooks
from ysync.rooms.local_bus import LocalBus
from ysync.rooms.protocols import Bus, Store
from ysync.rooms.redis_bus import RedisBus
from ysync.rooms.registry import RoomRegistry
from ysync.server import demo, gc_tuning, http_api
from ysync.server.auth import authenticator_for
from ysync.server.drain import RESTART_REASON, Drain
from ysync.server.limits import Limits
from ysync.server.logs import configure as configure_logs
from ysync.server.metrics import Metrics
from ysync.server.settings import Settings
from ysync.server.transport import WebSocketEndpoint

log = logging.getLogger("ysync.server")


@dataclass
class Node:
    """Everything one running ysync app holds; `app.state.ysync` while started."""

    settings: Settings
    store: Store
    update_log: GroupCommit
    registry: RoomRegistry
    endpoint: WebSocketEndpoint
    bus: Bus
    metrics: Metrics
    draining: bool = False
    started_at: float = field(default_factory=time.time)  # Unix time

    def readiness_problems(self) -> list[str]:
        problems = []
        if self.draining:
            problems.append("draining: shutting down")
        if not self.update_log.healthy:
            problems.append("store: writes failing, retrying")
        if isinstance(self.bus, RedisBus) and not self.bus.connected:
            problems.append("redis: disconnected, reconnecting (serving local clients only)")
        return problems


async def _open_bus(settings: Settings) -> Bus:
    if not settings.redis_url:
        return LocalBus()
    bus = RedisBus(settings.redis_url, heartbeat_ttl=settings.node_ttl)
    try:
        await bus.connect()
    except (RedisError, OSError) as exc:
        # Serve local clients anyway; the bus keeps retrying in the background.
        log.error("Redis unreachable at start, retrying: %s", exc)
    log.info("fan-out: %s", bus.describe())
    return bus


class _LateBoundEndpoint:
    """Routes are built before the lifespan starts; this forwards to the live endpoint."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
        node: Node | None = getattr(self.app.state, "ysync", None)
        if node is None or node.draining:
            await receive()
            await send({"type": "websocket.accept"})
            reason = "server is not started" if node is None else RESTART_REASON
            await send({"type": "websocket.close", "code": 1012, "reason": reason})
            return
        await node.endpoint(scope, receive, send)


def create_app_from_env() -> Starlette:
    """The app a `--workers N` worker process builds from its `YSYNC_*` environment."""
    settings = Settings.from_env()
    configure_logs(
        settings.log_format, settings.log_level, node=f"{os.uname().nodename}:{os.getpid()}"
    )
    return create_app(settings, handle_signals=True)


def create_app(
    settings: Settings | None = None,
    hooks: Hooks | None = None,
    *,
    store: Store | None = None,
    handle_signals: bool = False,
) -> Starlette:
    """The ysync ASGI app. `store` overrides `settings.store` (e.g. your own adapter).

    `handle_signals=True` (what `ysync serve` uses, under uvicorn) makes SIGTERM and
    SIGINT drain the node first (`ysync.server.drain`), then hands them to the server.
    """
    settings = (settings or Settings()).validated()
    hooks = hooks or Hooks()
    # Who authenticates: the host's own `authenticate` hook if it overrides it,
    # else JWT with --auth jwt, else nobody. Built now, so a bad key fails here.
    authenticator = authenticator_for(settings, hooks)
    limits = Limits.from_settings(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # Our own app, not the argument: mounted in a host, the host's lifespan
        # calls this with the host app.
        the_store = store if store is not None else await open_store(settings.store)
        describe = getattr(the_store, "describe", None)
        log.info("store: %s", describe() if describe else type(the_store).__name__)
        if not getattr(the_store, "durable", True):
            log.warning("store is in memory: every document is lost when this process exits")
        update_log = GroupCommit(
            the_store,
            settings.flush_window,
            max_pending_bytes=settings.max_pending_bytes,
            compact_after=settings.compact_after_updates,
        )
        bus = await _open_bus(settings)
        registry = RoomRegistry(
            the_store,
            update_log,
            bus,
            hooks,
            unload_grace=settings.unload_grace,
            awareness_timeout=settings.awareness_timeout,
            write_refusal=update_log.refusal,
            anti_entropy_interval=settings.anti_entropy_interval,
            liveness_interval=min(5.0, settings.node_ttl / 3),
        )
        endpoint = WebSocketEndpoint(
            registry,
            hooks,
            send_queue_frames=settings.send_queue_frames,
            send_queue_bytes=settings.send_queue_bytes,
            authenticator=authenticator,
            limits=limits,
            auth_timeout=settings.auth_timeout,
            token_expiry_grace=settings.token_expiry_grace,
        )
        log.info("authentication: %s", authenticator.description)
        metrics = Metrics()
        update_log.on_commit = metrics.observe_commit
        endpoint.metrics = metrics
        node = Node(settings, the_store, update_log, registry, endpoint, bus, metrics)
        try:
            async with asyncio.TaskGroup() as tasks:
                background = [
                    tasks.create_task(update_log.run(), name="group commit"),
                    tasks.create_task(registry.sweep_awareness(), name="awareness expiry"),
                    tasks.create_task(registry.replicator.run(), name="anti-entropy"),
                    tasks.create_task(metrics.run(node), name="metrics"),
                    tasks.create_task(endpoint.keep_alive(), name="keep-alive"),
                ]
                if isinstance(bus, RedisBus):
                    bus.on_reconnect = registry.replicator.resync_all
                    background.append(tasks.create_task(bus.run(), name="redis"))
                app.state.ysync = node
                drain = Drain(
                    node,
                    drain_seconds=settings.drain_seconds,
                    shutdown_timeout=settings.shutdown_timeout,
                )
                if handle_signals:
                    drain.install()
                gc_timer = gc_tuning.PauseTimer(metrics.observe_gc)
                gc_timer.install()
                if settings.gc_tuning:
                    gc_tuning.tune()
                try:
                    yield
                finally:
                    gc_timer.remove()
                    drain.uninstall()
                    node.draining = True
                    # Unloading commits every room's updates; only then stop the committer.
                    await registry.close()
                    await update_log.flush()
                    for task in background:
                        task.cancel()
        finally:
            app.state.ysync = None
            await bus.close()
            if store is None:
                await the_store.close()
            log.info("stopped; all accepted updates committed")

    prefix = settings.path_prefix
    app = Starlette(
        routes=http_api.routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_api.http_error},
    )
    app.state.ysync = None
    app.router.routes.append(WebSocketRoute(prefix + "{room:path}", _LateBoundEndpoint(app)))
    if settings.demo:  # HTTP-only routes: no WebSocket path is shadowed
        app.router.routes.extend(demo.routes(settings))
    return app
