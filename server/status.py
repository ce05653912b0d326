"""`ysync status`: what a running node holds, readably, from its HTTP API.

    ysync status [--url http://host:port] [--token T]   the node, then one line per room
    ysync status --room ROOM                             one room and its connections
                                                         (a token owning that room is enough)
    ysync status --json                                  the API's JSON, for scripts

Exit status: 0 the node is ready, 1 it answered but is not ready (draining,
store writes failing, Redis down), 2 it could not be asked (unreachable,
refused, no such room). With `--workers N` one worker answers each request:
the header names which (node id and pid).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, TextIO

from ysync.clients.errors import ClientError
from ysync.clients.http import Client, room_path

COMMAND = "status"
DEFAULT_URL = "http://127.0.0.1:1234"
EXIT_READY, EXIT_NOT_READY, EXIT_FAILED = 0, 1, 2


def add_command(commands: Any) -> None:
    """Add `status` to the `ysync` command's subparsers."""
    status = commands.add_parser(
        COMMAND,
        help="show a running node's rooms, clients and health",
        description="Show a running node: readiness, connections, store backlog, Redis, and "
        "per room its clients, presence states, idle time and uncommitted bytes; with --room, "
        "that room's connections. Exit status: 0 ready, 1 not ready, 2 could not ask.",
    )
    status.add_argument(
        "--url", default=DEFAULT_URL, help=f"the node's HTTP (or ws://) URL [{DEFAULT_URL}]"
    )
    status.add_argument(
        "--token",
        help="Bearer token; with --auth jwt it must grant owner on '*' (or on --room's room)",
    )
    status.add_argument("--room", help="show this room and each of its connections")
    status.add_argument(
        "--limit",
        type=int,
        default=50,
        help="rooms to list, busiest first (0: all) [50]",
    )
    status.add_argument("--json", action="store_true", help="print the API's JSON answer as is")
    status.add_argument("--timeout", type=float, default=10.0, help="seconds to wait [10]")


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    try:
        with Client(args.url, token=args.token, timeout=args.timeout) as api:
            if args.room:
                # A room's owner may see the room without rights on the whole node.
                body = api.get(room_path(args.room))
                readiness = api.get("/readyz", ok=(503,))
            else:
                body = api.get("/api/rooms")
                readiness = body["node"]
    except ClientError as exc:
        print(f"ysync status: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        json.dump(body, out, indent=2)
        out.write("\n")
    elif args.room:
        out.write(_readiness_line(readiness) + "\n" + format_room(body))
    else:
        out.write(format_node(body, limit=args.limit))
    return EXIT_READY if readiness["ready"] else EXIT_NOT_READY


# -- formatting (pure: JSON in, text out) --------------------------------------------------


def format_node(body: dict[str, Any], *, limit: int = 50) -> str:
    """The node's header and, unless `limit` < 0, its busiest `limit` rooms (0: all)."""
    node, rooms = body["node"], body["rooms"]
    idle = sum(1 for room in rooms if room["idle"])
    stranded = sum(1 for room in rooms if room.get("pending_updates"))
    lines = [
        f"node {node['id']}  pid {node['pid']}  ysync {node['version']}  "
        f"up {duration(node['uptime_seconds'])}",
        _readiness_line(node),
        f"connections {body['connections']}  rooms {len(rooms)} loaded ({idle} idle)"
        + (f", {len(node['loading'])} loading" if node["loading"] else "")
        + f"  store {'ok' if node['store_healthy'] else 'FAILING'}, "
        f"{size(node['pending_bytes'])} uncommitted"
        + (f"  redis {node['redis']}" if node["redis"] is not None else ""),
    ]
    if stranded:
        lines.append(
            f"{stranded} room(s) hold updates waiting for a missing dependency (see STATE)"
        )
    if limit >= 0:
        lines.append("")
        lines.extend(_rooms_table(rooms, limit))
    return "\n".join(lines) + "\n"


def _readiness_line(readiness: dict[str, Any]) -> str:
    return "ready" if readiness["ready"] else "NOT READY: " + "; ".join(readiness["problems"])


def _rooms_table(rooms: list[dict[str, Any]], limit: int) -> list[str]:
    if not rooms:
        return ["no rooms loaded"]
    ordered = sorted(rooms, key=lambda r: (-r["clients"], r["name"]))
    shown = ordered if limit == 0 else ordered[:limit]
    rows: list[tuple[str, ...]] = [
        ("ROOM", "CLIENTS", "READ-ONLY", "PRESENCE", "UNCOMMITTED", "STATE")
    ]
    for room in shown:
        rows.append(
            (
                room["name"],
                str(room["clients"]),
                str(room["read_only"]),
                str(room["awareness"]),
                size(room["pending_bytes"]),
                _state(room),
            )
        )
    lines = _table(rows, right=(1, 2, 3, 4))
    if len(shown) < len(ordered):
        lines.append(f"... and {len(ordered) - len(shown)} more rooms (--limit 0 shows all)")
    return lines


def _state(room: dict[str, Any]) -> str:
    waiting = room.get("pending_updates")
    if waiting:
        return f"{_activity(room)}, {waiting} update(s) waiting for a missing dependency"
    return _activity(room)


def _activity(room: dict[str, Any]) -> str:
    if room["idle"]:
        unload_in = room.get("unload_in")
        return "idle" if unload_in is None else f"idle, unloads in {unload_in:.0f} s"
    if room.get("syncing"):
        return f"active, {room['syncing']} syncing"
    return "active"


def format_room(room: dict[str, Any]) -> str:
    """One room's health and its connections, oldest first."""
    others = room.get("other_nodes")
    lines = [
        "",
        f"room {room['name']}: {_state(room)}",
        f"clients {room['clients']} ({room['read_only']} read-only)  presence states "
        f"{room['awareness']}  document {size(room['document_bytes'])}  "
        f"uncommitted {size(room['pending_bytes'])}"
        + (f"  open on {others} other node(s)" if others else ""),
        "",
    ]
    if not room["connections"]:
        lines.append("no connections")
        return "\n".join(lines) + "\n"
    rows: list[tuple[str, ...]] = [("ID", "USER", "ROLE", "CLIENT", "CONNECTED", "FOR", "QUEUED")]
    for c in room["connections"]:
        user = c["user"] or "-"
        if c.get("name"):
            user += f" ({c['name']})"
        role = c["role"]
        if c["read_only"] and role in ("owner", "editor"):
            role += " (read-only)"
        notes = [] if c["synced"] else ["syncing"]
        if c["closing"]:
            notes.append("closing")
        rows.append(
            (
                str(c["id"]),
                user,
                role,
                c["client"] or "-",
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(c["connected_at"])),
                duration(c["connected_seconds"]),
                f"{c['queued_frames']} / {size(c['queued_bytes'])}"
                + (f"  {', '.join(notes)}" if notes else ""),
            )
        )
    lines.extend(_table(rows, right=(0,)))
    return "\n".join(lines) + "\n"


def _table(rows: list[tuple[str, ...]], right: tuple[int, ...] = ()) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def size(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    unit = "B"
    for bigger in ("KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            break
        n, unit = n / 1024, bigger
    return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"


def duration(seconds: float) -> str:
    """3725 -> '1h02m'; 75 -> '1m15s'; 4.2 -> '4s'."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"
