"""docs/grafana/ysync-dashboard.json: every metric it queries is one a real node exposes."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from pathlib import Path
from typing import Any

from pycrdt import Text
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from ysync.clients import connect, room_url

from support.servers import YsyncProcess

DASHBOARD = Path(__file__).parent.parent / "docs" / "grafana" / "ysync-dashboard.json"
METRIC = re.compile(r"\bysync_[a-z0-9_]+")
COUNTER_SUFFIXES = ("_total", "_bucket", "_sum", "_count")


def load() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # collapsed rows hold their panels
    return found


def queries(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


def scrape_names(server: YsyncProcess) -> set[str]:
    """Every series name in a scrape, and those of every declared family (a labelled
    metric nothing observed yet, e.g. GC pauses of a generation, has no samples)."""
    with urllib.request.urlopen(server.http_url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    names = {m.group(1) for m in re.finditer(r"^(ysync_[a-z0-9_]+)[{ ]", text, re.MULTILINE)}
    for family, kind in re.findall(r"^# TYPE (ysync_[a-z0-9_]+) (\w+)$", text, re.MULTILINE):
        names.add(family)
        if kind == "histogram":
            names.update(family + suffix for suffix in ("_bucket", "_sum", "_count"))
    return names


def test_dashboard_is_wired_to_a_datasource_variable() -> None:
    dashboard = load()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            expr = target["expr"]
            assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}")
            # rate()/increase() only over counters and histogram series.
            for inner in re.findall(r"(?:rate|increase)\((ysync_[a-z0-9_]+)", expr):
                assert inner.endswith(COUNTER_SUFFIXES), (panel["title"], inner)
            for inner in re.findall(r"histogram_quantile\([^,]+, [^(]*\(rate\((\w+)", expr):
                assert inner.endswith("_bucket"), (panel["title"], inner)
    titles = " ".join(p["title"] for p in panels(dashboard))
    topics = ("Connections", "Rooms", "handling time", "GC", "Flush", "Redis", "closes", "4508")
    for topic in topics:
        assert topic in titles, topic


def test_every_queried_metric_exists_on_a_running_node(tmp_path: Path) -> None:
    wanted = {name for expr in queries(load()) for name in METRIC.findall(expr)}
    assert len(wanted) >= 15, wanted
    with YsyncProcess(store=f"sqlite:///{tmp_path}/d.db", log_path=tmp_path / "log") as server:

        async def scenario() -> set[str]:
            # A session that makes every labelled series appear: edits (stored), and a
            # malformed frame closed with 4400 (ysync_server_closes_total{code=...}).
            async with connect(server.ws_url, "dash") as session:
                await session.synced()
                session.doc.get("t", type=Text).insert(0, "hello")
                ws = await ws_connect(room_url(server.ws_url, "dash"), proxy=None)
                await ws.send(b"\xff\xff")
                try:
                    async with asyncio.timeout(5):
                        while True:
                            await ws.recv()
                except ConnectionClosed:
                    pass
                assert ws.close_code == 4400
            async with asyncio.timeout(10):
                while True:  # metrics are refreshed once a second
                    names = await asyncio.to_thread(scrape_names, server)
                    if wanted <= names:
                        return names
                    await asyncio.sleep(0.2)

        try:
            asyncio.run(scenario())
        except TimeoutError:
            missing = wanted - scrape_names(server)
            raise AssertionError(f"queried but not exposed: {sorted(missing)}") from None
