"""A throwaway Redis Cluster: 3 masters and 3 replicas (`redis-server
--cluster-enabled yes` x 6 + `redis-cli --cluster create`) on free ports.

with RedisCluster() as cluster:
    ... connect to cluster.url (redis+cluster://127.0.0.1:<port>,127.0.0.1:<port>,...) ...
    cluster.kill_master_of("ysync:{room}")   # SIGKILL; its replica takes over
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from ysync.loadtest.servers import free_port

START_TIMEOUT = 30.0


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
    def __init__(self, nodes: int = 6) -> None:
        self.ports = [_cluster_port() for _ in range(nodes)]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.dir = Path(tempfile.mkdtemp(prefix="ysync-redis-cluster-"))

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def start(self) -> RedisCluster:
        binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if binary is None or cli is None:
            raise RuntimeError("redis-server and redis-cli are needed (apt-get install redis)")
        for port in self.ports:
            work = self.dir / str(port)
            work.mkdir()
            args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
            args += ["--appendonly", "no", "--cluster-enabled", "yes", "--dir", str(work)]
            args += ["--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1000"]
            # A replica may take over however long ago it last heard from its master.
            args += ["--cluster-replica-validity-factor", "0", "--repl-diskless-sync", "yes"]
            args += ["--loglevel", "warning", "--logfile", str(work / "log")]
            self.procs[port] = subprocess.Popen(
                args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        for port in self.ports:
            self._wait(lambda p=port: self._pong(p), f"redis {port}")
        hosts = [f"127.0.0.1:{port}" for port in self.ports]
        create = [cli, "--cluster", "create", *hosts, "--cluster-replicas", "1", "--cluster-yes"]
        subprocess.run(create, capture_output=True, check=True, timeout=60)
        for port in self.ports:
            self._wait(lambda p=port: "cluster_state:ok" in self.cli(p, "cluster", "info"), "ok")
        return self

    def _pong(self, port: int) -> bool:
        if self.procs[port].poll() is not None:
            log = (self.dir / str(port) / "log").read_text(errors="replace")[-2000:]
            raise AssertionError(f"redis-server on {port} exited: {log}")
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

    def master_of(self, key: str) -> int:
        """The port of the master serving `key`'s slot."""
        slot = int(self.cli(self.alive_port(), "cluster", "keyslot", key))
        for line in self.cli(self.alive_port(), "cluster", "nodes").splitlines():
            fields = line.split()
            if "master" not in fields[2] or "fail" in fields[2]:
                continue
            for part in fields[8:]:
                low, _, high = part.partition("-")
                if low.isdigit() and int(low) <= slot <= int(high or low):
                    return int(fields[1].split(":")[1].split("@")[0])
        raise RuntimeError(f"no master serves slot {slot}")

    def alive_port(self) -> int:
        return next(port for port, proc in self.procs.items() if proc.poll() is None)

    def kill_master_of(self, key: str) -> int:
        """SIGKILL the master serving `key`, wait until a replica took over; its port."""
        port = self.master_of(key)
        self.procs[port].kill()
        self.procs[port].wait()
        self._wait(lambda: self._failed_over(key, port), "failover")
        return port

    def _failed_over(self, key: str, dead: int) -> bool:
        alive = self.alive_port()
        return "cluster_state:ok" in self.cli(alive, "cluster", "info") and (
            self.master_of(key) != dead
        )

    def _wait(self, check: object, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if check():  # type: ignore[operator]
                    return
            except (OSError, ValueError, RuntimeError, subprocess.SubprocessError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"Redis Cluster: {what} not reached within {START_TIMEOUT} s")

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
