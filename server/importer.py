"""`ysync import`: bring the documents of another Yjs server's store into a ysync store.

    ysync import hocuspocus-sqlite ./db.sqlite   --store sqlite:///./data/ysync.db
    ysync import y-leveldb         ./dbDir       --store postgresql://...
    ysync import pycrdt-sqlite     ./ystore.db
    ysync import files             ./exports     [--dry-run]

Sources (each yields one Yjs update per document):

- `hocuspocus-sqlite`: @hocuspocus/extension-sqlite's (or extension-database's)
  table `documents(name, data)`, one encoded state per document (`--table`).
- `y-leveldb`: the y-websocket server's `YPERSISTENCE` directory (y-leveldb's
  layout), read by a small Node helper built on npm `y-leveldb` (installed on
  first use under `~/.cache/ysync/leveldb-export`; needs Node.js and npm). Stop
  that server first: LevelDB allows one process at a time.
- `pycrdt-sqlite`: pycrdt-store's / pycrdt-websocket's `SQLiteYStore`, table
  `yupdates(path, yupdate, ...)` plus `ycheckpoints` when present; the
  document is the store's `path` (the room name pycrdt-websocket used).
- `files`: every `*.bin` or `*.ysync` file under a directory, each one Yjs update
  (v1) of the document named by its relative path without the extension
  (`team/notes.bin` → `team/notes`).

Idempotent: a document whose stored state already holds everything imported is
left alone ("unchanged"), so re-running an import adds nothing; otherwise the
imported update is appended, and Yjs merges it with whatever is there (edits
made since the first import are kept, nothing is duplicated). A document that
does not decode is reported and skipped; the others go on. `--dry-run` reads and
checks everything and writes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pycrdt import get_state, merge_updates

from ysync.loadtest.node import NodeError, ensure_node_modules
from ysync.persistence.urls import open_store
from ysync.rooms.lib0 import ProtocolError
from ysync.rooms.protocols import Store, StoreError
from ysync.rooms.room import Room
from ysync.rooms.structure import SAFE_NESTING_DEPTH, StructureIndex

COMMAND = "import"
SOURCES = ("hocuspocus-sqlite", "y-leveldb", "pycrdt-sqlite", "files")
DEFAULT_STORE = "sqlite:///./data/ysync.db"
FILE_SUFFIXES = (".bin", ".ysync")
LEVELDB_HELPER = Path(__file__).parent / "leveldb"


class SourceError(Exception):
    """The source cannot be read at all (missing file, wrong table, no Node.js)."""


@dataclass(frozen=True, slots=True)
class Document:
    name: str
    update: bytes | None  # None: could not be read (`problem` says why)
    problem: str = ""


@dataclass(slots=True)
class Summary:
    imported: int = 0
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    bytes: int = 0

    def lines(self, dry_run: bool) -> list[str]:
        verb = "would import" if dry_run else "imported"
        head = f"{verb} {self.imported} documents ({self.bytes} bytes)"
        if not dry_run:
            head += f", {self.unchanged} unchanged"
        out = [f"{head}, {len(self.failed)} failed"]
        out += [f"  failed: {name}: {why}" for name, why in self.failed]
        return out


# -- sources ----------------------------------------------------------------------------


def read_hocuspocus_sqlite(path: Path, table: str = "documents") -> Iterator[Document]:
    if not table.replace("_", "").isalnum():
        raise SourceError(f"not a table name: {table!r}")
    with _sqlite(path) as db:
        try:
            rows = db.execute(f'SELECT name, data FROM "{table}" ORDER BY rowid').fetchall()
        except sqlite3.Error as exc:
            raise SourceError(f"{path}: no Hocuspocus table {table!r} ({exc})") from None
    for name, data in rows:
        yield _checked(str(name), data)


def read_pycrdt_sqlite(path: Path) -> Iterator[Document]:
    with _sqlite(path) as db:
        try:
            rows = db.execute(
                "SELECT path, yupdate FROM yupdates ORDER BY path, timestamp"
            ).fetchall()
        except sqlite3.Error as exc:
            raise SourceError(f"{path}: no pycrdt-store table yupdates ({exc})") from None
        try:
            checkpoints = dict(db.execute("SELECT path, checkpoint FROM ycheckpoints").fetchall())
        except sqlite3.Error:
            checkpoints = {}  # pycrdt-websocket's stores before pycrdt-store had none
    updates: dict[str, list[bytes]] = {}
    for name, checkpoint in checkpoints.items():
        updates.setdefault(str(name), []).append(bytes(checkpoint))
    for name, update in rows:
        if update:
            updates.setdefault(str(name), []).append(bytes(update))
    for name, parts in updates.items():
        yield _merged(name, parts)


def read_files(directory: Path) -> Iterator[Document]:
    if not directory.is_dir():
        raise SourceError(f"{directory} is not a directory")
    for path in sorted(directory.rglob("*")):
        if path.suffix in FILE_SUFFIXES and path.is_file():
            name = path.relative_to(directory).with_suffix("").as_posix()
            yield _checked(name, path.read_bytes())


def read_leveldb(directory: Path) -> Iterator[Document]:
    if not directory.is_dir():
        raise SourceError(f"{directory} is not a directory")
    helper = _leveldb_helper()
    node = shutil.which("node")
    if node is None:
        raise SourceError("reading y-leveldb needs Node.js: put `node` on PATH")
    process = subprocess.Popen(
        [node, str(helper / "export.mjs"), str(directory.resolve())],
        cwd=helper,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout = process.stdout
    if stdout is None:  # pragma: no cover - created with stdout=PIPE
        raise SourceError("no output from the LevelDB helper")
    for line in stdout:
        record = json.loads(line)
        yield _checked(record["name"], base64.b64decode(record["update"]))
    stderr = process.stderr.read() if process.stderr else ""
    if process.wait() != 0:
        raise SourceError(f"the LevelDB helper failed: {stderr.strip()[-2000:]}")


def _leveldb_helper() -> Path:
    """The helper with its locked npm packages, in a writable cache directory."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ysync"
    target = cache / "leveldb-export"
    target.mkdir(parents=True, exist_ok=True)
    for name in ("export.mjs", "package.json", "package-lock.json"):
        source = LEVELDB_HELPER / name
        if not (target / name).exists() or (target / name).read_bytes() != source.read_bytes():
            shutil.copyfile(source, target / name)
    try:
        ensure_node_modules(target)
    except NodeError as exc:
        raise SourceError(str(exc)) from None
    return target


def _sqlite(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    try:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise SourceError(f"{path}: {exc}") from None


def _checked(name: str, data: object) -> Document:
    if not isinstance(data, bytes | bytearray | memoryview):
        return Document(name, None, "not binary data")
    update = bytes(data)
    refused = _refused([update])
    if refused is not None:
        return Document(name, None, refused)
    return Document(name, update)


def _merged(name: str, parts: list[bytes]) -> Document:
    refused = _refused(parts)
    if refused is not None:
        return Document(name, None, refused)
    try:
        return Document(name, parts[0] if len(parts) == 1 else merge_updates(*parts))
    except ValueError:
        return Document(name, None, "not a Yjs update")


def _refused(parts: list[bytes]) -> str | None:
    """Why these updates may not be imported: not Yjs, or nested deep enough to crash
    yrs (read by `ysync.rooms.structure` before yrs sees them); None if fine."""
    structure = StructureIndex(SAFE_NESTING_DEPTH)
    for part in parts:
        try:
            structure.scan(part)
        except ProtocolError as exc:
            if "nest" not in exc.reason:
                return "not a Yjs update"
            return f"refused: {exc.reason}"
        try:
            get_state(part)
        except ValueError:
            return "not a Yjs update"
    return None


def read_source(source: str, path: Path, table: str = "documents") -> Iterator[Document]:
    if source == "hocuspocus-sqlite":
        return read_hocuspocus_sqlite(path, table)
    if source == "y-leveldb":
        return read_leveldb(path)
    if source == "pycrdt-sqlite":
        return read_pycrdt_sqlite(path)
    return read_files(path)


# -- into a ysync store ------------------------------------------------------------------


async def import_documents(
    documents: Iterator[Document],
    store: Store | None,
    progress: Progress,
) -> Summary:
    """Write each readable document into `store` unless it holds it already
    (None: a dry run, nothing written)."""
    summary = Summary()
    for document in documents:
        progress.step(document.name)
        update = document.update
        if update is None:
            summary.failed.append((document.name, document.problem))
            continue
        if store is not None and await _holds(store, document.name, update):
            summary.unchanged += 1
            continue
        if store is not None:
            await store.append([(document.name, update)])
        summary.imported += 1
        summary.bytes += len(update)
    progress.done()
    return summary


async def _holds(store: Store, name: str, update: bytes) -> bool:
    room = Room(name)
    try:
        room.load(await store.load(name))
        return room.contains(update)
    finally:
        room.close()


class Progress:
    """A progress line on a terminal (documents done, the current one); silent otherwise."""

    def __init__(self, out: TextIO, enabled: bool) -> None:
        self.out = out
        self.enabled = enabled
        self.count = 0

    def step(self, name: str) -> None:
        self.count += 1
        if self.enabled:
            self.out.write(f"\r\x1b[K{self.count} documents  {name[:60]}")
            self.out.flush()

    def done(self) -> None:
        if self.enabled:
            self.out.write("\r\x1b[K")
            self.out.flush()


# -- the command -------------------------------------------------------------------------


def add_command(commands: Any) -> None:
    """Add `import` to the `ysync` command's subparsers."""
    parser = commands.add_parser(
        COMMAND,
        help="import documents from Hocuspocus, y-websocket (LevelDB), pycrdt-websocket or files",
        description="Import every document of another server's store into a ysync store. "
        "Re-running merges (nothing is duplicated); --dry-run writes nothing.",
    )
    parser.add_argument("source", choices=SOURCES, help="what kind of store to read")
    parser.add_argument("path", type=Path, help="its database file or directory")
    parser.add_argument(
        "--store",
        default=os.environ.get("YSYNC_STORE", DEFAULT_STORE),
        help=f"the ysync store to import into [env YSYNC_STORE, default {DEFAULT_STORE}]",
    )
    parser.add_argument(
        "--table", default="documents", help="hocuspocus-sqlite: the table [documents]"
    )
    parser.add_argument("--dry-run", action="store_true", help="read and check, write nothing")


def run(args: argparse.Namespace) -> int:
    """Exit status: 0 everything imported, 1 some documents failed, 2 the source or store failed."""
    progress = Progress(sys.stderr, sys.stderr.isatty())
    try:
        summary = asyncio.run(_run(args, progress))
    except (SourceError, StoreError, ValueError) as exc:
        progress.done()
        print(f"ysync import: error: {exc}", file=sys.stderr)
        return 2
    for line in summary.lines(args.dry_run):
        print(line)
    return 1 if summary.failed else 0


async def _run(args: argparse.Namespace, progress: Progress) -> Summary:
    documents = read_source(args.source, args.path, args.table)
    if args.dry_run:
        return await import_documents(documents, None, progress)
    store = await open_store(args.store)
    try:
        return await import_documents(documents, store, progress)
    finally:
        await store.close()
