"""`ysync presence ROOM [--follow]` and `ysync locks ROOM`: who is in a room, what is locked.

    ysync presence team/board            one line per user (connections, idle, state)
    ysync presence team/board --follow   ... then presence and lock events live
    ysync locks team/board               one line per locked element
    (--json on each: the API's answers as JSON lines)

Takes `--url` (http:// or ws://, default http://127.0.0.1:1234) and `--token` (sent as
`Authorization: Bearer`). Built on `ysync.clients.http.AsyncClient`; imports no server code.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any, TextIO

from ysync.clients.errors import ClientError
from ysync.clients.http import AsyncClient

COMMANDS = ("presence", "locks")
DEFAULT_URL = "http://127.0.0.1:1234"
_FOLLOWED = ("presence.", "lock.", "reset")


def add_commands(commands: Any) -> None:
    presence = commands.add_parser(
        "presence",
        help="show who is in a room (and follow joins and leaves)",
        description="Print the users in ROOM now, from any node; with --follow, then print "
        "presence and lock events as they happen until interrupted (Ctrl-C).",
    )
    presence.add_argument("--follow", action="store_true", help="then follow presence events")
    locks = commands.add_parser(
        "locks", help="show a room's element locks", description="Print the locks of ROOM."
    )
    for parser in (presence, locks):
        parser.add_argument("room", metavar="ROOM", help="the room name, e.g. team/board")
        parser.add_argument(
            "--url", default=DEFAULT_URL, help=f"server URL (default {DEFAULT_URL})"
        )
        parser.add_argument("--token", help="access token (Authorization: Bearer)")
        parser.add_argument("--json", action="store_true", help="print JSON lines instead")


def run(args: argparse.Namespace) -> int:
    main = presence if args.command == "presence" else locks
    try:
        return asyncio.run(main(args, sys.stdout))
    except KeyboardInterrupt:
        return 130
    except (ClientError, OSError) as exc:
        print(f"ysync: error: {exc}", file=sys.stderr)
        return 1


async def presence(args: argparse.Namespace, out: TextIO) -> int:
    async with AsyncClient(args.url, token=args.token) as api:
        for user in await api.presence(args.room):
            _line(out, user, args.json, _describe_user)
        out.flush()
        if args.follow:
            async for event in api.events(args.room):
                if event.type.startswith(_FOLLOWED):
                    data = {"type": event.type, "at": event.at, **dict(event.data)}
                    _line(out, data, args.json, _describe_event)
                    out.flush()
    return 0


async def locks(args: argparse.Namespace, out: TextIO) -> int:
    async with AsyncClient(args.url, token=args.token) as api:
        for lock in await api.locks(args.room):
            _line(out, lock, args.json, _describe_lock)
    return 0


def _line(out: TextIO, value: dict[str, Any], as_json: bool, describe: Any) -> None:
    out.write((json.dumps(value, ensure_ascii=False) if as_json else describe(value)) + "\n")


def _describe_user(user: dict[str, Any]) -> str:
    idle = " idle" if user["idle"] else ""
    tabs = f" x{user['connections']}" if user["connections"] > 1 else ""
    state = json.dumps(user.get("state", {}), ensure_ascii=False)
    return f"{user['name']} ({user['userId']}, {user['role']}){tabs}{idle} {state}"


def _describe_lock(lock: dict[str, Any]) -> str:
    return f"{lock['elementId']}: {lock['name']} ({lock['userId']}), fence {lock['fence']}"


def _describe_event(event: dict[str, Any]) -> str:
    who = event.get("name") or event.get("userId") or ""
    what = event.get("elementId", "")
    return " ".join(part for part in (event["type"], str(who), str(what)) if part)
