"""The Helm chart: it lints, renders, and renders the same security settings as the
Kustomize base; its options (Ingress, ServiceMonitor, an existing Secret, an external Redis)
produce what they say."""

from __future__ import annotations

from typing import Any

import pytest

from bot.settings import Settings, load_settings
from tests.support.manifests import (
    CHART,
    EXAMPLE_VALUES,
    KUBE_VERSION,
    Doc,
    env_file,
    find,
    helm,
    helm_render,
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


def _config(*sets: str) -> dict[str, str]:
    data: dict[str, str] = find(helm_template(*sets), "ConfigMap", "rollout-bot-config")["data"]
    return data


def test_the_chart_sets_what_config_env_sets() -> None:
    """config.env exposes every setting the install may tune (test_deploy holds it to
    Settings); by default the chart sets the same variables to the same strings, but the
    approvers, which neither ships (the lint values name a group; the base names none)."""
    chart, base = _config(), env_file("config.env")
    assert chart.pop("ROLLOUT_APPROVER_GROUPS") == "S0REVIEWERS"
    assert base.pop("ROLLOUT_APPROVER_GROUPS") == ""
    assert chart == base


# --set, the variable, and what the bot reads from it (none of them its default)
TUNED = [
    ("keep=2h", "ROLLOUT_KEEP", "2h", "rollout_keep", "2h"),
    ("retention=365d", "ROLLOUT_RETENTION", "365d", "rollout_retention", "365d"),
    ("retention=0", "ROLLOUT_RETENTION", "0", "rollout_retention", "0"),
    ("groupCacheTtl=10m", "ROLLOUT_GROUP_CACHE_TTL", "10m", "rollout_group_cache_ttl", "10m"),
    ("lockTtl=30s", "ROLLOUT_LOCK_TTL", "30s", "rollout_lock_ttl", "30s"),
    ("kubeTimeout=2.5", "ROLLOUT_KUBE_TIMEOUT", "2.5", "rollout_kube_timeout", 2.5),
    ("watchSeconds=0", "ROLLOUT_WATCH_SECONDS", "0", "rollout_watch_seconds", 0),
    ("watchSeconds=600", "ROLLOUT_WATCH_SECONDS", "600", "rollout_watch_seconds", 600),
    ("tickThreads=64", "ROLLOUT_TICK_THREADS", "64", "rollout_tick_threads", 64),
    ("slack.socketPing=12.5", "SLACK_SOCKET_PING", "12.5", "slack_socket_ping", 12.5),
    ("stopTimeout=30", "ROLLOUT_STOP_TIMEOUT", "30", "rollout_stop_timeout", 30.0),
]


@pytest.mark.parametrize(("item", "variable", "rendered", "field", "read"), TUNED)
def test_each_tuning_value_reaches_the_environment_as_a_string(
        item: str, variable: str, rendered: str, field: str, read: object) -> None:
    config = _config(item)
    assert config[variable] == rendered
    assert all(isinstance(v, str) for v in config.values()), config
    settings = Settings(**{k.lower(): v for k, v in config.items()})  # type: ignore[arg-type]
    assert getattr(settings, field) == read


def test_a_key_prefix_needs_a_redis_of_your_own() -> None:
    """The bundled Redis's ACL allows only rollout-bot:*: another prefix is refused there,
    and reaches the bot with an external Redis."""
    refused = helm_render("keyPrefix=team-a")
    assert refused.returncode != 0
    assert "keyPrefix: the bundled Redis's ACL allows only keys rollout-bot:*" in refused.stderr
    config = _config("keyPrefix=team-a", "redis.bundled=false",
                     "redis.external.existingSecret=team-redis")
    assert config["ROLLOUT_KEY_PREFIX"] == "team-a"


# --set, and what the chart says instead of rendering pods that could not start
REFUSED = [
    (("redis.bundled=false",), "redis.bundled=false needs redis.external.url or "
     "redis.external.existingSecret"),
    (("redis.sentinel.hosts={sentinel-a:26379}",), "set redis.bundled=false with it"),
    (("slack.signingSecret=",), "slack.signingSecret (or slack.existingSecret) is required"),
    (("slack.socketMode=true",), "slack.appToken (or slack.existingSecret) is required"),
    (("rolloutNamespace=serving",), "rolloutNamespace serving is not in managedNamespaces"),
    (("namespace.name=serving",), "namespace.name serving is not the release namespace "
     "rollout-bot"),
    (("redis.sentinel.password=pw",), "the sentinels' password needs redis.sentinel.hosts"),
    (("redis.bundled=false", "redis.external.existingSecret=team-redis",
      "redis.sentinel.existingSecret=team-sentinel"),
     "the sentinels' password needs redis.sentinel.hosts"),
    (("stopTimeout=55",), "stopTimeout 55: the graceful stop must end within the pod's 60 s"),
    (("approverGroups=null",), "approvers or approverGroups: set at least one"),
    (("networkPolicy.dnsPeers=null",), "networkPolicy.dnsPeers: name where the cluster's DNS"),
    (("prometheus.url=http://reader:pw@prometheus:9090",
      "prometheus.bearerToken.existingSecret=prometheus-token"),
     "prometheus.url carries credentials (user:password@) too"),
    (("prometheus.url=http://prometheus:9090", "prometheus.urlSecret.name=prometheus-url"),
     "prometheus.url and prometheus.urlSecret.name: give PROMETHEUS_URL one way"),
]


def _dns_rule(docs: list[Doc]) -> dict[str, Any]:
    policy = find(docs, "NetworkPolicy", "rollout-bot")["spec"]
    (rule,) = [r for r in policy["egress"] if {"port": 53, "protocol": "UDP"} in r["ports"]]
    return dict(rule)


def test_where_the_clusters_dns_answers_is_a_value() -> None:
    """Clusters whose DNS pods are labelled otherwise, or with a node-local cache at a
    link-local address, could not resolve a name with the selector fixed."""
    assert _dns_rule(helm_template())["to"] == [
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]
    docs = helm_template("networkPolicy.dnsPeers[0].ipBlock.cidr=169.254.20.10/32")
    assert _dns_rule(docs)["to"] == [{"ipBlock": {"cidr": "169.254.20.10/32"}}]


def test_the_charts_own_values_name_no_approver_and_are_refused_until_one_is_set() -> None:
    """A placeholder group would render a bot that nobody could approve in."""
    args = ["template", "rollout-bot", str(CHART), "--namespace", "rollout-bot",
            "--kube-version", KUBE_VERSION, "--set", "slack.botToken=xoxb-1",
            "--set", "slack.signingSecret=s", "--set", "redis.password=p"]
    refused = helm(*args)
    assert refused.returncode != 0
    assert "approvers or approverGroups: set at least one" in refused.stderr
    rendered = helm(*args, "--set", "approvers={U0123ABCD}")
    assert rendered.returncode == 0, rendered.stderr


@pytest.mark.parametrize(("sets", "reason"), REFUSED)
def test_an_install_that_could_not_start_is_refused_at_render(sets: tuple[str, ...],
                                                              reason: str) -> None:
    """Rendered, each left pods waiting on a Secret nobody creates, a bot that exits at
    start for a missing secret, or a bot refused every read of its default namespace."""
    done = helm_render(*sets)
    assert done.returncode != 0
    assert reason in done.stderr


def test_sentinel_without_a_url_sets_no_redis_url() -> None:
    """The sentinels and the master's name are enough where the data nodes ask no
    password: no REDIS_URL from a Secret that does not exist."""
    docs = helm_template("redis.bundled=false", "redis.sentinel.hosts={sentinel-a:26379}")
    (bot,) = pod_spec(find(docs, "Deployment", "rollout-bot"))["containers"]
    assert "env" not in bot or not bot["env"]
    config = find(docs, "ConfigMap", "rollout-bot-config")["data"]
    assert config["REDIS_SENTINELS"] == "sentinel-a:26379"


SENTINEL = ("redis.bundled=false", "redis.sentinel.hosts={sentinel-a:26379}")


@pytest.mark.parametrize(("sets", "secret"), [
    (("redis.sentinel.existingSecret=team-sentinel",), "team-sentinel"),
    (("redis.sentinel.password=s3ntinel-pw",), "rollout-bot-redis-sentinel"),
])
def test_the_sentinel_password_reaches_the_pods_from_a_secret(sets: tuple[str, ...],
                                                              secret: str) -> None:
    """REDIS_SENTINEL_PASSWORD could once be set only by adding it to the Slack Secret; it
    is set as the Redis password is, from a Secret, never in the ConfigMap."""
    docs = helm_template(*SENTINEL, *sets)
    (bot,) = pod_spec(find(docs, "Deployment", "rollout-bot"))["containers"]
    (password,) = [e for e in bot["env"] if e["name"] == "REDIS_SENTINEL_PASSWORD"]
    assert password["valueFrom"]["secretKeyRef"] == {"name": secret,
                                                     "key": "REDIS_SENTINEL_PASSWORD"}
    made = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    if secret == "rollout-bot-redis-sentinel":
        assert made[secret]["stringData"] == {"REDIS_SENTINEL_PASSWORD": "s3ntinel-pw"}
    else:
        assert secret not in made
    for config in (d for d in docs if d["kind"] == "ConfigMap"):
        assert "REDIS_SENTINEL_PASSWORD" not in config["data"]
        assert "s3ntinel-pw" not in str(config["data"])


@pytest.mark.parametrize("sets", [(), ("namespace.name=serving",)])
def test_the_namespace_created_is_the_one_every_object_goes_into(sets: tuple[str, ...]) -> None:
    """namespace.create once made the namespace named by namespace.name (rollout-bot by
    default) while every object went into the release namespace: installed with -n serving,
    the labelled namespace held nothing and the pods ran in one nobody labelled."""
    docs = helm_template("namespace.create=true", *sets, namespace="serving")
    assert find(docs, "Namespace")["metadata"]["name"] == "serving"
    placed = {d["metadata"].get("namespace") for d in docs
              if d["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding",
                                   "RoleBinding")}
    assert placed == {"serving"}


def test_socket_mode_and_other_namespaces_render_when_complete() -> None:
    docs = helm_template("slack.socketMode=true", "slack.appToken=xapp-1-A-2-b",
                         "rolloutNamespace=serving", "managedNamespaces={default,serving}")
    secret = find(docs, "Secret", "rollout-bot-slack")["stringData"]
    assert secret["SLACK_APP_TOKEN"] == "xapp-1-A-2-b"
    bindings = {d["metadata"]["namespace"] for d in docs if d["kind"] == "RoleBinding"}
    assert bindings == {"default", "serving"}
    assert helm_template("managedNamespaces=null", "rolloutNamespace=serving")


@pytest.mark.parametrize(("replicas", "budget"), [(1, False), (2, True), (3, True)])
def test_a_disruption_budget_only_with_a_replica_to_spare(replicas: int, budget: bool) -> None:
    """minAvailable 1 over a single replica refuses every eviction: a node drain never ends."""
    docs = helm_template(f"replicaCount={replicas}")
    assert any(d["kind"] == "PodDisruptionBudget" for d in docs) is budget


def test_prometheus_headers_and_bearer_token_reach_the_bot_the_token_as_a_file() -> None:
    """The headers in the ConfigMap as the bot reads them; the token mounted read-only from
    the Secret and named by its path, never a value in the ConfigMap."""
    docs = helm_template("prometheus.url=http://prometheus:9090",
                         "prometheus.headers.X-Scope-OrgID=tenant-1",
                         "prometheus.headers.X-Other=v",
                         "prometheus.bearerToken.existingSecret=prometheus-token",
                         "prometheus.bearerToken.key=sa-token")
    config = find(docs, "ConfigMap", "rollout-bot-config")["data"]
    assert config["PROMETHEUS_HEADERS"] == "X-Other=v,X-Scope-OrgID=tenant-1"
    assert config["PROMETHEUS_BEARER_TOKEN_FILE"] == "/etc/rollout-bot-prometheus/sa-token"
    spec = pod_spec(find(docs, "Deployment", "rollout-bot"))
    (volume,) = [v for v in spec["volumes"] if v["name"] == "prometheus-token"]
    assert volume["secret"] == {"secretName": "prometheus-token",
                                "items": [{"key": "sa-token", "path": "sa-token"}]}
    (bot,) = spec["containers"]
    assert {"name": "prometheus-token", "mountPath": "/etc/rollout-bot-prometheus",
            "readOnly": True} in bot["volumeMounts"]
    read = load_settings(prometheus_headers=config["PROMETHEUS_HEADERS"])
    assert read.prometheus_headers == {"X-Other": "v", "X-Scope-OrgID": "tenant-1"}


def test_without_prometheus_auth_the_chart_sets_none() -> None:
    docs = helm_template("prometheus.url=http://prometheus:9090")
    config = find(docs, "ConfigMap", "rollout-bot-config")["data"]
    assert "PROMETHEUS_HEADERS" not in config and "PROMETHEUS_BEARER_TOKEN_FILE" not in config
    assert config["PROMETHEUS_URL"] == "http://prometheus:9090"
    spec = pod_spec(find(docs, "Deployment", "rollout-bot"))
    assert all(v["name"] != "prometheus-token" for v in spec["volumes"])
    (bot,) = spec["containers"]
    assert all(e["name"] != "PROMETHEUS_URL" for e in bot["env"])


def test_prometheus_url_from_a_secret_never_lands_in_the_configmap() -> None:
    """A URL carrying basic-auth credentials comes from a Secret the operator manages, as
    the bearer token does: the pod reads it from there, the ConfigMap has no copy."""
    docs = helm_template("prometheus.urlSecret.name=prometheus-url",
                         "prometheus.urlSecret.key=url")
    config = find(docs, "ConfigMap", "rollout-bot-config")["data"]
    assert "PROMETHEUS_URL" not in config
    (bot,) = pod_spec(find(docs, "Deployment", "rollout-bot"))["containers"]
    (url,) = [e for e in bot["env"] if e["name"] == "PROMETHEUS_URL"]
    assert url == {"name": "PROMETHEUS_URL",
                   "valueFrom": {"secretKeyRef": {"name": "prometheus-url", "key": "url"}}}
    default_key = helm_template("prometheus.urlSecret.name=prometheus-url")
    (bot,) = pod_spec(find(default_key, "Deployment", "rollout-bot"))["containers"]
    assert {"name": "PROMETHEUS_URL", "valueFrom": {"secretKeyRef": {
        "name": "prometheus-url", "key": "PROMETHEUS_URL"}}} in bot["env"]


def _secrets_checksums(*sets: str) -> tuple[str, str]:
    docs = helm_template(*sets)
    return tuple(
        find(docs, kind, name)["spec"]["template"]["metadata"]["annotations"]["checksum/secrets"]
        for kind, name in (("Deployment", "rollout-bot"), ("StatefulSet", "rollout-redis")))


def test_a_password_changed_in_values_restarts_the_bot_and_its_redis() -> None:
    """Only the ConfigMap was checksummed: a new redis.password reached the Secret and
    restarted neither pod; whichever restarted first then held another password than the
    other, and every command failed to authenticate."""
    before = _secrets_checksums("redis.password=first")
    after = _secrets_checksums("redis.password=second")
    assert before[0] != after[0] and before[1] != after[1]
    assert _secrets_checksums("redis.password=first") == before


@pytest.mark.parametrize("render", [helm_template, kustomize])
def test_the_bundled_redis_refuses_writes_before_its_container_is_killed(
        render: Any) -> None:
    """256Mi was the container's limit and Redis had none of its own: once its data (and an
    AOF rewrite's fork) reached it, the kernel killed Redis, and replaying the same AOF at
    start could kill it again. With maxmemory and noeviction it refuses writes instead,
    which the bot answers ("nothing was changed")."""
    redis = pod_spec(find(render(), "StatefulSet", "rollout-redis"))["containers"][0]
    args = " ".join(redis["args"])
    assert "--maxmemory 160mb --maxmemory-policy noeviction" in args
    assert redis["resources"]["limits"]["memory"] == "256Mi"
