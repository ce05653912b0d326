"""The SDK's document, version and lifecycle calls and the `ysync versions|restore|rm|export`
commands against a real server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pycrdt import Doc, Text

from ysync.clients.http import Client, HTTPError
from ysync.server.cli import main

from support.servers import YsyncProcess


def test_the_sdk_reads_edits_versions_restores_exports_and_deletes(server: YsyncProcess) -> None:
    room = "sdk/room"
    with Client(server.http_url) as api:
        vector = api.apply_ops(room, [{"op": "insert", "root": "t", "index": 0, "text": "one"}])
        assert api.state_vector(room) == vector
        assert api.get_doc(room)["content"] == {"t": "one"}
        mine: Doc[Any] = Doc()
        mine.apply_update(api.get_doc(room, format="update"))
        mine.get("t", type=Text).insert(3, " two")
        api.apply_update(room, mine.get_update(vector))
        assert api.get_doc(room)["content"]["t"] == "one two"
        since = api.get_doc(room, format="update", state_vector=vector)
        assert since and since != api.get_doc(room, format="update")

        v1 = api.create_version(room, "v1", "first")
        api.apply_ops(room, [{"op": "delete", "root": "t", "index": 0, "length": 4}])
        assert api.versions(room)["versions"][0]["id"] == v1["id"]
        assert api.version(room, v1["id"])["content"] == {"t": "one two"}
        assert api.version(room, v1["id"], format="update")
        changes = api.diff(room, v1["id"])["changes"]
        assert changes["t"]["deleted"] == [{"index": 0, "text": "one "}]
        api.restore(room, v1["id"])
        assert api.get_doc(room)["content"] == {"t": "one two"}

        extra = api.create_version(room, "to delete")
        api.delete_version(room, extra["id"])
        assert extra["id"] not in {v["id"] for v in api.versions(room)["versions"]}

        archive = api.export(room)
        api.import_("sdk/copy", archive)
        assert api.get_doc("sdk/copy")["content"] == {"t": "one two"}
        api.delete_room("sdk/copy")
        with pytest.raises(HTTPError) as refused:
            api.apply_ops("sdk/copy", [{"op": "replace", "root": "t", "value": "x"}])
        assert refused.value.status == 410


def test_the_commands_list_compare_restore_export_and_remove(
    server: YsyncProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    room = "cli/room"
    url = ["--url", server.http_url]
    with Client(server.http_url) as api:
        api.apply_ops(room, [{"op": "set", "root": "m", "key": "k", "value": 1}])
    assert main(["versions", room, "--create", "first", *url]) == 0
    listed = capsys.readouterr().out
    version_id = listed.split()[1]
    assert "created" in listed and "named" in listed and "first" in listed
    with Client(server.http_url) as api:
        api.apply_ops(room, [{"op": "set", "root": "m", "key": "k", "value": 2}])
    assert main(["versions", "diff", room, version_id, *url]) == 0
    diff = json.loads(capsys.readouterr().out)
    assert diff["changes"]["m"]["changed"] == {"k": {"from": 1, "to": 2}}
    assert main(["restore", room, version_id, *url]) == 0
    assert "restored" in capsys.readouterr().out
    assert main(["export", room, *url]) == 0
    assert json.loads(capsys.readouterr().out)["format"] == "ysync-room"
    assert main(["rm", room, *url]) == 0
    assert capsys.readouterr().out == f"deleted {room}\n"
    assert main(["restore", room, "v_missing", *url]) == 1
    assert "404" in capsys.readouterr().err
