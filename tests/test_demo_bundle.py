"""The committed demo bundle (server/web/dist) is what its sources and lock file build.

Rebuilds with the locked npm packages (`npm ci` when node_modules is missing or
stale) into a temporary directory and compares byte for byte. When it fails, run
`npm --prefix server/web run build` and commit server/web/dist.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from ysync.loadtest.node import ensure_node_modules, node_binary

WEB = Path(__file__).parent.parent / "server" / "web"


def test_committed_bundle_matches_a_build_from_the_lock_file(tmp_path: Path) -> None:
    ensure_node_modules(WEB)
    out = tmp_path / "dist"
    result = subprocess.run(
        [node_binary(), "build.mjs", str(out)],
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    built = {p.name: p.read_bytes() for p in out.iterdir()}
    committed = {p.name: p.read_bytes() for p in (WEB / "dist").iterdir()}
    assert sorted(built) == sorted(committed)
    stale = [name for name in built if built[name] != committed[name]]
    assert not stale, f"{stale} differ from a fresh build: run `npm --prefix server/web run build`"
