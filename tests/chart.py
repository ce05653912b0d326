"""The Helm chart (helm/ysync) rendered by the real Helm engine (helm-python-sdk embeds Helm v4).

manifests = render("production", {"replicaCount": 4})   # ci/production-values.yaml + overrides
deployment = one(manifests, "Deployment")
env = container_env(manifests)                          # YSYNC_* the container gets
"""

from __future__ import annotations

import base64
import functools
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

ROOT = Path(__file__).parent.parent
CHART = ROOT / "helm" / "ysync"
VALUES_FILES = ("minimal", "production", "trial")
RELEASE = "demo"
NAMESPACE = "collab"

Manifest = dict[str, Any]


def values_file(name: str) -> dict[str, Any]:
    """ci/<name>-values.yaml, parsed by Helm's own values parser."""
    return helm.values_from_yaml((CHART / "ci" / f"{name}-values.yaml").read_text())


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`helm -f base --set overrides`: nested maps merge, everything else is replaced."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@functools.cache
def _chart() -> helm.Chart:
    return helm.Chart.load(CHART)


def render_files(values: dict[str, Any]) -> dict[str, str]:
    """Template path -> rendered text (NOTES.txt included); raises HelmError on a refusal."""
    return _chart().render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)


def render(name: str = "minimal", overrides: dict[str, Any] | None = None) -> list[Manifest]:
    """Every Kubernetes object the chart renders for ci/<name>-values.yaml + overrides."""
    values = merge(values_file(name), overrides or {})
    manifests: list[Manifest] = []
    for path, text in sorted(render_files(values).items()):
        if path.endswith(".txt"):
            continue
        manifests.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return manifests


def find(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = [m for m in find(manifests, kind) if name is None or m["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


def container(manifests: list[Manifest]) -> Manifest:
    """The ysync container of the Deployment."""
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    (ysync,) = (c for c in pod["containers"] if c["name"] == "ysync")
    return ysync


def secret_data(manifests: list[Manifest], name: str) -> dict[str, str]:
    data = one(manifests, "Secret", name).get("data", {})
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def container_env(manifests: list[Manifest]) -> dict[str, str]:
    """The environment the ysync container starts with: its ConfigMap, then env entries
    (secretKeyRef values read from the rendered Secrets; absent for an existingSecret)."""
    ysync = container(manifests)
    env: dict[str, str] = {}
    for source in ysync.get("envFrom", []):
        env.update(one(manifests, "ConfigMap", source["configMapRef"]["name"])["data"])
    secrets = {m["metadata"]["name"]: m for m in find(manifests, "Secret")}
    for entry in ysync.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
            continue
        ref = entry["valueFrom"]["secretKeyRef"]
        if ref["name"] in secrets:
            env[entry["name"]] = secret_data(manifests, ref["name"])[ref["key"]]
        else:
            env[entry["name"]] = f"<{ref['name']}:{ref['key']}>"
    return env
