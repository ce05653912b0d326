"""Range anchors made by a real JS Yjs client survive concurrent edits by three others."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from support.aio import run
from support.jsclient import JSClient
from support.servers import YsyncProcess

TEXT = "The quick brown fox jumps over the lazy dog"


async def joined(client: JSClient, server: YsyncProcess, room: str) -> JSClient:
    await client.call("connect", url=server.ws_url, room=room)
    await client.call("wait_synced")
    return client


def test_a_range_keeps_its_words_through_concurrent_edits_then_is_orphaned(
    server: YsyncProcess, js_clients_dir: Path
) -> None:
    room = "anchors/js"

    async def main() -> None:
        async with (
            JSClient.start(js_clients_dir) as author,
            JSClient.start(js_clients_dir) as b,
            JSClient.start(js_clients_dir) as c,
            JSClient.start(js_clients_dir) as d,
        ):
            await joined(author, server, room)
            await author.call("text_insert", name="text", index=0, value=TEXT)
            start = (
                await author.call("relative_position", name="text", index=TEXT.index("brown"))
            )["position"]
            end = (await author.call("relative_position", name="text", index=TEXT.index(" jumps")))[
                "position"
            ]
            for other in (b, c, d):
                await joined(other, server, room)
                await other.call("wait_for", name="text", kind="text", equals=TEXT)
            async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as api:
                path = "/api/rooms/anchors%2Fjs/threads"
                anchor = {"kind": "range", "type": "text", "start": start, "end": end}
                body = {
                    "version": 1,
                    "content": [{"type": "paragraph", "children": [{"text": "nice"}]}],
                }
                created = await api.post(path, json={"body": body, "anchor": anchor})
                assert created.status_code == 201, created.text
                one = f"{path}/{created.json()['id']}"
                assert (await api.get(one, params={"resolveAnchors": "1"})).json()[
                    "resolvedAnchor"
                ] == {"orphaned": False, "start": 10, "end": 19, "text": "brown fox"}
                # Truly concurrent edits, before the range and inside it: each is made
                # offline against TEXT, so none of them sees another's first. (Sent live
                # "at once", d could get b's "very " before making its own index-based
                # insert, and "ish" then lands before "brown" — a different document.)
                editors = (b, c, d)
                await asyncio.gather(*(e.call("disconnect") for e in editors))
                await asyncio.gather(
                    b.call("text_insert", name="text", index=4, value="very "),
                    c.call("text_delete", name="text", index=0, length=4),
                    d.call("text_insert", name="text", index=15, value="ish"),
                )
                await asyncio.gather(*(e.call("reconnect") for e in editors))
                final = "very quick brownish fox jumps over the lazy dog"
                for client in (author, b, c, d):
                    await client.call("wait_for", name="text", kind="text", equals=final)
                where = (await api.get(one, params={"resolveAnchors": "1"})).json()[
                    "resolvedAnchor"
                ]
                js: dict[str, Any] = {
                    key: (await author.call("absolute_position", position=value))["index"]
                    for key, value in (("start", start), ("end", end))
                }
                assert where == {"orphaned": False, **js, "text": "brownish fox"}
                assert js == {"start": 11, "end": 23}
                listed = (await api.get(path, params={"resolveAnchors": "1"})).json()["threads"]
                assert listed[0]["resolvedAnchor"] == where

                await b.call("text_delete", name="text", index=11, length=len("brownish fox"))
                gone = "very quick  jumps over the lazy dog"
                await author.call("wait_for", name="text", kind="text", equals=gone)
                orphaned = (await api.get(one, params={"resolveAnchors": "1"})).json()[
                    "resolvedAnchor"
                ]
                assert orphaned == {"orphaned": True, "start": None, "end": None, "text": None}

    run(main())
