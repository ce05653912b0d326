"""The `helm test` pod's script, as rendered, run against a real ysync server: it writes a room
with ysync's y-websocket client and reads it back (with auth off, and with an HS256 token it
mints from the release's secret)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from chart import one, render

from support.servers import YsyncProcess

SECRET = "helm-test-secret-of-at-least-32-bytes"
BIN = str(Path(sys.executable).parent)  # ysync and python, as on the image's PATH


def rendered_test_pod(overrides: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """The test pod's command and the environment it would get (minus the ConfigMap)."""
    pod = one(render("minimal", overrides), "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (box,) = pod["spec"]["containers"]
    env = {e["name"]: e["value"] for e in box["env"] if "value" in e}
    return [*box["command"], *box["args"]], env


def run_in_pod(
    command: list[str], env: dict[str, str], server: YsyncProcess
) -> subprocess.CompletedProcess[str]:
    # The Service's name is what the pod would connect to; here it is the local server.
    url = env["HELM_TEST_URL"].replace("ws://demo-ysync:1234", server.ws_url)
    return subprocess.run(
        command,
        env={**os.environ, **env, "HELM_TEST_URL": url, "PATH": BIN + ":" + os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_test_pod_syncs_a_room(tmp_path: Path) -> None:
    command, env = rendered_test_pod({})
    assert env["HELM_TEST_URL"] == "ws://demo-ysync:1234/"
    with YsyncProcess(log_path=tmp_path / "ysync.log") as server:
        result = run_in_pod(command, env, server)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"synced room {env['HELM_TEST_ROOM']}" in result.stdout


def test_the_test_pod_mints_a_token_the_server_accepts(tmp_path: Path) -> None:
    issuer = "https://id.example.com"
    values = {
        "auth": {"mode": "jwt", "jwt": {"secret": SECRET}},
        "config": {"jwt_audience": "collab", "jwt_issuer": issuer},
    }
    command, env = rendered_test_pod(values)
    # YSYNC_JWT_SECRET from the Secret, audience and issuer from the ConfigMap.
    env |= {"YSYNC_JWT_AUDIENCE": "collab", "YSYNC_JWT_ISSUER": issuer}
    flags = ["--auth", "jwt", "--jwt-secret", SECRET, "--jwt-audience", "collab"]
    with YsyncProcess(*flags, "--jwt-issuer", issuer, log_path=tmp_path / "ysync.log") as server:
        good = run_in_pod(command, {**env, "YSYNC_JWT_SECRET": SECRET}, server)
        forged = run_in_pod(command, {**env, "YSYNC_JWT_SECRET": "x" * 32}, server)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "synced room" in good.stdout
    # A token the server refuses fails the test pod: the check is not vacuous.
    assert forged.returncode != 0
    assert "synced room" not in forged.stdout
    assert "4401" in forged.stderr, forged.stderr


def test_no_test_pod_when_it_cannot_mint_a_token() -> None:
    pem = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n"
    values = {"auth": {"mode": "jwt", "jwt": {"keyType": "publicKey", "publicKey": pem}}}
    assert [m for m in render("minimal", values) if m["kind"] == "Pod"] == []
