"""Fixtures: a real PostgreSQL for the session, a fresh database per test, store URLs.

PostgreSQL comes from `YSYNC_TEST_POSTGRES_URL` (an admin URL on a server you
run) or, when that is unset, from a throwaway server this file starts with
`initdb` + `pg_ctl` in a temporary directory. With neither, the PostgreSQL
tests fail: CI must install PostgreSQL rather than skip them.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from ysync.loadtest.servers import free_port


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL for an empty durable store; every `open_store` of it shares the data."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ysync.db"  # tmp_path is absolute: four slashes
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, uniquely named database on the session's server, dropped afterwards."""
    name = f"ysync_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(postgres_admin_url, f'CREATE DATABASE "{name}"'))
    try:
        yield urlunsplit(urlsplit(postgres_admin_url)._replace(path=f"/{name}"))
    finally:
        asyncio.run(_admin(postgres_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """URL of a PostgreSQL server where the tests may create and drop databases."""
    external = os.environ.get("YSYNC_TEST_POSTGRES_URL")
    if external:
        yield external
        return
    with _throwaway_postgres() as url:
        yield url


async def _admin(url: str, sql: str) -> None:
    try:
        conn = await asyncpg.connect(url, timeout=10)
    except (OSError, asyncpg.PostgresError) as error:
        pytest.fail(f"cannot connect to test PostgreSQL {url}: {error}")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def _throwaway_postgres() -> Iterator[str]:
    initdb, pg_ctl = _find_binary("initdb"), _find_binary("pg_ctl")
    as_postgres = _run_as_postgres_prefix()
    base = Path(tempfile.mkdtemp(prefix="ysync-test-pg-"))
    if as_postgres:
        # initdb refuses to run as root; the server's files must be postgres's.
        shutil.chown(base, user="postgres", group="postgres")
    data, log = base / "data", base / "server.log"
    try:
        _check(as_postgres, [initdb, "-D", data, "-U", "postgres", "--auth=trust", "--no-sync"])
        port = _start(as_postgres, pg_ctl, data, log, base)
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            _check(as_postgres, [pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"])
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _start(as_postgres: list[str], pg_ctl: str, data: Path, log: Path, sockets: Path) -> int:
    last_error = ""
    for _ in range(3):  # a free port can be taken between finding and binding it
        port = free_port()
        options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1"
        start = [pg_ctl, "-D", data, "-l", log, "-w", "-t", "30", "-o", options, "start"]
        result = _run(as_postgres, start)
        if result.returncode == 0:
            return port
        last_error = result.stdout + result.stderr + (log.read_text() if log.exists() else "")
    pytest.fail(f"could not start the test PostgreSQL server:\n{last_error}")


def _find_binary(name: str) -> str:
    # Debian/Ubuntu keep the server binaries off PATH, one directory per version.
    debian = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0,
    )
    found = debian[-1] if debian else shutil.which(name)
    if found is None:
        pytest.fail(
            f"PostgreSQL's {name} was not found (looked in /usr/lib/postgresql/*/bin and PATH). "
            "Install the PostgreSQL server (Debian: apt-get install postgresql) "
            "or set YSYNC_TEST_POSTGRES_URL to an admin URL of a running server."
        )
    return found


def _run_as_postgres_prefix() -> list[str]:
    """Command prefix that runs a command as the `postgres` user when we are root."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail(
            "running as root, but there is no 'postgres' user to run the test PostgreSQL "
            "server as (initdb refuses root); install the postgresql package or set "
            "YSYNC_TEST_POSTGRES_URL"
        )
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", "postgres", "--"]
    return ["su", "postgres", "-s", "/bin/sh", "-c"]  # the command follows as one string


def _run(prefix: list[str], command: list[str | Path]) -> subprocess.CompletedProcess[str]:
    args = [str(part) for part in command]
    if prefix[:1] == ["su"]:
        args = [shlex.join(args)]
    return subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=60, check=False)


def _check(prefix: list[str], command: list[str | Path]) -> None:
    result = _run(prefix, command)
    if result.returncode != 0:
        pytest.fail(f"{shlex.join(map(str, command))} failed:\n{result.stdout}{result.stderr}")


class PostgresServer:
    """A throwaway PostgreSQL server this test process owns, so a test may stop
    it and start it again on the same port (store outages)."""

    def __init__(self, as_postgres: list[str], pg_ctl: str, base: Path) -> None:
        self._as_postgres = as_postgres
        self._pg_ctl = pg_ctl
        self._base = base
        self.port = 0
        self.running = False

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """Start the server (the first time on a free port, then on the same one)."""
        if self.running:
            return
        data, log = self._base / "data", self._base / "server.log"
        if not self.port:
            self.port = _start(self._as_postgres, self._pg_ctl, data, log, self._base)
        else:
            options = f"-p {self.port} -k {self._base} -c listen_addresses=127.0.0.1"
            start = [self._pg_ctl, "-D", data, "-l", log, "-w", "-t", "30", "-o", options, "start"]
            _check(self._as_postgres, start)
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; `fast` disconnects every client, `immediate` is a crash."""
        if self.running:
            _check(
                self._as_postgres,
                [self._pg_ctl, "-D", self._base / "data", "-m", mode, "-w", "stop"],
            )
            self.running = False


@dataclass
class StoppablePostgres:
    """A fresh database (`url`) on a PostgreSQL server the test may stop and start."""

    server: PostgresServer
    url: str

    def stop(self, mode: str = "fast") -> None:
        self.server.stop(mode)

    def start(self) -> None:
        self.server.start()


@pytest.fixture(scope="module")
def own_postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this module's own (never the session's shared one,
    never `YSYNC_TEST_POSTGRES_URL`'s): tests stop and restart it."""
    initdb, pg_ctl = _find_binary("initdb"), _find_binary("pg_ctl")
    as_postgres = _run_as_postgres_prefix()
    base = Path(tempfile.mkdtemp(prefix="ysync-test-pg-own-"))
    if as_postgres:
        shutil.chown(base, user="postgres", group="postgres")
    server = PostgresServer(as_postgres, pg_ctl, base)
    try:
        _check(
            as_postgres,
            [initdb, "-D", base / "data", "-U", "postgres", "--auth=trust", "--no-sync"],
        )
        server.start()
        try:
            yield server
        finally:
            server.stop("immediate")
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def stoppable_postgres(own_postgres_server: PostgresServer) -> Iterator[StoppablePostgres]:
    """A fresh database on `own_postgres_server`, which is running again afterwards."""
    own_postgres_server.start()
    name = f"ysync_test_{uuid.uuid4().hex[:12]}"
    admin = own_postgres_server.admin_url
    asyncio.run(_admin(admin, f'CREATE DATABASE "{name}"'))
    try:
        yield StoppablePostgres(
            own_postgres_server, urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))
        )
    finally:
        own_postgres_server.start()
        asyncio.run(_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
