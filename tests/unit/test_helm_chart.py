"""The Helm chart: it lints, renders, and renders the same security settings as the
Kustomize base; its options (Ingress, ServiceMonitor, an existing Secret, an external Redis)
produce what they say."""

from __future__ import annotations

from typing import Any

from tests.support.manifests import (
    CHART,
    EXAMPLE_VALUES,
    Doc,
    find,
    helm,
    helm_template,
    kustomize,
    pod_spec,
    redis_acl,
)


def test_the_chart_lints_strictly() -> None:
    done = helm("lint", "--strict", str(CHART), "-f", str(EXAMPLE_VALUES))
    assert done.returncode == 0, done.stdout + done.stderr


def _security(docs: list[Doc]) -> dict[str, Any]:
    """Everything that makes the install restricted and locked down, by object."""
    out: dict[str, Any] = {}
    for kind, name in (("Deployment", "rollout-bot"), ("StatefulSet", "rollout-redis")):
        spec = pod_spec(find(docs, kind, name))
        out[name] = {
            "pod": spec["securityContext"],
            "token": spec.get("automountServiceAccountToken"),
            "containers": [(c["name"], c["securityContext"], c["resources"].get("limits"))
                           for c in spec["containers"]],
            "volumes": spec.get("volumes"),
        }
    out["acl"] = redis_acl(find(docs, "StatefulSet", "rollout-redis"))
    out["policies"] = {d["metadata"]["name"]: d["spec"] for d in docs
                       if d["kind"] == "NetworkPolicy"}
    out["rules"] = find(docs, "ClusterRole")["rules"]
    labels = find(docs, "Namespace")["metadata"]["labels"]
    out["psa"] = {k: v for k, v in labels.items() if k.startswith("pod-security")}
    (bot,) = pod_spec(find(docs, "Deployment", "rollout-bot"))["containers"]
    out["redis_url"] = next(e["value"] for e in bot["env"] if e["name"] == "REDIS_URL")
    return out


def test_the_chart_and_kustomize_render_the_same_security_settings() -> None:
    assert _security(helm_template()) == _security(kustomize())


def test_the_chart_renders_every_kind_the_base_does() -> None:
    chart = {d["kind"] for d in helm_template()}
    base = {d["kind"] for d in kustomize()} | {"RoleBinding"}
    assert base <= chart


def test_ingress_and_service_monitor_on_request() -> None:
    docs = helm_template("ingress.enabled=true", "ingress.host=bot.example.org",
                         "serviceMonitor.enabled=true")
    ingress = find(docs, "Ingress")["spec"]
    (rule,) = ingress["rules"]
    assert rule["host"] == "bot.example.org"
    assert rule["http"]["paths"][0]["path"] == "/slack/events"
    monitor = find(docs, "ServiceMonitor")["spec"]
    assert monitor["endpoints"][0]["path"] == "/metrics"
    assert monitor["selector"] == {"matchLabels": {"app": "rollout-bot"}}


def test_an_existing_slack_secret_and_an_external_redis() -> None:
    docs = helm_template("slack.existingSecret=team-slack", "redis.bundled=false",
                         "redis.external.existingSecret=team-redis", "replicaCount=3",
                         "approvers={U1,U2}")
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("StatefulSet", "rollout-redis") not in names
    assert not any(kind == "Secret" for kind, _ in names)
    deployment = find(docs, "Deployment", "rollout-bot")
    assert deployment["spec"]["replicas"] == 3
    (bot,) = pod_spec(deployment)["containers"]
    assert {"secretRef": {"name": "team-slack"}} in bot["envFrom"]
    (url,) = bot["env"]
    assert url["valueFrom"]["secretKeyRef"] == {"name": "team-redis", "key": "REDIS_URL"}
    config = find(docs, "ConfigMap", "rollout-bot-config")["data"]
    assert config["ROLLOUT_APPROVERS"] == "U1,U2"
