"""Throwaway ysync server processes on ephemeral ports, for tests and benchmarks.

with YsyncProcess(store="memory://") as server:
    ... connect to server.ws_url ...
    server.restart()          # SIGTERM, wait, start again on the same port
    server.kill()             # SIGKILL
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from ysync.loadtest import chaos_services
from ysync.loadtest.servers import free_port as free_port

START_TIMEOUT = 20.0


def readiness(server: YsyncProcess) -> tuple[int, list[str]]:
    """GET /readyz: its status and the problems it lists."""
    try:
        with urllib.request.urlopen(server.http_url + "/readyz", timeout=2) as response:
            return response.status, json.load(response)["problems"]
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)["problems"]


async def wait_readiness(server: YsyncProcess, status: int, timeout: float = 5.0) -> list[str]:
    """Poll /readyz until it answers `status`; return its problems."""
    deadline = time.monotonic() + timeout
    while True:
        code, problems = await asyncio.to_thread(readiness, server)
        if code == status:
            return problems
        if time.monotonic() > deadline:
            raise AssertionError(f"/readyz still {code} {problems} after {timeout} s")
        await asyncio.sleep(0.05)


class YsyncProcess:
    """`python -m ysync serve` as a child process, always stopped on exit."""

    def __init__(self, *args: str, store: str = "memory://", log_path: Path | None = None) -> None:
        self.port = free_port()
        self.args = ["--store", store, "--log-format", "json", *args]
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> YsyncProcess:
        cmd = [sys.executable, "-m", "ysync", "serve", "--port", str(self.port), *self.args]
        out = subprocess.DEVNULL
        if self.log_path is not None:
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
            out = self._log_file
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=out, env=env)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"ysync exited with {self.proc.returncode} at start: {self.log()}"
                )
            try:
                with urllib.request.urlopen(self.http_url + "/readyz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"ysync did not become ready within {START_TIMEOUT} s: {self.log()}")

    def log(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log kept)"
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Stop the process (SIGTERM: graceful); return its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> YsyncProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisProcess(chaos_services.Redis):
    """A throwaway `redis-server` on a free port (no persistence), restartable on that port."""

    def stop(self) -> None:
        self.kill()

    def __enter__(self) -> RedisProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
