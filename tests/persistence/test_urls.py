"""Store URLs: which store each opens, and clear errors for the rest."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ysync.persistence.memory import MemoryStore
from ysync.persistence.sqlite import SQLiteStore
from ysync.persistence.urls import open_store, sqlite_path


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///./data/ysync.db", "data/ysync.db"),
        ("sqlite:///data/ysync.db", "data/ysync.db"),
        ("sqlite:////var/lib/ysync/ysync.db", "/var/lib/ysync/ysync.db"),
        ("SQLITE:///my%20docs.db", "my docs.db"),
    ],
)
def test_sqlite_paths(url: str, path: str) -> None:
    assert sqlite_path(url) == Path(path)


@pytest.mark.parametrize(
    "url",
    ["sqlite://", "sqlite:///", "sqlite://host/x.db", "sqlite:///dir/", "sqlite:///x.db?mode=ro"],
)
def test_bad_sqlite_urls(url: str) -> None:
    with pytest.raises(ValueError, match="SQLite store URL"):
        sqlite_path(url)


@pytest.mark.parametrize("url", ["memory://", "memory", "memory:"])
def test_memory(url: str) -> None:
    store = asyncio.run(open_store(url))
    assert isinstance(store, MemoryStore)
    assert store.durable is False
    assert "NOT durable" in store.describe()


@pytest.mark.parametrize("url", ["redis://localhost", "./data/ysync.db", "", "memory://x"])
def test_unknown_urls_name_the_supported_schemes(url: str) -> None:
    with pytest.raises(ValueError, match="memory://"):
        asyncio.run(open_store(url))


def test_unknown_scheme_message_lists_every_scheme() -> None:
    with pytest.raises(ValueError, match=r"memory://, sqlite:///PATH, postgresql://"):
        asyncio.run(open_store("mysql://localhost/db"))


def test_sqlite_url_opens_a_file_store(tmp_path: Path) -> None:
    async def main() -> None:
        store = await open_store(f"sqlite:///{tmp_path}/sub/ysync.db")
        assert isinstance(store, SQLiteStore)
        assert store.durable
        assert str(tmp_path / "sub" / "ysync.db") in store.describe()
        await store.close()

    asyncio.run(main())
    assert (tmp_path / "sub" / "ysync.db").exists()
