"""`ysync repair ROOM`: make a room whose stored updates a node refuses loadable again.

A node refuses to load a room when one of its stored updates would be refused
from a client (`ysync.rooms.structure`: nesting that crashes yrs), because
applying it could kill the process and serving only what came before it would
hide the rest. This command reads the room's updates without handing them to
yrs, rewrites every struct nested deeper than --max-nesting-depth (and what
hangs from it) as a GC struct of the same clocks — what yrs makes of deleted
content, so everything else keeps its place — checks that the result loads,
and replaces the room's stored updates with it as one snapshot.

Honest about what is lost: the content of the replaced structs (too deep for any
client to have used it) and nothing else. The original updates are written to
--backup first (length-prefixed, in store order), so the repair can be undone
with `ysync import files`-style tooling or by hand. Run it while no node has
the room loaded (a damaged room is never loaded, so that holds unless the room
was fine when loaded and damaged since).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from ysync.persistence.urls import open_store
from ysync.rooms import codec
from ysync.rooms.lib0 import var_uint
from ysync.rooms.protocols import StoreError
from ysync.rooms.room import Room, RoomConfig
from ysync.rooms.structure import repair

COMMAND = "repair"
DEFAULT_STORE = "sqlite:///./data/ysync.db"
DEFAULT_DEPTH = 256


def add_command(commands: Any) -> None:
    """Add `repair` to the `ysync` command's subparsers."""
    parser = commands.add_parser(
        COMMAND,
        help="rewrite a room's stored updates that a node refuses to load",
        description="Replace structs nested too deep (they crash yrs) with GC structs, "
        "so the room loads again. --dry-run writes nothing.",
    )
    parser.add_argument("room", help="the room's name")
    parser.add_argument(
        "--store",
        default=os.environ.get("YSYNC_STORE", DEFAULT_STORE),
        help=f"the ysync store [env YSYNC_STORE, default {DEFAULT_STORE}]",
    )
    parser.add_argument(
        "--max-nesting-depth",
        type=int,
        default=int(os.environ.get("YSYNC_MAX_NESTING_DEPTH", DEFAULT_DEPTH)),
        help=f"the nodes' max_nesting_depth [env YSYNC_MAX_NESTING_DEPTH, default {DEFAULT_DEPTH}]",
    )
    parser.add_argument("--backup", type=Path, help="where to save the original updates")
    parser.add_argument("--dry-run", action="store_true", help="report, write nothing")


def run(args: argparse.Namespace) -> int:
    """Exit status: 0 repaired (or nothing to do), 2 the store or the repair failed."""
    try:
        message = asyncio.run(_run(args))
    except (StoreError, ValueError, OSError) as exc:
        print(f"ysync repair: error: {exc}", file=sys.stderr)
        return 2
    print(message)
    return 0


async def _run(args: argparse.Namespace) -> str:
    store = await open_store(args.store)
    try:
        updates = await store.load(args.room)
        if not updates:
            return f"{args.room}: nothing stored"
        fixed, replaced = repair(updates, args.max_nesting_depth)
        if not replaced:
            return f"{args.room}: {len(updates)} updates, all load: nothing to do"
        room = Room(args.room, RoomConfig(max_nesting_depth=args.max_nesting_depth))
        try:
            room.load(fixed)
        except codec.ProtocolError as exc:
            raise ValueError(f"the repaired updates still do not load: {exc.reason}") from None
        snapshot = room.doc.get_update()
        room.close()
        summary = f"{args.room}: {replaced} structs replaced in {len(updates)} updates"
        if args.dry_run:
            return summary + " (dry run: nothing written)"
        backup = args.backup or Path(f"{_safe(args.room)}.ysync-backup")
        backup.write_bytes(b"".join(var_uint(len(u)) + u for u in updates))
        await store.delete(args.room)
        await store.append([(args.room, snapshot)])
        return summary + f"; stored as one snapshot; originals in {backup}"
    finally:
        await store.close()


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
