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
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

from ysync.persistence.group_commit import GroupCommit
from ysync.persistence.urls import open_store
from ysync.presence.events import EventHub
from ysync.rooms.extensions import Extension, Extensions, from_hooks
from ysync.rooms.hooks import Hooks
from ysync.rooms.local_bus import LocalBus
from ysync.rooms.protocols import Bus, Store
from ysync.rooms.redis_bus import RedisBus
from ysync.rooms.redis_cluster_bus import RedisClusterBus, is_cluster_url
from ysync.rooms.registry import RoomRegistry
from ysync.rooms.replication import Replicator
from ysync.rooms.room import RoomConfig
from ysync.rooms.vocabulary import CloseCode, Refusal
from ysync.server import (
    activity_api,
    broadcast_api,
    doc_api,
    events_api,
    gc_tuning,
    http_api,
    locks_api,
    openapi,
    presence_api,
)
from ysync.server.activity import ActivityExtension
from ysync.server.audit import AuditExtension
from ysync.server.auth import auth_extensions
from ysync.server.comments import CommentsExtension
from ysync.server.demo import DemoExtension
from ysync.server.drain import RESTART, Drain
from ysync.server.hocuspocus import HocuspocusEndpoint, HocuspocusLimits
from ysync.server.http_head import HeadLimits, HttpHeadProtocol
from ysync.server.lifecycle import RoomLifecycle
from ysync.server.limits import Limits, LimitsExtension
from ysync.server.locks import LocksExtension
from ysync.server.logs import configure as configure_logs
from ysync.server.metrics import Metrics, MetricsExtension
from ysync.server.presence import PresenceExtension
from ysync.server.routing import RoomPaths, exception_handlers
from ysync.server.seeding import SeedOnce
from ysync.server.settings import Settings
from ysync.server.transport import WebSocketEndpoint
from ysync.server.versions import VersionsExtension
from ysync.server.webhooks import WebhooksExtension

log = logging.getLogger("ysync.server")

NOT_STARTED = Refusal(CloseCode.SERVICE_RESTART, "server is not started")


@dataclass
class Node:
    """Everything one running ysync app holds; `app.state.ysync` while started."""

    settings: Settings
    store: Store
    update_log: GroupCommit
    registry: RoomRegistry
    endpoint: WebSocketEndpoint
    bus: Bus
    replicator: Replicator
    metrics: Metrics
    extensions: Extensions
    events: EventHub
    draining: bool = False
    started_at: float = field(default_factory=time.time)  # Unix time
    hocuspocus: HocuspocusEndpoint | None = None  # None: --no-hocuspocus

    def readiness_problems(self) -> list[str]:
        problems = []
        if self.draining:
            problems.append("draining: shutting down")
        store = self.update_log.health()
        if store is not None:
            problems.append(store)
        problems.extend(self.extensions.health())
        return problems


async def _open_bus(settings: Settings) -> Bus:
    if not settings.redis_url:
        return LocalBus()
    # redis+cluster://: sharded pub/sub on a Redis Cluster.
    kind = RedisClusterBus if is_cluster_url(settings.redis_url) else RedisBus
    bus = kind(settings.redis_url, heartbeat_ttl=settings.node_ttl)
    try:
        await bus.connect()
    except (RedisError, OSError) as exc:
        # Serve local clients anyway; the bus keeps retrying in the background.
        log.error("Redis unreachable at start, retrying: %s", exc)
    log.info("fan-out: %s", bus.describe())
    return bus


class _LateBoundEndpoint:
    """Routes are built before the lifespan starts; this forwards to the live endpoint
    (the y-websocket one, or with `hocuspocus` the Hocuspocus one)."""

    def __init__(self, app: Starlette, *, hocuspocus: bool = False) -> None:
        self.app = app
        self.hocuspocus = hocuspocus

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        node: Node | None = self.app.state.ysync
        if node is None or node.draining:
            await receive()
            await send({"type": "websocket.accept"})
            refusal = NOT_STARTED if node is None else RESTART
            await send(
                {"type": "websocket.close", "code": int(refusal.code), "reason": refusal.reason}
            )
            return
        if self.hocuspocus and node.hocuspocus is not None:
            await node.hocuspocus(scope, receive, send)
        else:
            await node.endpoint(scope, receive, send)


def _feature_extensions(settings: Settings) -> list[Extension]:
    """The product features, each one extension: demo, comments, room lifecycle,
    seeding, versions, webhooks, presence, locks, activity."""
    shared_redis = _presence_redis(settings.redis_url)
    return [
        # Comment pins and the History panel need the APIs CommentsExtension and
        # VersionsExtension serve (both always here).
        *([DemoExtension(settings, features=("comments", "versions"))] if settings.demo else []),
        CommentsExtension(
            max_comment_bytes=settings.max_comment_bytes,
            max_metadata_bytes=settings.max_metadata_bytes,
        ),
        RoomLifecycle(tombstone_days=settings.tombstone_days),
        SeedOnce(settings.seed_document),
        VersionsExtension(
            interval=settings.auto_version_interval,
            retention=settings.version_retention,
            max_age_days=settings.version_max_age_days,
        ),
        WebhooksExtension(
            urls=[url.strip() for url in settings.webhook.split(",") if url.strip()],
            secret=settings.webhook_secret,
            debounce=settings.webhook_debounce,
            max_attempts=settings.webhook_max_attempts,
            timeout=settings.webhook_timeout,
        ),
        PresenceExtension(
            redis_url=shared_redis,
            node_ttl=settings.node_ttl,
            idle_after=settings.presence_idle_after,
            leave_debounce=settings.presence_leave_debounce,
            feed_rate=settings.presence_feed_rate,
        ),
        LocksExtension(redis_url=shared_redis),
        ActivityExtension(retention_days=settings.activity_retention_days),
    ]


def _presence_redis(redis_url: str) -> str:
    """The Redis URL presence and locks share state through ("" for none)."""
    if is_cluster_url(redis_url):
        # Their keys and scripts span slots (one MGET over rooms, one script over
        # a room's lock keys): not yet on a Redis Cluster, where they stay per node.
        log.warning(
            "Redis Cluster: the presence API and element locks are per node"
            " (cluster-wide only with a single Redis)"
        )
        return ""
    return redis_url


def _cors(settings: Settings) -> list[Middleware]:
    """Browsers on other origins call the API with the WebSocket's JWT (--cors-origins)."""
    origins = [origin.strip() for origin in settings.cors_origins.split(",") if origin.strip()]
    if not origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
            max_age=600,
        )
    ]


def create_app_from_env() -> Starlette:
    """The app a `--workers N` worker process builds from its `YSYNC_*` environment."""
    settings = Settings.from_env()
    HttpHeadProtocol.configure(HeadLimits.from_settings(settings))
    configure_logs(
        settings.log_format, settings.log_level, node=f"{os.uname().nodename}:{os.getpid()}"
    )
    return create_app(settings, handle_signals=True)


def create_app(
    settings: Settings | None = None,
    hooks: Hooks | None = None,
    *,
    store: Store | None = None,
    extensions: Sequence[Extension] = (),
    handle_signals: bool = False,
) -> Starlette:
    """The ysync ASGI app. `store` overrides `settings.store` (e.g. your own adapter).

    `hooks` (a `Hooks` subclass) and `extensions` plug the host app in
    (`ysync.rooms.extensions`): they run with the built-in extensions (JWT
    auth, limits, replication, audit, metrics), highest priority first, and
    their `routes()` are served next to ysync's own.

    `handle_signals=True` (what `ysync serve` uses, under uvicorn) makes SIGTERM and
    SIGINT drain the node first (`ysync.server.drain`), then hands them to the server.
    """
    settings = (settings or Settings()).validated()
    limits = Limits.from_settings(settings)
    metrics = Metrics()
    # Built now, so a bad JWT key fails here rather than at the first connection.
    static: list[Extension] = [*auth_extensions(settings, hooks), LimitsExtension(limits)]
    if hooks is not None:
        static.append(from_hooks(hooks))
    static += [
        *extensions,
        *_feature_extensions(settings),
        AuditExtension(),
        MetricsExtension(metrics),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # Our own app, not the argument: mounted in a host, the host's lifespan
        # calls this with the host app.
        the_store = store if store is not None else await open_store(settings.store)
        log.info("store: %s", the_store.describe())
        if not the_store.durable:
            log.warning("store is in memory: every document is lost when this process exits")
        update_log = GroupCommit(
            the_store,
            settings.flush_window,
            max_pending_bytes=settings.max_pending_bytes,
            compact_after=settings.compact_after_updates,
        )
        bus = await _open_bus(settings)
        replicator = Replicator(
            bus,
            anti_entropy_interval=settings.anti_entropy_interval,
            liveness_interval=min(5.0, settings.node_ttl / 3),
            # (`registry` is bound below, before anything can call this)
            store_check=lambda room: registry.check_store_soon(room.name),
        )
        node_extensions = Extensions([*static, replicator])
        events = EventHub(
            bus,
            queue_limit=settings.event_queue,
            replay=settings.event_replay,
            rate=settings.presence_feed_rate,
        )
        registry = RoomRegistry(
            the_store,
            update_log,
            node_extensions,
            config=RoomConfig(
                awareness_timeout=settings.awareness_timeout,
                max_document_bytes=limits.max_document_bytes,
                awareness_clients_per_connection=settings.awareness_clients_per_connection,
                awareness_state_bytes=settings.awareness_state_bytes,
                max_nesting_depth=settings.max_nesting_depth,
                max_document_items=settings.max_document_items,
                max_gap_structs=settings.max_gap_structs,
                max_gap_bytes=settings.max_gap_bytes,
            ),
            unload_grace=settings.unload_grace,
        )
        endpoint = WebSocketEndpoint(
            registry,
            node_extensions,
            send_queue_frames=settings.send_queue_frames,
            send_queue_bytes=settings.send_queue_bytes,
            auth_timeout=settings.auth_timeout,
            token_expiry_grace=settings.token_expiry_grace,
            max_rooms=limits.max_rooms,
            max_clients_per_room=limits.max_clients_per_room,
            send_buffer_node_bytes=settings.send_buffer_node_bytes,
            awareness_tick=settings.awareness_tick,
            max_awareness_entries=settings.awareness_entries_per_message,
            max_connections_per_user=settings.max_connections_per_user,
            max_rooms_per_user=settings.max_rooms_per_user,
        )
        log.info("authentication: %s", node_extensions.describe_auth())
        update_log.on_commit = metrics.observe_commit
        node = Node(
            settings,
            the_store,
            update_log,
            registry,
            endpoint,
            bus,
            replicator,
            metrics,
            node_extensions,
            events,
        )
        node.hocuspocus = _hocuspocus_endpoint(settings, endpoint, replicator)
        await node_extensions.start(node)
        app.state.ysync = node
        try:
            async with asyncio.TaskGroup() as tasks:
                background = [
                    tasks.create_task(update_log.run(), name="group commit"),
                    tasks.create_task(registry.sweep_awareness(), name="awareness expiry"),
                    tasks.create_task(
                        registry.audit_store(settings.store_audit_interval), name="store audit"
                    ),
                    tasks.create_task(endpoint.keep_alive(), name="keep-alive"),
                    tasks.create_task(events.sweep(), name="event feeds"),
                ]
                for name, run in node_extensions.background():
                    background.append(tasks.create_task(run(), name=name))
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
                    await events.close()
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
    routes = [
        *http_api.routes,
        *events_api.routes,
        *presence_api.routes,
        *locks_api.routes,
        *activity_api.routes,
        *broadcast_api.routes,
        *doc_api.routes,
        *(route for ext in static for route in ext.routes()),
        http_api.room_detail_route,  # last: its {room:path} would shadow the others
        Route("/openapi.json", openapi.openapi_json),
    ]
    app = Starlette(
        routes=routes,
        middleware=[*_cors(settings), Middleware(RoomPaths)],
        lifespan=lifespan,
        exception_handlers=exception_handlers,
    )
    app.state.ysync = None
    app.router.routes += [
        *_hocuspocus_routes(app, settings),
        WebSocketRoute(prefix + "{room:path}", _LateBoundEndpoint(app)),
    ]
    return app


def _hocuspocus_endpoint(
    settings: Settings, endpoint: WebSocketEndpoint, replicator: Replicator
) -> HocuspocusEndpoint | None:
    if not settings.hocuspocus:
        return None
    limits = HocuspocusLimits(
        max_documents=settings.hocuspocus_max_documents,
        pending_bytes=settings.hocuspocus_pending_bytes,
        pending_messages=settings.hocuspocus_pending_messages,
    )
    return HocuspocusEndpoint(endpoint, replicator, limits)


def _hocuspocus_routes(app: Starlette, settings: Settings) -> list[WebSocketRoute]:
    """Where a y-websocket room name would be empty (the provider drops a trailing
    slash), and `--hocuspocus-path`; they go before the rooms' catch-all route."""
    if not settings.hocuspocus:
        return []
    hocus = _LateBoundEndpoint(app, hocuspocus=True)
    prefix = settings.path_prefix
    paths = {prefix, prefix.rstrip("/"), settings.hocuspocus_path} - {""}
    return [WebSocketRoute(path, hocus) for path in sorted(paths)]
