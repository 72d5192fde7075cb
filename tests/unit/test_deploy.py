"""The deployment files agree with the code: settings names, the command, the RBAC the
adapters need, and the Slack app's scopes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _env_file(name: str) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in (DEPLOY / "kubernetes" / name).read_text().splitlines()
             if line and not line.startswith("#")]
    return {k: v for k, v in pairs}


def test_every_configured_variable_is_a_setting() -> None:
    known = {name.upper() for name in Settings.model_fields}
    for name in ("config.env", "secret.env"):
        unknown = set(_env_file(name)) - known
        assert not unknown, f"{name} sets variables the bot does not read: {unknown}"


def test_the_shipped_config_parses() -> None:
    env = {k.lower(): v for k, v in {**_env_file("config.env"),
                                      **_env_file("secret.env")}.items()}
    settings = Settings(**env)  # type: ignore[arg-type]
    assert settings.approvers_configured


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_rbac_grants_what_the_adapters_call_and_no_more() -> None:
    (role,) = _docs(DEPLOY / "kubernetes" / "rbac.yaml")
    grants = {(g, r): set(rule["verbs"]) for rule in role["rules"]
              for g in rule["apiGroups"] for r in rule["resources"]}
    assert grants[("gateway.networking.k8s.io", "httproutes")] >= {"get", "list", "patch"}
    assert "patch" not in grants[("inference.networking.k8s.io", "inferencepools")]
    assert all(not verbs & {"create", "delete", "update", "*"} for verbs in grants.values())


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


@pytest.mark.parametrize("folder", ["kubernetes", "kubernetes/managed-namespace"])
def test_kustomize_renders(folder: str) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: cannot render the Kustomize overlays")
    done = subprocess.run([kubectl, "kustomize", str(DEPLOY / folder)], capture_output=True,
                          text=True, timeout=60, check=True)
    kinds = {d["kind"] for d in yaml.safe_load_all(done.stdout) if d}
    assert kinds
