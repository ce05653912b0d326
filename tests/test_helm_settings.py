"""The chart stays in step with `ysync serve`: every setting reachable through values, every
environment variable one the server reads, and nothing secret in a ConfigMap.

When a setting is added to ysync.server.settings.Settings, these tests fail until the chart
knows it: one line in values.yaml `config:` and one entry in values.schema.json (the failure
prints it)."""

from __future__ import annotations

import json
import re
from dataclasses import MISSING, Field, fields
from typing import Any

import pytest
import yaml
from chart import CHART, VALUES_FILES, container, container_env, find, one, render, values_file

from ysync.server.settings import Settings, env_name

# Settings the chart sets from its own sections rather than from `config`.
MANAGED = {
    "host": "the image's command (--host 0.0.0.0)",
    "port": "port",
    "store": "store",
    "redis_url": "redis, trial.redis",
    "auth": "auth.mode",
    "jwt_secret": "auth.jwt.secret",
    "jwt_public_key": "auth.jwt.publicKey",
    "jwt_jwks_file": "auth.jwt.jwks",
}
# What must only ever come from a Secret.
SECRET_VARIABLES = {"YSYNC_JWT_SECRET", "YSYNC_REDIS_URL"}
SCHEMA_TYPES = {"int": "integer", "float": "number", "str": "string", "bool": "boolean"}
PEM = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n"
# One variant per managed setting that shows the chart produces its variable.
VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("minimal", {}),
    ("production", {}),
    ("trial", {}),
    ("minimal", {"auth": {"mode": "jwt", "jwt": {"secret": "k" * 32}}}),
    ("minimal", {"auth": {"mode": "jwt", "jwt": {"keyType": "publicKey", "publicKey": PEM}}}),
    ("minimal", {"store": {"type": "memory"}, "config": {"max_pending_bytes": 134217728}}),
]
# Plausible contents of the keys of an existingSecret (production-values.yaml uses one).
EXISTING_SECRET = {
    "store-url": "postgresql://ysync:pw@db:5432/ysync",
    "redis-url": "redis://:pw@redis:6379/0",
    "jwt-secret": "k" * 32,
}


def settings_fields() -> dict[str, Field[Any]]:
    return {f.name: f for f in fields(Settings)}


def configurable() -> list[str]:
    return [name for name in settings_fields() if name not in MANAGED]


def values_yaml_config_lines() -> dict[str, tuple[bool, str]]:
    """values.yaml `config:` block: setting -> (active?, value text), commented lines too."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    start = lines.index("config:") + 1
    found: dict[str, tuple[bool, str]] = {}
    for line in lines[start:]:
        if line and not line.startswith(" "):
            break
        match = re.fullmatch(r"  (# )?([a-z][a-z0-9_]*): (.*)", line)
        if match:
            assert match[2] not in found, f"{match[2]} is listed twice in values.yaml"
            found[match[2]] = (match[1] is None, match[3])
    return found


def test_every_config_key_is_a_setting() -> None:
    known = settings_fields()
    for name in VALUES_FILES:
        for key in (values_file(name) or {}).get("config", {}):
            assert key in known, f"ci/{name}-values.yaml config.{key} is no ysync setting"
            assert key not in MANAGED, f"config.{key} is set by the chart from {MANAGED[key]}"
    for key in values_yaml_config_lines():
        assert key in known, f"values.yaml config.{key} is no ysync setting"


def test_every_setting_is_listed_in_values_yaml_with_its_default() -> None:
    listed = values_yaml_config_lines()
    missing = [name for name in configurable() if name not in listed]
    assert not missing, f"add to values.yaml config: {', '.join(f'# {m}: ...' for m in missing)}"
    for name, (active, text) in listed.items():
        if active:
            continue
        field = settings_fields()[name]
        default = field.default if field.default is not MISSING else None
        assert type(default)(yaml.safe_load(text)) == default, (
            f"values.yaml shows {name}: {text}, but the server's default is {default!r}"
        )


def test_values_schema_types_every_setting() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]["config"]
    expected = {}
    for name in configurable():
        field = settings_fields()[name]
        entry: dict[str, Any] = {"type": SCHEMA_TYPES[str(field.type)]}
        if field.metadata["choices"]:
            entry["enum"] = list(field.metadata["choices"])
        entry["description"] = field.metadata["help"]
        expected[name] = entry
    extra = set(schema["properties"]) - set(expected)
    assert not extra, f"values.schema.json config has settings the server lacks: {extra}"
    for name, entry in expected.items():
        got = schema["properties"].get(name)
        assert got is not None, (
            f"add to values.schema.json config.properties: {json.dumps({name: entry})}"
        )
        assert {k: got.get(k) for k in ("type", "enum")} == {
            k: entry.get(k) for k in ("type", "enum")
        }, name
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize(("name", "overrides"), VARIANTS)
def test_the_server_accepts_the_rendered_environment(name: str, overrides: dict[str, Any]) -> None:
    manifests = render(name, overrides)
    env = container_env(manifests)
    variables = {env_name(n) for n in settings_fields()}
    for variable, value in env.items():
        if variable.startswith("YSYNC_"):
            assert variable in variables, f"{variable} is read by no ysync setting"
        if value.startswith("<"):  # from an existingSecret
            env[variable] = EXISTING_SECRET[value.strip("<>").split(":")[1]]
    settings = Settings.from_env(env)  # raises ValueError naming what the server would refuse
    assert settings.port == int(container(manifests)["ports"][0]["containerPort"])


def test_every_managed_setting_is_produced_by_the_chart() -> None:
    produced = set()
    for name, overrides in VARIANTS:
        produced |= set(container_env(render(name, overrides)))
    chart_side = {env_name(n) for n in MANAGED if n != "host"}  # host: tests/test_dockerfile.py
    assert chart_side <= produced, chart_side - produced


@pytest.mark.parametrize("name", VALUES_FILES)
def test_secrets_never_reach_a_config_map(name: str) -> None:
    marks = {"jwt": "jwt-mark-" + "j" * 32, "redis": "redis-mark", "pg": "pg-mark"}
    overrides = {
        "existingSecret": "",
        "store": {
            "type": "postgresql",
            "postgresql": {"url": f"postgresql://u:{marks['pg']}@db/y"},
        },
        "redis": {"enabled": True, "url": f"redis://:{marks['redis']}@r:6379/0"},
        "auth": {"mode": "jwt", "jwt": {"keyType": "secret", "secret": marks["jwt"]}},
    }
    manifests = render(name, overrides)
    config_maps = yaml.safe_dump(find(manifests, "ConfigMap"))
    for mark in marks.values():
        assert mark not in config_maps
    env = container_env(manifests)
    assert marks["jwt"] == env["YSYNC_JWT_SECRET"]
    references = {e["name"]: e for e in container(manifests)["env"]}
    for variable in (*SECRET_VARIABLES, "YSYNC_STORE"):
        assert "secretKeyRef" in references[variable]["valueFrom"], variable
    if name != "trial":  # the trial's own Redis and PostgreSQL win over external URLs
        assert marks["redis"] in env["YSYNC_REDIS_URL"] and marks["pg"] in env["YSYNC_STORE"]


def test_secret_settings_cannot_be_put_in_config() -> None:
    from helm_python import HelmValuesError

    for setting in ("jwt_secret", "redis_url", "store"):
        with pytest.raises(HelmValuesError, match=setting):
            render("minimal", {"config": {setting: "x"}})
    for name, overrides in VARIANTS:
        data = one(render(name, overrides), "ConfigMap", "demo-ysync")["data"]
        assert not SECRET_VARIABLES & set(data)
        assert not data.get("YSYNC_STORE", "sqlite:").startswith(("postgres", "redis"))
