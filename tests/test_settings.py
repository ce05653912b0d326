"""Settings and the command line: flags, YSYNC_* variables, defaults, refusals."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from ysync.server import settings as settings_module
from ysync.server.settings import Settings


def parse(argv: list[str], environ: dict[str, str] | None = None) -> Settings:
    parser = argparse.ArgumentParser()
    settings_module.add_arguments(parser)
    return settings_module.from_arguments(parser.parse_args(argv), environ or {})


def test_defaults_are_embedded_and_safe() -> None:
    settings = parse([])
    assert settings.host == "127.0.0.1"
    assert settings.port == 1234
    assert settings.store == "sqlite:///./data/ysync.db"
    assert settings.auth == "none"
    assert settings.redis_url == ""


def test_environment_overrides_defaults_and_flags_override_environment() -> None:
    environ = {"YSYNC_PORT": "4321", "YSYNC_STORE": "memory://", "YSYNC_FLUSH_WINDOW": "0.2"}
    settings = parse([], environ)
    assert (settings.port, settings.store, settings.flush_window) == (4321, "memory://", 0.2)
    assert parse(["--port", "5555"], environ).port == 5555


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (["--workers", "2"], {}, "needs --redis-url"),
        (["--port", "70000"], {}, "port"),
        (["--path-prefix", "ws"], {}, "path_prefix"),
        ([], {"YSYNC_PORT": "abc"}, "expected int"),
        (["--send-queue-frames", "0"], {}, "send_queue_frames"),
    ],
)
def test_bad_settings_are_refused_with_the_setting_named(
    argv: list[str], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        parse(argv, environ)


def test_cli_refuses_bad_settings_with_a_clear_message() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ysync", "serve", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "needs --redis-url" in result.stderr


def test_cli_help_lists_every_setting_with_its_variable() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ysync", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    for name in Settings.__dataclass_fields__:
        assert "--" + name.replace("_", "-") in result.stdout
        assert settings_module.env_name(name) in result.stdout.replace("\n", " ").replace(" ", "")


def test_boolean_settings_have_a_flag_and_its_negation_and_read_the_environment() -> None:
    assert parse([]).demo is True
    assert parse(["--no-demo"]).demo is False
    assert parse([], {"YSYNC_DEMO": "0"}).demo is False
    assert parse([], {"YSYNC_DEMO": "off"}).demo is False
    assert parse(["--demo"], {"YSYNC_DEMO": "false"}).demo is True  # the flag wins
    with pytest.raises(ValueError, match="demo: expected 1/0"):
        parse([], {"YSYNC_DEMO": "maybe"})
    # What `--workers N` hands its worker processes reads back the same.
    settings = parse(["--no-demo"])
    environ = settings_module.to_environ(settings)
    assert environ["YSYNC_DEMO"] == "False"
    assert Settings.from_env(environ) == settings


@pytest.mark.parametrize(
    "argv",
    [
        ["--demo-dev-tokens"],  # auth off: nothing to sign for
        ["--demo-dev-tokens", "--no-demo", "--auth", "jwt", "--jwt-secret", "s" * 32],
    ],
)
def test_dev_tokens_need_the_demo_and_an_hs256_secret(argv: list[str]) -> None:
    with pytest.raises(ValueError, match="--demo-dev-tokens"):
        parse(argv)
    assert parse(["--demo-dev-tokens", "--auth", "jwt", "--jwt-secret", "s" * 32]).demo_dev_tokens
