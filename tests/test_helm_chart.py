"""helm/ysync rendered by the real Helm engine: lint, Kubernetes schemas, and the wiring that
matters (probes, grace period, PDB/HPA, refusals, security context, trial components)."""

from __future__ import annotations

import json
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
from chart import (
    CHART,
    RELEASE,
    ROOT,
    VALUES_FILES,
    container,
    container_env,
    find,
    one,
    render,
    render_files,
    secret_data,
    values_file,
)

SERVICE = f"{RELEASE}-ysync"
# Kinds from CRDs (Prometheus Operator, Gateway API): not in the Kubernetes OpenAPI schemas,
# so their fields are checked by the tests below instead.
CRD_KINDS = {"ServiceMonitor", "HTTPRoute"}
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schemas.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
# Every optional template on at once, so each is rendered and validated.
EVERYTHING: dict[str, Any] = {
    "httpRoute": {
        "enabled": True,
        "parentRefs": [{"name": "public", "namespace": "gateways"}],
        "hostnames": ["collab.example.com"],
        "timeouts": {"request": "0s"},
    },
    "config": {"workers": 2, "path_prefix": "/ws/", "max_pending_bytes": 134217728},
    "store": {"type": "postgresql", "sqlite": {"persistence": {"enabled": False}}},
}


def all_variants() -> list[tuple[str, dict[str, Any]]]:
    return [(name, {}) for name in VALUES_FILES] + [("production", EVERYTHING)]


@pytest.mark.parametrize("name", VALUES_FILES)
def test_helm_lint_passes(name: str) -> None:
    report = helm.lint(CHART, values_file(name), strict=True)
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # 2 warning, 3 error
    assert problems == []


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(("name", "overrides"), all_variants())
def test_manifests_match_the_kubernetes_schemas(
    name: str, overrides: dict[str, Any], version: str
) -> None:
    manifests = render(name, overrides)
    for manifest in manifests:
        if manifest["kind"] in CRD_KINDS:
            continue
        # strict: an unknown or misspelt field fails, as `kubectl apply --validate=strict`.
        kubernetes_validate.validate(manifest, version, strict=True)
    assert {m["kind"] for m in manifests} >= {"Deployment", "Service", "ConfigMap"}


def test_every_optional_template_is_covered() -> None:
    rendered = {m["kind"] for name, extra in all_variants() for m in render(name, extra)}
    templates = {p.stem for p in (CHART / "templates").glob("*.yaml")}
    kinds = {
        "configmap": "ConfigMap",
        "dashboard": "ConfigMap",
        "deployment": "Deployment",
        "hpa": "HorizontalPodAutoscaler",
        "httproute": "HTTPRoute",
        "ingress": "Ingress",
        "networkpolicy": "NetworkPolicy",
        "pdb": "PodDisruptionBudget",
        "pvc": "PersistentVolumeClaim",
        "secret": "Secret",
        "service": "Service",
        "serviceaccount": "ServiceAccount",
        "servicemonitor": "ServiceMonitor",
        "trial-postgresql": "StatefulSet",
        "trial-redis": "StatefulSet",
        "trial-secret": "Secret",
    }
    assert templates == set(kinds), "a new template: add it here and to a variant"
    assert set(kinds.values()) <= rendered
    secret = render("minimal", {"auth": {"mode": "jwt", "jwt": {"secret": "s" * 32}}})
    assert one(secret, "Secret", "demo-ysync")


@pytest.mark.parametrize(("name", "overrides"), all_variants())
def test_probes_hit_health_endpoints_on_the_served_port(
    name: str, overrides: dict[str, Any]
) -> None:
    manifests = render(name, overrides)
    ysync = container(manifests)
    (port,) = ysync["ports"]
    assert port["name"] == "http"
    assert str(port["containerPort"]) == container_env(manifests)["YSYNC_PORT"]
    paths = {probe: ysync[probe]["httpGet"] for probe in ("startupProbe", "livenessProbe")}
    assert paths == {p: {"path": "/healthz", "port": "http"} for p in paths}
    assert ysync["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    (service_port,) = one(manifests, "Service", SERVICE)["spec"]["ports"]
    assert service_port["targetPort"] == "http"


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"config": {"drain_seconds": 30, "shutdown_timeout": 45.5}},
        {"config": {"drain_seconds": 0, "shutdown_timeout": 5}, "preStopSeconds": 0},
        {"preStopSeconds": 20},
    ],
)
@pytest.mark.parametrize("name", VALUES_FILES)
def test_grace_period_outlasts_prestop_drain_and_shutdown(
    name: str, overrides: dict[str, Any]
) -> None:
    manifests = render(name, overrides)
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    env = container_env(manifests)
    drain, shutdown = float(env["YSYNC_DRAIN_SECONDS"]), float(env["YSYNC_SHUTDOWN_TIMEOUT"])
    lifecycle = container(manifests).get("lifecycle")
    pre_stop = 0.0
    if lifecycle is not None:
        command = lifecycle["preStop"]["exec"]["command"]
        assert command[0] == "sleep"
        pre_stop = float(command[1])
    assert pre_stop == overrides.get("preStopSeconds", 5)
    assert pod["terminationGracePeriodSeconds"] > pre_stop + drain + shutdown


def test_pod_disruption_budget_only_with_several_pods() -> None:
    assert find(render("minimal"), "PodDisruptionBudget") == []
    stopped = render("trial", {"replicaCount": 0})  # scaled to 0 for a restore
    assert one(stopped, "Deployment")["spec"]["replicas"] == 0
    assert find(stopped, "PodDisruptionBudget") == []
    for name in ("production", "trial"):
        manifests = render(name)
        pdb = one(manifests, "PodDisruptionBudget")
        pod_labels = one(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    one_pod = {"autoscaling": {"minReplicas": 1}}
    assert find(render("production", one_pod), "PodDisruptionBudget") == []


def test_autoscaler_only_when_enabled() -> None:
    assert find(render("minimal"), "HorizontalPodAutoscaler") == []
    assert find(render("trial"), "HorizontalPodAutoscaler") == []
    manifests = render("production")
    hpa = one(manifests, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == one(manifests, "Deployment")["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] == 3
    metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    assert metrics["Pods"]["pods"]["metric"]["name"] == "ysync_connections"  # server/metrics.py
    # The autoscaler owns the replica count: the Deployment must not fight it on upgrade.
    assert "replicas" not in one(manifests, "Deployment")["spec"]
    cpu_only = render("production", {"autoscaling": {"targetConnectionsPerPod": 0}})
    (metric,) = one(cpu_only, "HorizontalPodAutoscaler")["spec"]["metrics"]
    assert metric["type"] == "Resource"


@pytest.mark.parametrize(
    ("name", "overrides", "refusal"),
    [
        ("minimal", {"replicaCount": 2}, "needs store.type=postgresql"),
        ("minimal", {"autoscaling": {"enabled": True}}, "needs store.type=postgresql"),
        ("minimal", {"replicaCount": 3, "store": {"type": "memory"}}, "with memory://"),
        ("production", {"redis": {"enabled": False}}, "needs Redis"),
        ("trial", {"trial": {"redis": {"enabled": False}}}, "needs Redis"),
        ("minimal", {"config": {"workers": 2}}, "workers > 1 needs Redis"),
        (
            "minimal",
            {"store": {"type": "memory"}, "redis": {"enabled": True, "url": "redis://r"}},
            "shared store",
        ),
        ("minimal", {"store": {"type": "postgresql"}}, "needs store.postgresql.url"),
        ("minimal", {"redis": {"enabled": True}}, "needs redis.url"),
        ("minimal", {"auth": {"mode": "jwt"}}, "needs auth.jwt.secret"),
        ("minimal", {"config": {"drain_seconds": 30}}, "greater than config.drain_seconds"),
        ("production", {"httpRoute": {"enabled": True}}, "parentRefs"),
    ],
)
def test_template_refuses_what_cannot_work(
    name: str, overrides: dict[str, Any], refusal: str
) -> None:
    with pytest.raises(helm.HelmError, match=refusal):
        render(name, overrides)


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"replicaCount": "3"}, "/replicaCount"),
        ({"replicas": 3}, "additional properties 'replicas'"),
        ({"config": {"max_room": 10}}, "additional properties 'max_room'"),
        ({"config": {"max_rooms": "many"}}, "/config/max_rooms"),
        ({"config": {"log_format": "xml"}}, "/config/log_format"),
        ({"store": {"type": "mysql"}}, "/store/type"),
        ({"image": {"tag": 1}}, "/image/tag"),
        ({"ingress": {"enabled": "yes"}}, "/ingress/enabled"),
    ],
)
def test_values_schema_rejects_bad_values(values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=complaint):
        render_files(values)


def test_values_schema_covers_every_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())

    def walk(values: Any, node: dict[str, Any], path: str) -> None:
        assert "type" in node, f"{path}: no type in values.schema.json"
        if isinstance(values, dict) and "properties" in node:
            assert node.get("additionalProperties") is False, f"{path}: open object"
            for key, value in values.items():
                assert key in node["properties"], f"{path}.{key} is not in values.schema.json"
                walk(value, node["properties"][key], f"{path}.{key}")

    with helm.Chart.load(CHART) as loaded:
        walk(loaded.values, schema, "")


def test_security_context_and_writable_data_only_for_sqlite() -> None:
    for name in VALUES_FILES:
        manifests = render(name)
        pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
        ysync = container(manifests)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert ysync["securityContext"]["readOnlyRootFilesystem"] is True
        assert ysync["securityContext"]["allowPrivilegeEscalation"] is False
        assert ysync["securityContext"]["capabilities"]["drop"] == ["ALL"]
        mounts = {m["mountPath"] for m in ysync.get("volumeMounts", [])}
        sqlite = container_env(manifests)["YSYNC_STORE"].startswith("sqlite:")
        assert ("/data" in mounts) == sqlite, name
        strategy = one(manifests, "Deployment")["spec"]["strategy"]
        assert strategy["type"] == ("Recreate" if sqlite else "RollingUpdate")
        if not sqlite:
            # A replacement is ready before an old pod drains.
            assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    minimal = render("minimal")
    (volume,) = one(minimal, "Deployment")["spec"]["template"]["spec"]["volumes"]
    claim = one(minimal, "PersistentVolumeClaim")
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert container_env(minimal)["YSYNC_STORE"] == "sqlite:////data/ysync.db"


def test_trial_components_are_wired_and_marked_not_for_production() -> None:
    manifests = render("trial")
    env = container_env(manifests)
    services = {s["metadata"]["name"]: s for s in find(manifests, "Service")}
    redis_host = env["YSYNC_REDIS_URL"].split("//")[1].split(":")[0]
    store_host = env["YSYNC_STORE"].split("@")[1].split(":")[0]
    assert env["YSYNC_STORE"].startswith("postgresql://")
    for host, port in ((redis_host, 6379), (store_host, 5432)):
        assert services[host]["spec"]["ports"][0]["port"] == port
        statefulset = one(manifests, "StatefulSet", host)
        assert statefulset["metadata"]["labels"]["ysync.dev/trial"] == "not-for-production"
        pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
        assert services[host]["spec"]["selector"].items() <= pod_labels.items()
    password = secret_data(manifests, f"{RELEASE}-ysync-trial")["postgres-password"]
    assert len(password) >= 16 and f":{password}@" in env["YSYNC_STORE"]
    postgres = one(manifests, "StatefulSet", store_host)["spec"]["template"]["spec"]
    (pg_password,) = (
        e for e in postgres["containers"][0]["env"] if e["name"] == "POSTGRES_PASSWORD"
    )
    assert pg_password["valueFrom"]["secretKeyRef"]["key"] == "postgres-password"
    notes = render_files(values_file("trial"))["ysync/templates/NOTES.txt"]
    assert "NOT FOR PRODUCTION" in notes


def test_selectors_never_pick_test_or_trial_pods() -> None:
    manifests = render("trial")
    selector = one(manifests, "Service", SERVICE)["spec"]["selector"]
    others = [one(manifests, "Pod")] + [
        s["spec"]["template"] for s in find(manifests, "StatefulSet")
    ]
    for pod in others:
        assert not selector.items() <= pod["metadata"]["labels"].items()
    ysync_pod = one(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= ysync_pod.items()
    spread = one(manifests, "Deployment")["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    }
    assert all(c["labelSelector"]["matchLabels"].items() <= ysync_pod.items() for c in spread)


def test_ingress_and_http_route_reach_the_service_with_websocket_timeouts() -> None:
    manifests = render("production", EVERYTHING)
    service = one(manifests, "Service", SERVICE)
    ingress = one(manifests, "Ingress")
    annotations = ingress["metadata"]["annotations"]
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(annotations[f"nginx.ingress.kubernetes.io/{timeout}"]) >= 3600
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": service["metadata"]["name"], "port": {"name": "http"}}
    route = one(manifests, "HTTPRoute")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    (rule,) = route["spec"]["rules"]
    (ref,) = rule["backendRefs"]
    assert ref == {"name": service["metadata"]["name"], "port": service["spec"]["ports"][0]["port"]}
    assert rule["timeouts"] == {"request": "0s"}
    assert service["spec"]["sessionAffinity"] == "None"


def test_metrics_scraping_and_dashboard() -> None:
    manifests = render("production")
    monitor = one(manifests, "ServiceMonitor")
    service = one(manifests, "Service", SERVICE)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"
    dashboard = one(manifests, "ConfigMap", f"{RELEASE}-ysync-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads((ROOT / "docs" / "grafana" / "ysync-dashboard.json").read_text())
    assert json.loads(dashboard["data"]["ysync-dashboard.json"]) == shipped


def test_network_policy_admits_the_helm_test_pod() -> None:
    manifests = render("production", {"auth": {"jwt": {"keyType": "secret"}}})
    policy = one(manifests, "NetworkPolicy")
    test_pod = one(manifests, "Pod")["metadata"]["labels"]
    peers = policy["spec"]["ingress"][0]["from"]
    assert any(
        p.get("podSelector", {}).get("matchLabels", {}).items() <= test_pod.items()
        and "podSelector" in p
        for p in peers
    )


def test_notes_tell_how_to_connect() -> None:
    notes = render_files(values_file("production"))["ysync/templates/NOTES.txt"]
    assert "wss://collab.example.com" in notes
    minimal = render_files(values_file("minimal"))["ysync/templates/NOTES.txt"]
    assert "port-forward service/demo-ysync 1234:1234" in minimal
    assert "authentication is off" in minimal
