"""The processes the fault suite (loadtest/chaos.py) starts, kills and restarts.

A throwaway redis-server (or a Redis Cluster of 3 masters and 3 replicas), a
throwaway PostgreSQL (initdb + pg_ctl in a
temporary directory, as the `postgres` user when run as root), and `ysync
serve` nodes, each restartable on its own port. Everything on 127.0.0.1,
every wait bounded.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Self

from ysync.loadtest.servers import free_port

START_TIMEOUT = 30.0


def wait_for(check: object, what: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready after {timeout} s")


class Redis:
    """redis-server on a fixed free port, no persistence."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Self:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--loglevel", "warning"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._pong, "redis-server")
        return self

    def _pong(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None


class Postgres:
    """A throwaway PostgreSQL cluster; `url` is its `postgres` database."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="ysync-chaos-pg-"))
        self.port = free_port()
        self.prefix: list[str] = []
        self.pg_ctl = _pg_binary("pg_ctl")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        if os.geteuid() == 0:  # initdb refuses root
            shutil.chown(self.base, user="postgres", group="postgres")
            self.prefix = ["runuser", "-u", "postgres", "--"]
        data = self.base / "data"
        initdb = [_pg_binary("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
        self._run([*initdb, "--no-sync"])
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1"
        log = str(self.base / "server.log")
        self._run(
            [self.pg_ctl, "-D", str(data), "-l", log, "-w", "-t", "30", "-o", options, "start"]
        )

    def stop(self) -> None:
        data = str(self.base / "data")
        subprocess.run(
            [*self.prefix, self.pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"],
            capture_output=True,
            check=False,
            timeout=60,
        )
        shutil.rmtree(self.base, ignore_errors=True)

    def _run(self, command: list[str]) -> None:
        done = subprocess.run(
            [*self.prefix, *command], capture_output=True, text=True, check=False, timeout=120
        )
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {done.stdout}{done.stderr}")


def _pg_binary(name: str) -> str:
    # Debian keeps the server binaries off PATH, one directory per version.
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    binary = found[-1] if found else shutil.which(name)
    if binary is None:
        raise RuntimeError(f"PostgreSQL's {name} was not found: install the PostgreSQL server")
    return binary


class Node:
    """One `ysync serve` process, restartable on its port; its log is kept."""

    def __init__(self, index: int, args: list[str], log_dir: Path) -> None:
        self.index = index
        self.port = free_port()
        self.args = args
        self.log_path = log_dir / f"node{index}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [sys.executable, "-m", "ysync", "serve", "--port", str(self.port), *self.args]
        with open(self.log_path, "ab") as log:
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            self.proc = subprocess.Popen(command, stdout=log, stderr=log, env=env)
        wait_for(self._healthy, f"node {self.index}")

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"node {self.index} exited at start; see {self.log_path}")
        url = f"http://127.0.0.1:{self.port}/healthz"
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)

    @property
    def running(self) -> bool:
        return self.proc is not None

    def crashed(self) -> bool:
        """Whether it exited on its own; if so it is forgotten (start it again)."""
        if self.proc is None or self.proc.poll() is None:
            return False
        self.proc = None
        return True

    def send(self, sig: int) -> None:
        if self.proc is not None:
            self.proc.send_signal(sig)
            self.paused = sig == signal.SIGSTOP

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.paused:
            self.proc.send_signal(signal.SIGCONT)
            self.paused = False
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        return code


# -- Redis Cluster (tests/test_redis_cluster.py, chaos --redis cluster) -------------------


def _cluster_port() -> int:
    """A free port whose cluster-bus port (+10000) is valid and free too."""
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


class RedisCluster:
    """6 cluster-enabled redis-servers, 3 masters with a replica each; see `start`."""

    def __init__(self, nodes: int = 6) -> None:
        self.ports = [_cluster_port() for _ in range(nodes)]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.dir = Path(tempfile.mkdtemp(prefix="ysync-redis-cluster-"))

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def start(self) -> RedisCluster:
        cli = shutil.which("redis-cli")
        if shutil.which("redis-server") is None or cli is None:
            raise RuntimeError("redis-server and redis-cli are needed (apt-get install redis)")
        for port in self.ports:
            (self.dir / str(port)).mkdir()
            self.procs[port] = subprocess.Popen(
                self._args(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        for port in self.ports:
            self._wait(lambda p=port: self._pong(p), f"redis {port}")
        hosts = [f"127.0.0.1:{port}" for port in self.ports]
        create = [cli, "--cluster", "create", *hosts, "--cluster-replicas", "1", "--cluster-yes"]
        subprocess.run(create, capture_output=True, check=True, timeout=60)
        for port in self.ports:
            self._wait(lambda p=port: "cluster_state:ok" in self.cli(p, "cluster", "info"), "ok")
        return self

    def _args(self, port: int) -> list[str]:
        work = self.dir / str(port)
        args = [shutil.which("redis-server") or "redis-server", "--port", str(port)]
        args += ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(work)]
        args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        args += ["--cluster-node-timeout", "1000", "--loglevel", "warning"]
        # A replica may take over however long ago it last heard from its master.
        args += ["--cluster-replica-validity-factor", "0", "--repl-diskless-sync", "yes"]
        return [*args, "--logfile", str(work / "log")]

    def _pong(self, port: int) -> bool:
        if self.procs[port].poll() is not None:
            log = (self.dir / str(port) / "log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"redis-server on {port} exited: {log}")
        return self.cli(port, "ping") == "PONG"

    def cli(self, port: int, *command: str) -> str:
        done = subprocess.run(
            ["redis-cli", "-p", str(port), *command],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
        return done.stdout.strip()

    def master_of(self, key: str) -> int | None:
        """The port of the master serving `key`'s slot (None during a failover)."""
        slot = int(self.cli(self.alive_port(), "cluster", "keyslot", key))
        for line in self.cli(self.alive_port(), "cluster", "nodes").splitlines():
            fields = line.split()
            if "master" not in fields[2] or "fail" in fields[2]:
                continue
            for part in fields[8:]:
                low, _, high = part.partition("-")
                if low.isdigit() and int(low) <= slot <= int(high or low):
                    return int(fields[1].split(":")[1].split("@")[0])
        return None

    def alive_port(self) -> int:
        return next(port for port, proc in self.procs.items() if proc.poll() is None)

    def kill_master_of(self, key: str) -> int:
        """SIGKILL the master serving `key`, wait until a replica took over; its port."""
        port = self.master_of(key)
        if port is None:
            raise RuntimeError(f"no master serves {key}")
        self.procs[port].kill()
        self.procs[port].wait()
        self._wait(lambda: self._failed_over(key, port), "failover")
        return port

    def _failed_over(self, key: str, dead: int) -> bool:
        alive = self.alive_port()
        return "cluster_state:ok" in self.cli(alive, "cluster", "info") and (
            self.master_of(key) not in (None, dead)
        )

    def _wait(self, check: object, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if check():  # type: ignore[operator]
                    return
            except (OSError, ValueError, subprocess.SubprocessError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"Redis Cluster: {what} not reached within {START_TIMEOUT} s")

    def restart_dead(self) -> None:
        """Start again every node that was killed (it rejoins as a replica)."""
        for port, proc in list(self.procs.items()):
            if proc.poll() is not None:
                self.procs[port] = subprocess.Popen(
                    self._args(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
        alive = self.alive_port()
        self._wait(lambda: "cluster_state:ok" in self.cli(alive, "cluster", "info"), "ok")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
