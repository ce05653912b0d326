"""`ysync versions|restore|rm|export`: a room's versions and lifecycle from the terminal.

    ysync versions team/notes                  the versions, newest first
    ysync versions team/notes --create "v1"    make a named version
    ysync versions diff team/notes V1 [V2]     what changed from V1 to V2 (default: now)
    ysync restore team/notes V1                every client converges to V1
    ysync rm team/notes                        delete the room everywhere (owner)
    ysync export team/notes > room.ysync       the room as one JSON archive (owner)

Takes `--url` (http:// or ws://, default http://127.0.0.1:1234) and `--token`. Built on
`ysync.clients.http.AsyncClient`; imports no server code.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

from ysync.clients.errors import ClientError
from ysync.clients.http import AsyncClient

COMMANDS = ("versions", "restore", "rm", "export")
DEFAULT_URL = "http://127.0.0.1:1234"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=DEFAULT_URL, help=f"server URL (default {DEFAULT_URL})")
    parser.add_argument("--token", help="access token (Authorization: Bearer)")


def add_commands(commands: Any) -> None:
    versions = commands.add_parser(
        "versions",
        help="list, create or compare a room's versions",
        description="ysync versions ROOM [--create NAME] | ysync versions diff ROOM A [B]",
    )
    versions.add_argument("room", metavar="ROOM", help="the room (or `diff`)")
    versions.add_argument("rest", nargs="*", metavar="ARG", help="with diff: ROOM A [B]")
    versions.add_argument("--create", metavar="NAME", help="make a named version first")
    versions.add_argument("--json", action="store_true", help="print the API's JSON")
    _common(versions)
    restore = commands.add_parser("restore", help="restore a version of a room")
    restore.add_argument("room", metavar="ROOM")
    restore.add_argument("version", metavar="VERSION")
    _common(restore)
    rm = commands.add_parser("rm", help="delete a room everywhere (owner)")
    rm.add_argument("room", metavar="ROOM")
    _common(rm)
    export = commands.add_parser("export", help="print a room's archive (owner)")
    export.add_argument("room", metavar="ROOM")
    _common(export)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    action: Callable[[AsyncClient, argparse.Namespace, TextIO], Awaitable[int]] = {
        "versions": _versions,
        "restore": _restore,
        "rm": _rm,
        "export": _export,
    }[args.command]

    async def main() -> int:
        async with AsyncClient(args.url, token=args.token) as api:
            return await action(api, args, out or sys.stdout)

    try:
        return asyncio.run(main())
    except (ClientError, OSError) as exc:
        print(f"ysync: error: {exc}", file=sys.stderr)
        return 1


async def _versions(api: AsyncClient, args: argparse.Namespace, out: TextIO) -> int:
    if args.room == "diff":
        if not 2 <= len(args.rest) <= 3:
            print("ysync: error: usage: ysync versions diff ROOM A [B]", file=sys.stderr)
            return 2
        room, a, *b = args.rest
        out.write(json.dumps(await api.diff(room, a, b[0] if b else "current"), indent=2) + "\n")
        return 0
    if args.create:
        made = await api.create_version(args.room, args.create)
        out.write(f"created {made['id']} {made['name']}\n")
    page = await api.versions(args.room, limit=100)
    for version in page["versions"]:
        if args.json:
            out.write(json.dumps(version) + "\n")
        else:
            out.write(_line(version) + "\n")
    return 0


def _line(version: dict[str, Any]) -> str:
    author = version["author"] or "-"
    return (
        f"{version['id']}  {version['kind']:<11} {version['size_bytes']:>9} B  by {author:<12} "
        f"{version['name']}"
    )


async def _restore(api: AsyncClient, args: argparse.Namespace, out: TextIO) -> int:
    done = await api.restore(args.room, args.version)
    out.write(f"restored {args.version}: now {done['restore']['id']}\n")
    return 0


async def _rm(api: AsyncClient, args: argparse.Namespace, out: TextIO) -> int:
    await api.delete_room(args.room)
    out.write(f"deleted {args.room}\n")
    return 0


async def _export(api: AsyncClient, args: argparse.Namespace, out: TextIO) -> int:
    out.write(json.dumps(await api.export(args.room)) + "\n")
    return 0
