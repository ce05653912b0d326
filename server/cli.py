"""The `ysync` command (also `python -m ysync`)."""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

import uvicorn

from ysync import __version__
from ysync.clients import cli as client_cli
from ysync.clients import comments_cli, presence_cli, rooms_cli
from ysync.server import importer, repair
from ysync.server import settings as settings_module
from ysync.server import status as status_command
from ysync.server.app import create_app
from ysync.server.auth import JwtVerifier
from ysync.server.http_head import HeadLimits, HttpHeadProtocol
from ysync.server.logs import configure
from ysync.server.seeding import read_seed
from ysync.server.settings import Settings
from ysync.server.ws_protocol import YsyncWebSocketProtocol

log = logging.getLogger("ysync.server")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ysync", description="Real-time collaboration server")
    parser.add_argument("--version", action="version", version=f"ysync {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server", description="Run the ysync server.")
    settings_module.add_arguments(serve)
    client_cli.add_commands(commands)  # doc get/put, watch
    comments_cli.add_command(commands)
    rooms_cli.add_commands(commands)  # versions, restore, rm, export
    presence_cli.add_commands(commands)  # presence, locks
    status_command.add_command(commands)
    importer.add_command(commands)
    repair.add_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in client_cli.COMMANDS:
        return client_cli.run(args)
    if args.command == comments_cli.COMMAND:
        return comments_cli.run(args)
    if args.command in rooms_cli.COMMANDS:
        return rooms_cli.run(args)
    if args.command in presence_cli.COMMANDS:
        return presence_cli.run(args)
    if args.command == status_command.COMMAND:
        return status_command.run(args)
    if args.command == importer.COMMAND:
        return importer.run(args)
    if args.command == repair.COMMAND:
        return repair.run(args)
    try:
        settings = settings_module.from_arguments(args)
        _check_supported(settings)
    except ValueError as exc:
        print(f"ysync: error: {exc}", file=sys.stderr)
        return 2
    return serve(settings)


def _check_supported(settings: Settings) -> None:
    # Refuse loudly rather than silently run without what was asked for.
    if settings.auth == "jwt":
        # Settings.validated() refused a missing key; this reads and checks it.
        JwtVerifier.from_settings(settings)
    if settings.seed_document:
        read_seed(settings.seed_document)  # a ValueError naming the file's problem


def serve(settings: Settings) -> int:
    configure(settings.log_format, settings.log_level, node=f"{os.uname().nodename}:{os.getpid()}")
    if settings.auth == "none":
        log.warning(
            "authentication is OFF: anyone who can reach this port can read and edit every room"
        )
    fan_out = "Redis" if settings.redis_url else "in-process (single node)"
    log.info(
        "ysync %s listening on ws://%s:%d%s<room>  fan-out: %s  workers: %d",
        __version__,
        settings.host,
        settings.port,
        settings.path_prefix,
        fan_out,
        settings.workers,
    )
    if settings.demo:
        site = f"http://{settings.host}:{settings.port}"
        log.info("demo: %s/  inspector: %s/inspect  (--no-demo turns them off)", site, site)
    HttpHeadProtocol.configure(HeadLimits.from_settings(settings))
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        # Twice the limit, so the transport sees an oversized message and closes
        # with 4413, which the JS provider does not retry (1009 it would).
        "ws_max_size": 2 * settings.max_message_bytes,
        # Compression is per recipient: it would multiply CPU by the room size.
        "ws_per_message_deflate": False,
        # ysync's own protocol: frames go straight to the rooms, with no task,
        # queue or parser stack per connection (see ysync.server.ws_protocol).
        "ws": YsyncWebSocketProtocol,
        # uvicorn's httptools protocol with request-head deadlines and limits.
        "http": HttpHeadProtocol,
        "log_config": None,
        "access_log": False,
        "lifespan": "on",
        # Our drain (ysync.server.drain) closed the WebSockets before uvicorn's own
        # shutdown starts; this bounds uvicorn's wait for whatever is left.
        "timeout_graceful_shutdown": math.ceil(settings.shutdown_timeout),
    }
    if settings.workers > 1:
        # Worker processes share the port and rebuild the settings from the
        # environment; each is its own node on the Redis bus.
        os.environ.update(settings_module.to_environ(settings))
        # Workers write their metrics here so /metrics on any worker reports them all.
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="ysync-metrics-"))
        uvicorn.run(
            "ysync.server.app:create_app_from_env",
            factory=True,
            workers=settings.workers,
            **options,
        )
    else:
        uvicorn.run(create_app(settings, handle_signals=True), **options)
    return 0
