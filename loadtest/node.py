"""Node.js helpers: find node/npm and install a directory's locked npm packages once."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

JS_DIR = Path(__file__).parent / "js"
"""The load generator (`loadgen.mjs`) with its committed package.json and package-lock.json."""

_STDERR_TAIL = 4000


class NodeError(RuntimeError):
    """Node.js or npm is missing, or an npm install failed."""


def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        raise NodeError("the benchmark's load generator needs Node.js >= 18: put `node` on PATH")
    return node


def ensure_node_modules(directory: Path, *, timeout: float = 600) -> None:
    """Install `directory`'s npm packages if `node_modules` is missing or older than the lock.

    npm rewrites ``node_modules/.package-lock.json`` on every install, so it is the
    marker to compare with ``package-lock.json`` (``npm ci`` when there is a lock).
    """
    npm = shutil.which("npm")
    if npm is None:
        raise NodeError(f"npm is needed to install the Node packages in {directory}")
    lock = directory / "package-lock.json"
    marker = directory / "node_modules" / ".package-lock.json"
    manifest = directory / "package.json"
    newest = max(p.stat().st_mtime for p in (lock, manifest) if p.exists())
    if marker.exists() and marker.stat().st_mtime >= newest:
        return
    args = ["ci"] if lock.exists() else ["install"]
    proc = subprocess.run(
        [npm, *args, "--no-audit", "--no-fund"],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if proc.returncode != 0:
        tail = proc.stderr[-_STDERR_TAIL:]
        raise NodeError(f"`npm {args[0]}` in {directory} failed ({proc.returncode}):\n{tail}")
