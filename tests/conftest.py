"""Shared fixtures: real ysync server processes and the npm-installed JS clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.jsclient import JS_DIR, ensure_node_modules
from support.servers import YsyncProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YsyncProcess]:
    """One in-memory ysync node shared by a test module (use distinct room names)."""
    log = tmp_path_factory.mktemp("server") / "ysync.log"
    with YsyncProcess(log_path=log) as process:
        yield process


@pytest.fixture(scope="session")
def js_clients_dir() -> Path:
    """The directory of the JS client driver, with its npm packages installed."""
    ensure_node_modules(JS_DIR)
    return JS_DIR
