"""`ysync doc get|put` and `ysync watch`: command-line tools built on the SDK.

    ysync doc get ROOM [--format json|update]   print the document (JSON, or a binary update)
    ysync doc put ROOM FILE                      apply a JSON file or a binary Yjs update ("-": stdin)
    ysync watch ROOM [--duration S] [-v]         live stream of changes and presence

Each takes `--url` (default ws://127.0.0.1:1234) and `--token`. The `ysync`
command (ysync.server.cli) adds these with `add_commands` and runs them with
`run`; nothing here imports the server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from pycrdt import Array, ArrayEvent, Map, MapEvent, Text, TextEvent, TransactionEvent

from ysync.clients.awareness import AwarenessChange
from ysync.clients.errors import ClientError
from ysync.clients.events import map_changes, sequence_delta
from ysync.clients.session import Session, Status, StatusEvent, connect
from ysync.rooms.codec import decode_state_vector
from ysync.rooms.content import apply_json, describe, doc_to_json, root_kinds

DEFAULT_URL = "ws://127.0.0.1:1234"
COMMANDS = ("doc", "watch")
_PREVIEW = 60  # characters of inserted text or values shown per change


def add_commands(commands: Any) -> None:
    """Add `doc` and `watch` to the `ysync` command's subparsers."""
    doc = commands.add_parser(
        "doc", help="read or write a room's document", description="Read or write a document."
    )
    doc_commands = doc.add_subparsers(dest="doc_command", required=True)
    get = doc_commands.add_parser(
        "get",
        help="print a document as JSON",
        description="Print the document of ROOM: JSON (text and XML roots as strings, "
        "maps as objects, arrays as lists), or with --format update the binary Yjs update.",
    )
    _common(get)
    get.add_argument(
        "--format",
        choices=("json", "update"),
        default="json",
        help="json (default) or update: the whole document as a binary Yjs update on stdout",
    )
    put = doc_commands.add_parser(
        "put",
        help="apply a JSON file or a binary update to a document",
        description="Apply FILE to the document of ROOM. JSON: an object whose keys are root "
        "names; a string sets a text root, an object a map (keys not listed are removed), a "
        "list an array; roots not listed are left alone. Otherwise FILE is a binary Yjs update "
        "(e.g. from `doc get --format update`), merged into the document.",
    )
    _common(put)
    put.add_argument("file", metavar="FILE", help="the JSON or update file; - reads stdin")
    put.add_argument(
        "--format",
        choices=("auto", "json", "update"),
        default="auto",
        help="auto (default): JSON if the file parses as JSON, else a binary update",
    )
    watch = commands.add_parser(
        "watch",
        help="show a room's changes and presence live",
        description="Print changes to the document of ROOM and who joins and leaves, as they "
        "happen, until interrupted (Ctrl-C) or --duration.",
    )
    _common(watch)
    watch.add_argument("--duration", type=float, help="stop after this many seconds")
    watch.add_argument(
        "-v", "--verbose", action="store_true", help="also show presence updates (cursor moves)"
    )


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("room", metavar="ROOM", help="the room name, e.g. team/notes")
    parser.add_argument("--url", default=DEFAULT_URL, help=f"server URL (default {DEFAULT_URL})")
    parser.add_argument("--token", help="access token, sent as the `token` query parameter")
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for the server (default 10)"
    )


def run(args: argparse.Namespace) -> int:
    """Run the parsed `doc` or `watch` command; returns the exit status."""
    if args.command == "watch":
        main: Callable[[], Any] = lambda: watch(args, sys.stdout)  # noqa: E731
    elif args.doc_command == "get":
        main = lambda: doc_get(args)  # noqa: E731
    else:
        main = lambda: doc_put(args)  # noqa: E731
    try:
        return int(asyncio.run(main()))
    except KeyboardInterrupt:
        return 130
    except (ClientError, TimeoutError, ValueError, OSError) as exc:
        print(f"ysync: error: {exc}", file=sys.stderr)
        return 1


async def doc_get(args: argparse.Namespace) -> int:
    # read_only: this session never uploads anything, whatever happens locally.
    async with _connect(args, read_only=True) as session:
        await session.synced(args.timeout)
        if args.format == "update":
            sys.stdout.buffer.write(session.doc.get_update())
            sys.stdout.buffer.flush()
        else:
            json.dump(doc_to_json(session.doc), sys.stdout, indent=2, ensure_ascii=False)
            sys.stdout.write("\n")
    return 0


async def doc_put(args: argparse.Namespace) -> int:
    data = sys.stdin.buffer.read() if args.file == "-" else _read(args.file)
    content: Any = None
    if args.format in ("auto", "json"):
        try:
            content = json.loads(data)
        except ValueError:
            if args.format == "json":
                raise ValueError(f"{args.file}: not valid JSON") from None
        if content is not None and not isinstance(content, dict):
            raise ValueError(f"{args.file}: JSON must be an object of root name -> value")
    async with _connect(args) as session:
        await session.synced(args.timeout)
        with session.edit():
            if content is not None:
                changed = apply_json(session.doc, content)
                summary = f"changed {', '.join(changed)}" if changed else "already up to date"
            else:
                before = session.doc.get_state()
                session.doc.apply_update(data)
                summary = "merged the update" if session.doc.get_state() != before else "no news"
        await session.flush(args.timeout)  # the server has applied it
        if session.permission_denied is not None:
            raise ClientError(f"the server refused the edit: {session.permission_denied}")
    print(f"{args.room}: {summary}", file=sys.stderr)
    return 0


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


def _connect(args: argparse.Namespace, *, read_only: bool = False) -> Session:
    # One-shot commands fail fast rather than retry against a server that is down.
    return connect(
        args.url,
        args.room,
        token=args.token,
        reconnect=False,
        read_only=read_only,
        open_timeout=args.timeout,
    )


# -- watch ----------------------------------------------------------------------------------


class Watcher:
    """Turns status changes, presence and document events into readable lines."""

    def __init__(self, session: Session, out: TextIO, *, verbose: bool = False) -> None:
        self.session = session
        self.out = out
        self.verbose = verbose
        self._observed: set[str] = set()
        self._empty: set[str] = set()
        self._roots: dict[str, Any] = {}
        self._report_scheduled = False
        self._pending: list[str] = []
        self._clocks: dict[int, int] = {}
        self._names: dict[int, str] = {}  # last known display name per client id

    def line(self, text: str) -> None:
        self.out.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        self.out.flush()

    def who(self, client_id: int) -> str:
        state = self.session.awareness.states.get(client_id)
        user = state.get("user") if isinstance(state, dict) else None
        name = user.get("name") if isinstance(user, dict) else None
        if isinstance(name, str) and name:
            self._names[client_id] = name
        name = self._names.get(client_id)
        return f"{name} ({client_id})" if name else f"client {client_id}"

    # status ----------------------------------------------------------------------

    def on_status(self, event: StatusEvent) -> None:
        s = self.session
        if event.status is Status.CONNECTING:
            self.line(f"connecting to {s.url} room {s.room!r}")
        elif event.status is Status.CONNECTED:
            self.line("connected")
        elif event.status is Status.SYNCED:
            self._attach_roots()
            self._clocks = _clocks(s.doc.get_state())
            others = [self.who(c) for c in s.awareness.states if c != s.doc.client_id]
            self.line(f"synced: {describe(s.doc)}")
            self.line("present: " + (", ".join(others) if others else "nobody else"))
        elif event.status is Status.DISCONNECTED:
            why = f"{event.code} {event.reason}".strip() if event.code else event.reason
            self.line(f"disconnected ({why}); retrying in {event.retry_in or 0:.1f} s")
        elif event.status is Status.CLOSED and event.error is not None:
            self.line(f"closed: {event.error}")

    # presence -------------------------------------------------------------------------

    def on_awareness(self, change: AwarenessChange) -> None:
        if change.local:
            return
        for client_id in change.added:
            self.line(f"+ {self.who(client_id)} joined {_preview(self._state(client_id))}")
        for client_id in change.removed:
            self.line(f"- {self.who(client_id)} left")
        if self.verbose:
            for client_id in change.updated:
                self.line(f"~ {self.who(client_id)} {_preview(self._state(client_id))}")

    def _state(self, client_id: int) -> Any:
        return self.session.awareness.states.get(client_id)

    # document ----------------------------------------------------------------------------

    def _attach_roots(self, names: list[str] | None = None) -> list[str]:
        """Observe the roots (all, or `names`) whose type can be told; returns
        the names newly observed. Empty roots are remembered in `_empty`."""
        attached = []
        for name, kind in root_kinds(self.session.doc, names).items():
            if name in self._observed:
                continue
            if kind is None:
                self._empty.add(name)
                continue
            self._empty.discard(name)
            self._observed.add(name)
            attached.append(name)
            if kind == "xml":
                continue  # XML changes are reported per transaction, without details
            root: Any = self.session.doc.get(name, type=_TYPES[kind])
            # Keep the root: its subscription lives as long as this Python object.
            self._roots[name] = root
            root.observe_deep(self._events_handler(name))
        return attached

    def _events_handler(self, name: str) -> Callable[[list[Any]], None]:
        # One parameter only: pycrdt passes the transaction too to callbacks taking two.
        def on_events(events: list[Any]) -> None:
            for event in events:
                path = ".".join([name, *(str(p) for p in event.path)])
                self._pending.extend(_describe_event(path, event))

        return on_events

    def on_transaction(self, event: TransactionEvent) -> None:
        # The document is still inside its transaction: report once it is done.
        if not self._report_scheduled:
            self._report_scheduled = True
            asyncio.get_running_loop().call_soon(self._report)

    def _report(self) -> None:
        """Attribute the pending lines to the clients whose clocks advanced, and
        start observing roots that appeared."""
        self._report_scheduled = False
        lines, self._pending = self._pending, []
        if not self.session.is_synced:
            return  # the initial sync (or a resync) is summarised on SYNCED
        clocks = _clocks(self.session.doc.get_state())
        authors = [c for c, clock in clocks.items() if clock > self._clocks.get(c, 0)]
        self._clocks = clocks
        # Roots not observed yet; empty ones only when nothing observed changed
        # (probing costs a copy of the document).
        roots = self.session.doc.keys()
        fresh = [
            n for n in roots if n not in self._observed and (not lines or n not in self._empty)
        ]
        if fresh:
            copy = doc_to_json(self.session.doc)
            for name in self._attach_roots(fresh):
                lines.append(f"{name} = {_preview(_json(copy.get(name)))} (new root)")
        if not lines:
            if not authors:
                return
            lines = ["changed"]
        by = ", ".join(self.who(c) for c in authors) if authors else "someone (deletions only)"
        for text in lines:
            self.line(f"{by}: {text}")


_TYPES: dict[str, type[Any]] = {"text": Text, "map": Map, "array": Array}


def _clocks(state_vector: bytes) -> dict[int, int]:
    return decode_state_vector(state_vector)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _preview(value: Any) -> str:
    """`value` (a string as is, anything else as JSON) cut to a readable length."""
    text = value if isinstance(value, str) else _json(value)
    return text if len(text) <= _PREVIEW else text[: _PREVIEW - 1] + "…"


def _describe_event(path: str, event: Any) -> list[str]:
    if isinstance(event, MapEvent):
        out = []
        for key, change in map_changes(event).items():
            if change["action"] == "delete":
                out.append(f"{path}.{key} deleted")
            else:
                out.append(f"{path}.{key} = {_preview(_json(change.get('newValue')))}")
        return out
    if isinstance(event, TextEvent | ArrayEvent):
        text = isinstance(event, TextEvent)
        delta = sequence_delta(event)
        inserts = [op["insert"] for op in delta if "insert" in op]
        deleted = sum(int(op.get("delete", 0)) for op in delta)
        parts = []
        if inserts:
            if text:
                parts.append("+" + _preview(_json("".join(str(i) for i in inserts))))
            else:
                items = [item for chunk in inserts for item in chunk]
                parts.append("+" + _preview(items))
        if deleted:
            # pycrdt counts text in UTF-8 bytes.
            parts.append(f"-{deleted} {'bytes' if text else 'items'}")
        return [f"{path} {' '.join(parts)}"] if parts else []
    return [f"{path} changed"]


async def watch(args: argparse.Namespace, out: TextIO) -> int:
    session = connect(args.url, args.room, token=args.token, read_only=True)
    watcher = Watcher(session, out, verbose=args.verbose)
    session.on_status(watcher.on_status)
    session.awareness.observe(watcher.on_awareness)
    subscription = session.doc.observe(watcher.on_transaction)
    async with session:
        with contextlib.suppress(TimeoutError):
            await session.closed(args.duration)  # None: until the session ends or Ctrl-C
        session.doc.unobserve(subscription)
    return 1 if session.error is not None else 0
