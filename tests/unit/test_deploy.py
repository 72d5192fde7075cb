"""The deployment files agree with the code: settings names, the command, the RBAC the
adapters need, and the Slack app's scopes."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.settings import Settings, SettingsError, require_for_serve
from handlers.commands import Verb
from tests.support.manifests import env_file, find, kustomize, pod_spec, redis_acl

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"

# The settings config.env leaves out, and where the install takes each from instead.
NOT_IN_CONFIG = {
    "SLACK_BOT_TOKEN": "secret.env",
    "SLACK_SIGNING_SECRET": "secret.env",
    "SLACK_APP_TOKEN": "secret.env, for Socket Mode",
    "SLACK_API_URL": "Slack's own API unless set (the sandbox and the tests set it)",
    "REDIS_URL": "deployment.yaml, with the password from the Redis Secret",
    "REDIS_SENTINELS": "Sentinel only, instead of REDIS_URL's host",
    "REDIS_SENTINEL_MASTER": "Sentinel only",
    "REDIS_SENTINEL_PASSWORD": "Sentinel only",
    "KUBECONFIG": "in-cluster: the pod's ServiceAccount",
    "PROMETHEUS_URL": "optional: canary analysis is off without it (the chart's "
                      "prometheus.url, or prometheus.urlSecret)",
    "PROMETHEUS_BEARER_TOKEN_FILE": "optional: a file mounted from a Secret (the chart's "
                                    "prometheus.bearerToken)",
    "PROMETHEUS_HEADERS": "optional: with PROMETHEUS_URL (the chart's prometheus.headers)",
    "ROLLOUT_ANALYSIS_FILE": "optional: a file the install mounts (the chart's analysis.file)",
}


def test_every_configured_variable_is_a_setting() -> None:
    known = {name.upper() for name in Settings.model_fields}
    for name in ("config.env", "secret.env"):
        unknown = set(env_file(name)) - known
        assert not unknown, f"{name} sets variables the bot does not read: {unknown}"


def test_every_setting_is_in_config_env_or_named_with_where_it_comes_from() -> None:
    known = {name.upper() for name in Settings.model_fields}
    assert set(NOT_IN_CONFIG) <= known
    missing = known - set(env_file("config.env")) - set(NOT_IN_CONFIG)
    assert not missing, f"config.env does not expose settings the bot reads: {sorted(missing)}"


def test_config_env_ships_the_bots_own_defaults() -> None:
    """Every one, the approvers included: none (a placeholder group would have started a bot
    nobody can approve in)."""
    shipped = Settings(**{k.lower(): v for k, v in env_file("config.env").items()})  # type: ignore[arg-type]
    for name in env_file("config.env"):
        field = name.lower()
        default = Settings.model_fields[field].get_default(call_default_factory=True)
        assert getattr(shipped, field) == default, name


def test_the_shipped_config_starts_nothing_until_an_approver_is_named() -> None:
    """The base as shipped parses, and `serve` refuses it, naming both variables, until the
    install names an approver, as the chart refuses to render without one."""
    env = {k.lower(): v for k, v in {**env_file("config.env"),
                                      **env_file("secret.env")}.items()}
    settings = Settings(**env)  # type: ignore[arg-type]
    with pytest.raises(SettingsError) as refused:
        require_for_serve(settings, socket_mode=False)
    assert "ROLLOUT_APPROVERS" in str(refused.value)
    assert "ROLLOUT_APPROVER_GROUPS" in str(refused.value)
    named = Settings(**{**env, "rollout_approver_groups": "S0REVIEWERS"})  # type: ignore[arg-type]
    require_for_serve(named, socket_mode=False)


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_the_deployment_runs_serve_with_probes() -> None:
    (deployment,) = _docs(DEPLOY / "kubernetes" / "deployment.yaml")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][0] == "serve"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert deployment["spec"]["replicas"] >= 2


def test_slack_manifest_asks_for_the_three_scopes() -> None:
    manifest = yaml.safe_load((DEPLOY / "slack-app-manifest.yaml").read_text())
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {
        "commands", "chat:write", "usergroups:read"}
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/rollout" and command["url"].endswith("/slack/events")
    assert manifest["settings"]["interactivity"]["request_url"].endswith("/slack/events")


def test_slack_manifests_usage_hint_names_every_verb() -> None:
    """The hint Slack shows under `/rollout` as it is typed left out four verbs."""
    manifest = yaml.safe_load((DEPLOY / "slack-app-manifest.yaml").read_text())
    (command,) = manifest["features"]["slash_commands"]
    named = set(re.split(r"[^a-z-]+", command["usage_hint"]))
    assert {verb.value for verb in Verb} <= named


@pytest.mark.parametrize("folder", ["kubernetes", "kubernetes/managed-namespace"])
def test_kustomize_renders(folder: str) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: cannot render the Kustomize overlays")
    done = subprocess.run([kubectl, "kustomize", str(DEPLOY / folder)], capture_output=True,
                          text=True, timeout=60, check=True)
    kinds = {d["kind"] for d in yaml.safe_load_all(done.stdout) if d}
    assert kinds


# ---- security settings, on the rendered base --------------------------------------------------

RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                        "runAsNonRoot": True, "privileged": False}


def test_every_pod_meets_the_restricted_profile() -> None:
    docs = kustomize()
    for name, kind in (("rollout-bot", "Deployment"), ("rollout-redis", "StatefulSet")):
        spec = pod_spec(find(docs, kind, name))
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in spec["containers"] + spec.get("initContainers", []):
            ctx = container["securityContext"]
            assert {k: ctx.get(k) for k in RESTRICTED_CONTAINER} == RESTRICTED_CONTAINER, name
            assert ctx["capabilities"] == {"drop": ["ALL"]}, name
            assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}, name
            assert ctx["runAsUser"] >= 10000 or ctx["runAsUser"] == 65532, name
            assert "limits" in container["resources"], name
    labels = find(docs, "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_network_policies_deny_by_default_and_redis_answers_only_the_bot() -> None:
    docs = kustomize()
    policies = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "NetworkPolicy"}
    deny = policies["default-deny"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    redis = policies["rollout-redis"]
    (rule,) = redis["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"app": "rollout-bot"}}}]
    assert rule["ports"] == [{"port": 6379, "protocol": "TCP"}]
    assert redis["egress"] == []
    (bot_in,) = policies["rollout-bot"]["ingress"]
    assert bot_in == {"ports": [{"port": 3000, "protocol": "TCP"}]}
    egress_ports = {p["port"] for r in policies["rollout-bot"]["egress"] for p in r["ports"]}
    assert egress_ports == {53, 443, 6379, 6443, 9090}


def test_redis_takes_no_anonymous_client_and_the_bot_url_carries_its_user() -> None:
    docs = kustomize()
    redis = find(docs, "StatefulSet", "rollout-redis")
    (container,) = pod_spec(redis)["containers"]
    script = " ".join(container["args"])
    assert "user default off" in script
    assert "-@dangerous" in redis_acl(redis) and "~rollout-bot:*" in redis_acl(redis)
    (bot,) = pod_spec(find(docs, "Deployment", "rollout-bot"))["containers"]
    env = {e["name"]: e for e in bot["env"]}
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"].startswith(
        "rollout-redis-auth")
    assert env["REDIS_URL"]["value"].startswith("redis://rollout-bot:$(REDIS_PASSWORD)@")
    assert "REDIS_URL" not in env_file("config.env")


def test_the_cluster_role_grants_only_the_verbs_the_code_calls() -> None:
    role = find(kustomize(), "ClusterRole")
    grants = {(g, r): set(rule["verbs"]) for rule in role["rules"]
              for g in rule["apiGroups"] for r in rule["resources"]}
    assert grants == {  # watch: the namespace cache of serve and the scheduler
        ("gateway.networking.k8s.io", "httproutes"): {"get", "list", "watch", "patch"},
        ("inference.networking.k8s.io", "inferencepools"): {"get", "list", "watch"},
        ("inference.networking.x-k8s.io", "inferencepools"): {"get", "list", "watch"},
        ("llm-d.ai", "inferencemodelrewrites"): {"get", "list", "watch", "patch"},
        ("inference.networking.x-k8s.io", "inferencemodelrewrites"): {"get", "list", "watch",
                                                                      "patch"},
        ("llm-d.ai", "inferenceobjectives"): {"list", "watch"},
        ("inference.networking.x-k8s.io", "inferenceobjectives"): {"list", "watch"},
        ("", "pods"): {"list", "watch"},
        ("", "services"): {"list", "watch"},
    }


# ---- shutdown ----------------------------------------------------------------------------

#: the longest a tick in flight is waited for at SIGTERM, past which the process may be
#: killed mid-step (safe, but the lease then expires on its own): its reads and its write,
#: each up to ROLLOUT_KUBE_TIMEOUT, a read retried once
TICK_ALLOWANCE = 4 * 5.0


def _bot_pods() -> list[tuple[str, dict[str, Any], float]]:
    """Each install's bot pod and the ROLLOUT_STOP_TIMEOUT it sets."""
    from tests.support.manifests import helm_template

    chart = helm_template()
    chart_stop = find(chart, "ConfigMap", "rollout-bot-config")["data"]["ROLLOUT_STOP_TIMEOUT"]
    return [("kustomize", pod_spec(find(kustomize(), "Deployment", "rollout-bot")),
             float(env_file("config.env")["ROLLOUT_STOP_TIMEOUT"])),
            ("helm", pod_spec(find(chart, "Deployment", "rollout-bot")), float(chart_stop))]


def test_sigterm_comes_after_the_endpoints_are_gone_and_the_grace_covers_the_stop() -> None:
    """The pod waits in preStop while the proxies drop it, then `serve` stops within
    ROLLOUT_STOP_TIMEOUT: the tick in flight, then `SlackServer.stop`'s waits (HTTP, Slack
    work, side work, dependency checks), all sharing that one deadline. The grace period
    covers the pause and the deadline, and the deadline a tick in flight with room after it."""
    for name, spec, stop_timeout in _bot_pods():
        (bot,) = spec["containers"]
        command = bot["lifecycle"]["preStop"]["exec"]["command"]
        assert command[0] == "sleep", name
        pre_stop = float(command[1])
        assert pre_stop >= 3, name
        grace = spec["terminationGracePeriodSeconds"]
        assert grace >= pre_stop + stop_timeout, name
        assert stop_timeout >= TICK_ALLOWANCE + 5, name
