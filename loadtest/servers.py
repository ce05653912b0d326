"""The servers under test: ysync and its peers, each started as a subprocess on a free port.

ysync runs from this checkout (`python -m ysync serve --store memory://`). The peers are
installed on first use into a cache directory (default ``~/.cache/ysync-bench``, or
``$YSYNC_BENCH_CACHE``): npm `@hocuspocus/server` (v3: v4 needs Node 22) and
`@y/websocket-server` 0.1.1 (the y-websocket reference server; 0.1.5 needs an unreleased
yjs 14), and pycrdt-websocket from the current environment (the `load` and `test` extras),
served by uvicorn. Every server keeps its documents in memory, unless `durable` gives it
its users' usual store in a fresh directory (ysync: SQLite; y-websocket: YPERSISTENCE with
y-leveldb; Hocuspocus: @hocuspocus/extension-sqlite), or `cluster_nodes` makes two nodes of
it share a redis-server (ysync: --redis-url; Hocuspocus: @hocuspocus/extension-redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib.metadata
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ysync.loadtest.node import ensure_node_modules, node_binary

PEERS_DIR = Path(__file__).parent / "peers"
NODE_PEERS = {
    "@hocuspocus/server": "^3.4.4",
    "@hocuspocus/extension-redis": "^3.4.4",
    "@hocuspocus/extension-sqlite": "^3.4.4",
    "@y/websocket-server": "0.1.1",
    "y-leveldb": "^0.2.0",
    "yjs": "~13.6.27",
}


def cache_dir() -> Path:
    return Path(os.environ.get("YSYNC_BENCH_CACHE", Path.home() / ".cache" / "ysync-bench"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class ServerSpec:
    name: str
    protocol: str  # what the load generator speaks: "y-websocket" or "hocuspocus"
    command: Callable[[int], list[str]]
    env: Callable[[int], dict[str, str]] = lambda port: {}
    cwd: Callable[[], Path | None] = lambda: None
    prepare: Callable[[], None] = lambda: None
    version: Callable[[], str] = lambda: "?"
    python: bool = False  # py-spy can profile it
    dialects: tuple[str, ...] = ("y-websocket",)  # the protocols it speaks (`--dialect`)


def _node_cache() -> Path:
    return cache_dir() / "node"


def _install_node_peers() -> None:
    directory = _node_cache()
    directory.mkdir(parents=True, exist_ok=True)
    manifest = directory / "package.json"
    wanted = json.dumps({"private": True, "dependencies": NODE_PEERS}, indent=2) + "\n"
    if not manifest.exists() or manifest.read_text() != wanted:
        manifest.write_text(wanted)  # newer than node_modules: the next call reinstalls
    ensure_node_modules(directory)
    # ESM resolves packages next to the script, so the script lives in the cache too.
    shutil.copyfile(PEERS_DIR / "hocuspocus-server.mjs", directory / "hocuspocus-server.mjs")


def _npm_version(package: str) -> Callable[[], str]:
    def version() -> str:
        try:
            path = _node_cache() / "node_modules" / package / "package.json"
            return str(json.loads(path.read_text())["version"])
        except (OSError, ValueError, KeyError):
            return "?"

    return version


def _python_version(dist: str) -> Callable[[], str]:
    def version() -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    return version


def _ysync_version() -> str:
    root = Path(__file__).parent.parent
    try:
        rev = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = "?"
    return f"{_python_version('ysync')()} ({rev})"


def _ysync_command(store: str, *extra: str) -> Callable[[int], list[str]]:
    return lambda port: [
        *(sys.executable, "-m", "ysync", "serve", "--store", store, *extra),
        *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
    ]


YSYNC = ServerSpec(
    name="ysync",
    protocol="y-websocket",
    command=_ysync_command("memory://"),
    # Every benchmark client comes from 127.0.0.1: lift the per-address connection limit
    # (the peers have none). Set through the environment so older versions ignore it.
    env=lambda port: {"YSYNC_IP_CONNECTIONS_PER_MINUTE": "0"},
    version=_ysync_version,
    python=True,
    dialects=("y-websocket", "hocuspocus"),
)


def ysync_at(rev: str) -> ServerSpec:
    """ysync as committed at `rev`, exported into the cache and run from there.

    Benchmarks take minutes; the working tree may change under them (or be mid-edit). A
    snapshot of a commit is what the figures are about. It runs in this Python environment,
    with the snapshot ahead of the installed package on PYTHONPATH.
    """
    root = Path(__file__).parent.parent
    sha = subprocess.run(
        ["git", "rev-parse", "--short=12", f"{rev}^{{commit}}"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    base = cache_dir() / f"ysync-{sha}"
    package = base / "ysync"
    if not (package / "__init__.py").exists():
        package.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", "--format=tar", sha],
            cwd=root,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(package)], input=archive, check=True, timeout=60)

    def env(port: int) -> dict[str, str]:
        path = os.pathsep.join(filter(None, [str(base), os.environ.get("PYTHONPATH")]))
        return {**YSYNC.env(port), "PYTHONPATH": path}

    return replace(YSYNC, env=env, version=lambda: f"{_python_version('ysync')()} ({sha})")


HOCUSPOCUS = ServerSpec(
    name="hocuspocus",
    protocol="hocuspocus",
    command=lambda port: [node_binary(), "hocuspocus-server.mjs", str(port)],
    cwd=_node_cache,
    prepare=_install_node_peers,
    version=_npm_version("@hocuspocus/server"),
    dialects=("hocuspocus",),
)

Y_WEBSOCKET = ServerSpec(
    name="y-websocket",
    protocol="y-websocket",
    command=lambda port: [node_binary(), "node_modules/@y/websocket-server/src/server.js"],
    env=lambda port: {"HOST": "127.0.0.1", "PORT": str(port)},
    cwd=_node_cache,
    prepare=_install_node_peers,
    version=_npm_version("@y/websocket-server"),
)

PYCRDT_WEBSOCKET = ServerSpec(
    name="pycrdt-websocket",
    protocol="y-websocket",
    command=lambda port: [
        *(sys.executable, "-m", "uvicorn", "ysync.loadtest.pycrdt_peer:app"),
        *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
        # The same transport settings as `ysync serve`: no per-message compression.
        *("--ws-per-message-deflate", "false", "--ws-max-size", str(16 * 1024 * 1024)),
    ],
    version=_python_version("pycrdt-websocket"),
    python=True,
)

SERVERS = {s.name: s for s in (YSYNC, HOCUSPOCUS, Y_WEBSOCKET, PYCRDT_WEBSOCKET)}
PEERS = [HOCUSPOCUS, Y_WEBSOCKET, PYCRDT_WEBSOCKET]


def _with_env(spec: ServerSpec, extra: dict[str, str]) -> ServerSpec:
    base = spec.env
    return replace(spec, env=lambda port: {**base(port), **extra})


def durable(spec: ServerSpec, directory: Path, *, store: str | None = None) -> ServerSpec | None:
    """`spec` with the store its users run it with, in `directory` (None: it has none here).

    `store` overrides ysync's (e.g. a PostgreSQL URL)."""
    if spec.name == YSYNC.name:
        return replace(spec, command=_ysync_command(store or f"sqlite:///{directory}/ysync.db"))
    if spec.name == HOCUSPOCUS.name:
        return _with_env(spec, {"HOCUSPOCUS_SQLITE": str(directory / "hocuspocus.sqlite")})
    if spec.name == Y_WEBSOCKET.name:
        return _with_env(spec, {"YPERSISTENCE": str(directory / "leveldb")})
    return None


def cluster_nodes(spec: ServerSpec, redis_port: int, directory: Path) -> ServerSpec | None:
    """A node of a cluster of `spec` over the redis-server at `redis_port` (None: cannot).

    ysync's nodes share a store, as they must (one SQLite file in `directory`: one host);
    Hocuspocus's keep their documents in memory, as its Redis extension allows."""
    if spec.name == YSYNC.name:
        url = f"redis://127.0.0.1:{redis_port}/0"
        store = f"sqlite:///{directory}/cluster.db"
        return replace(spec, command=_ysync_command(store, "--redis-url", url))
    if spec.name == HOCUSPOCUS.name:
        return _with_env(spec, {"HOCUSPOCUS_REDIS_PORT": str(redis_port)})
    return None


@contextlib.asynccontextmanager
async def start_redis(*, cpu: int | None, log_path: Path) -> AsyncIterator[int]:
    """A throwaway redis-server on a free 127.0.0.1 port, without persistence; yields the port."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("the cluster scenario needs redis-server on PATH")
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            *pinned(args, cpu),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    try:
        await _wait_listening(port, process, 20)
        yield port
    finally:
        await stop_process(process)


def die_with_parent() -> None:
    """In a child before exec: get SIGTERM when the benchmark process dies (Linux prctl).

    Servers run in their own session so a Ctrl-C reaches only the benchmark, which stops
    them; if the benchmark is killed outright, this still takes them down with it.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


# The CPUs this process may use, read before the benchmark pins itself to the generator's CPU:
# checking against its own affinity afterwards would leave the server unpinned, inheriting that
# one CPU (which put server and generator on the same core in every run before this was fixed).
_MACHINE_CPUS = frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def pinned(command: list[str], cpu: int | None) -> list[str]:
    """Prefix `taskset -c CPU` when pinning is possible (Linux, taskset, that CPU present)."""
    if cpu is None or shutil.which("taskset") is None or cpu not in (_MACHINE_CPUS or ()):
        return command
    return ["taskset", "-c", str(cpu), *command]


@dataclass
class RunningServer:
    spec: ServerSpec
    port: int
    process: asyncio.subprocess.Process

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


async def _wait_listening(port: int, process: asyncio.subprocess.Process, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if process.returncode is not None:
            raise RuntimeError(f"server exited with code {process.returncode} before listening")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if loop.time() > deadline:
                raise RuntimeError(
                    f"server not listening on port {port} after {timeout} s"
                ) from None
            await asyncio.sleep(0.05)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return


@contextlib.asynccontextmanager
async def start_server(
    spec: ServerSpec, *, cpu: int | None, log_path: Path, timeout: float = 30
) -> AsyncIterator[RunningServer]:
    """Start `spec` on a free 127.0.0.1 port pinned to `cpu`; stop it (SIGTERM, then SIGKILL)."""
    port = free_port()
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            *pinned(spec.command(port), cpu),
            cwd=spec.cwd(),
            env={**os.environ, **spec.env(port), "NODE_NO_WARNINGS": "1"},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    try:
        await _wait_listening(port, process, timeout)
        yield RunningServer(spec, port, process)
    finally:
        await stop_process(process)


def terminate(proc: subprocess.Popen[bytes], grace: float = 15) -> None:
    """Stop a child process: SIGTERM, then SIGKILL after `grace` seconds (the sync twin of
    `stop_process`)."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def stop_process(process: asyncio.subprocess.Process, grace: float = 10) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
