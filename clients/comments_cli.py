"""`ysync comments ROOM [--follow]`: a room's comment threads, and then its comment events live.

    ysync comments team/notes                 every thread, newest first, with its comments
    ysync comments team/notes --follow        ... then each new comment, reaction, resolve
    ysync comments team/notes --json          the API's answers as JSON lines

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
from ysync.clients.http import AsyncClient, FeedEvent

COMMAND = "comments"
DEFAULT_URL = "http://127.0.0.1:1234"
MAX_PAGES = 1000  # 100 threads a page: far more than a person reads in a terminal


def add_command(commands: Any) -> None:
    parser = commands.add_parser(
        COMMAND,
        help="show a room's comment threads (and follow them)",
        description="Print the comment threads of ROOM, newest first; with --follow, then "
        "print comment events as they happen until interrupted (Ctrl-C).",
    )
    parser.add_argument("room", metavar="ROOM", help="the room name, e.g. team/notes")
    parser.add_argument("--url", default=DEFAULT_URL, help=f"server URL (default {DEFAULT_URL})")
    parser.add_argument("--token", help="access token (Authorization: Bearer)")
    parser.add_argument("--follow", action="store_true", help="then follow new comment events")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead")
    parser.add_argument(
        "--resolved", choices=("true", "false"), help="only resolved (true) or open (false) threads"
    )


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(comments(args, sys.stdout))
    except KeyboardInterrupt:
        return 130
    except (ClientError, OSError) as exc:
        print(f"ysync: error: {exc}", file=sys.stderr)
        return 1


async def comments(args: argparse.Namespace, out: TextIO) -> int:
    async with AsyncClient(args.url, token=args.token) as api:
        cursor = None
        for _ in range(MAX_PAGES):
            page = await api.threads(args.room, resolved=args.resolved, cursor=cursor, limit=100)
            for thread in page["threads"]:
                _print_thread(thread, out, as_json=args.json)
            cursor = page.get("nextCursor")
            if cursor is None:
                break
        out.flush()
        if args.follow:
            async for event in api.comment_events(args.room):
                _print_event(event, out, as_json=args.json)
    return 0


def _print_thread(thread: dict[str, Any], out: TextIO, *, as_json: bool) -> None:
    if as_json:
        out.write(json.dumps(thread, ensure_ascii=False) + "\n")
        return
    state = "resolved" if thread["resolved"] else "open"
    out.write(f"{thread['id']} [{state}] {thread['anchor']['kind']} by {thread['createdBy']}\n")
    for comment in thread["comments"]:
        text = "(deleted)" if comment["text"] is None else comment["text"].replace("\n", " / ")
        reactions = " ".join(f"{e}{len(users)}" for e, users in comment["reactions"].items())
        out.write(f"  {comment['author']}: {text}{'  ' + reactions if reactions else ''}\n")


def _print_event(event: FeedEvent, out: TextIO, *, as_json: bool) -> None:
    if as_json:
        line = {"id": event.id, "type": event.type, "room": event.room, "data": event.data}
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
    else:
        data = event.data
        comment = data.get("comment") or {}
        detail = comment.get("text") or data.get("emoji") or data.get("by") or ""
        who = comment.get("author") or data.get("userId") or ""
        where = data.get("threadId") or (data.get("thread") or {}).get("id", "")
        out.write(f"{event.type} {where} {who}: {detail}".rstrip(": ") + "\n")
    out.flush()
