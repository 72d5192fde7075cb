"""The real kubectl against the emulator, through the kubeconfig the emulator writes."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from sandbox.kube import KubeEmulator

GW = ("gateway.networking.k8s.io", "v1")
KUBECTL = shutil.which("kubectl")

pytestmark = pytest.mark.skipif(
    KUBECTL is None, reason="kubectl is not installed: the kubectl tests need it on PATH")

ROUTE_90_10 = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: routes-to-llm
  namespace: default
spec:
  parentRefs:
  - name: inference-gateway
  rules:
  - matches:
    - path: {type: PathPrefix, value: /}
    backendRefs:
    - {group: inference.networking.k8s.io, kind: InferencePool, name: llm-pool, weight: 90}
    - group: inference.networking.k8s.io
      kind: InferencePool
      name: llm-pool-version-2
      weight: 10
"""


class Kubectl:
    def __init__(self, kubeconfig: Path, cache: Path) -> None:
        assert KUBECTL is not None
        self.base = [KUBECTL, "--kubeconfig", str(kubeconfig), "--cache-dir", str(cache)]
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(cache)}

    def __call__(self, *args: str, timeout: str = "10s",
                 stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.base, f"--request-timeout={timeout}", *args],
                              capture_output=True, text=True, input=stdin, env=self.env,
                              timeout=30, check=False)

    def json(self, *args: str) -> Any:
        result = self(*args, "-o", "json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


@pytest.fixture
def kubectl(kube_kubeconfig: Path, tmp_path: Path) -> Kubectl:
    return Kubectl(kube_kubeconfig, tmp_path / "kube-cache")


def _weights(route: dict[str, Any]) -> dict[str, int]:
    return {b["name"]: b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]}


def test_get_json_shows_the_seeded_split(kubectl: Kubectl) -> None:
    routes = kubectl.json("get", "httproutes", "-n", "default")
    by_name = {r["metadata"]["name"]: r for r in routes["items"]}
    assert _weights(by_name["routes-to-llm"]) == {"llm-pool": 100, "llm-pool-version-2": 0}
    assert _weights(by_name["llm-route"]) == {"llm": 100}


def test_get_yaml_and_tables(kubectl: Kubectl) -> None:
    result = kubectl("get", "httproute", "routes-to-llm", "-o", "yaml")
    assert result.returncode == 0, result.stderr
    assert "name: llm-pool-version-2" in result.stdout
    pools = kubectl("get", "inferencepools.inference.networking.k8s.io", "-n", "default")
    assert pools.returncode == 0, pools.stderr
    assert pools.stdout.split()[:2] == ["NAME", "AGE"]
    assert {"llm-pool", "llm-pool-version-2", "llm", "llm-new"} <= set(pools.stdout.split())
    rewrites = kubectl("get", "inferencemodelrewrites")
    assert rewrites.returncode == 0, rewrites.stderr
    assert "small-segment-lora" in rewrites.stdout
    objectives = kubectl.json("get", "inferenceobjectives")
    assert objectives["items"][0]["apiVersion"] == "llm-d.ai/v1alpha2"


def test_apply_changes_weights_and_bumps_generation(kubectl: Kubectl, tmp_path: Path) -> None:
    manifest = tmp_path / "route.yaml"
    manifest.write_text(ROUTE_90_10)
    result = kubectl("apply", "-f", str(manifest))
    assert result.returncode == 0, result.stderr
    assert "configured" in result.stdout
    route = kubectl.json("get", "httproute", "routes-to-llm")
    assert _weights(route) == {"llm-pool": 90, "llm-pool-version-2": 10}
    assert route["metadata"]["generation"] == 2
    assert "kubectl.kubernetes.io/last-applied-configuration" in route["metadata"]["annotations"]
    conditions = route["status"]["parents"][0]["conditions"]
    assert {c["observedGeneration"] for c in conditions} == {2}
    again = kubectl("apply", "-f", str(manifest))  # a second apply is a no-op
    assert again.returncode == 0, again.stderr
    assert kubectl.json("get", "httproute", "routes-to-llm")["metadata"]["generation"] == 2


def test_apply_creates_and_delete_removes(kubectl: Kubectl, tmp_path: Path) -> None:
    manifest = tmp_path / "new.yaml"
    manifest.write_text(ROUTE_90_10.replace("name: routes-to-llm", "name: canary-route"))
    assert kubectl("apply", "-f", str(manifest)).returncode == 0
    assert kubectl.json("get", "httproute", "canary-route")["metadata"]["generation"] == 1
    deleted = kubectl("delete", "-f", str(manifest))
    assert deleted.returncode == 0, deleted.stderr
    missing = kubectl("get", "httproute", "canary-route")
    assert missing.returncode != 0
    assert 'httproutes.gateway.networking.k8s.io "canary-route" not found' in missing.stderr


def test_merge_patch_with_stale_resource_version_is_a_conflict(kubectl: Kubectl) -> None:
    old_rv = kubectl.json("get", "httproute", "routes-to-llm")["metadata"]["resourceVersion"]
    fresh = kubectl("patch", "httproute", "routes-to-llm", "--type", "merge", "-p",
                    json.dumps({"metadata": {"annotations": {"touched": "yes"}}}))
    assert fresh.returncode == 0, fresh.stderr
    stale = kubectl("patch", "httproute", "routes-to-llm", "--type", "merge", "-p",
                    json.dumps({"metadata": {"resourceVersion": old_rv},
                                "spec": {"hostnames": ["x.example"]}}))
    assert stale.returncode != 0
    assert "Conflict" in stale.stderr and "the object has been modified" in stale.stderr
    assert "hostnames" not in kubectl.json("get", "httproute", "routes-to-llm")["spec"]


def test_out_of_range_weight_is_refused_and_nothing_changes(kubectl: Kubectl,
                                                            kube_emulator: KubeEmulator) -> None:
    before = kube_emulator.get_object(*GW, "httproutes", "default", "routes-to-llm")
    result = kubectl("patch", "httproute", "routes-to-llm", "--type", "json", "-p", json.dumps(
        [{"op": "replace", "path": "/spec/rules/0/backendRefs/0/weight", "value": 1000001}]))
    assert result.returncode != 0
    assert "is invalid" in result.stderr
    assert "spec.rules[0].backendRefs[0].weight" in result.stderr
    assert kube_emulator.requests[-1].status == 422
    assert kube_emulator.get_object(*GW, "httproutes", "default", "routes-to-llm") == before


def test_json_patch_test_op(kubectl: Kubectl) -> None:
    path = "/spec/rules/0/backendRefs/1/weight"
    failed = kubectl("patch", "httproute", "routes-to-llm", "--type", "json", "-p", json.dumps(
        [{"op": "test", "path": path, "value": 55}, {"op": "replace", "path": path,
                                                     "value": 5}]))
    assert failed.returncode != 0 and "invalid" in failed.stderr
    ok = kubectl("patch", "httproute", "routes-to-llm", "--type", "json", "-p", json.dumps(
        [{"op": "test", "path": path, "value": 0}, {"op": "replace", "path": path, "value": 5}]))
    assert ok.returncode == 0, ok.stderr
    assert _weights(kubectl.json("get", "httproute", "routes-to-llm"))["llm-pool-version-2"] == 5


def test_get_watch_sees_a_change(kubectl: Kubectl, kube_emulator: KubeEmulator) -> None:
    watcher = subprocess.Popen(
        [*kubectl.base, "--request-timeout=5s", "get", "httproute", "routes-to-llm", "-w",
         "--output-watch-events", "-o", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=kubectl.env)
    assert watcher.stdout is not None
    events: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 10
        while not any(r.verb == "watch" for r in kube_emulator.requests):
            assert time.monotonic() < deadline, "kubectl never started watching"
            time.sleep(0.02)
        route = kube_emulator.get_object(*GW, "httproutes", "default", "routes-to-llm")
        assert route is not None
        route["spec"]["rules"][0]["backendRefs"][1]["weight"] = 42
        kube_emulator.put_object(route)
        decoder, text = json.JSONDecoder(), ""
        for line in watcher.stdout:  # ends by itself at the request timeout at the latest
            text += line
            try:
                event, end = decoder.raw_decode(text.strip())
            except json.JSONDecodeError:
                continue
            events.append(event)
            text = text.strip()[end:]
            if event["type"] == "MODIFIED":
                break
    finally:
        watcher.kill()
        watcher.communicate(timeout=10)
    assert events[0]["type"] == "ADDED"
    assert events[-1]["type"] == "MODIFIED"
    assert _weights(events[-1]["object"])["llm-pool-version-2"] == 42


def test_the_demos_watch_line_prints_one_change_per_line(
    kubectl: Kubectl, kube_emulator: KubeEmulator
) -> None:
    """The kubectl line the sandbox prints, as printed: a header, then one line per event."""
    from bot.sandbox import WATCH_ARGS

    watcher = subprocess.Popen(
        [*kubectl.base, "--request-timeout=5s", *shlex.split(WATCH_ARGS)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=kubectl.env)
    assert watcher.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 10
        while not any(r.verb == "watch" for r in kube_emulator.requests):
            assert time.monotonic() < deadline, "kubectl never started watching"
            time.sleep(0.02)
        route = kube_emulator.get_object(*GW, "httproutes", "default", "routes-to-llm")
        assert route is not None
        route["spec"]["rules"][0]["backendRefs"][0]["weight"] = 90
        route["spec"]["rules"][0]["backendRefs"][1]["weight"] = 10
        kube_emulator.put_object(route)
        for line in watcher.stdout:  # ends by itself at the request timeout at the latest
            lines.append(line.rstrip("\n"))
            if line.split()[-1:] == ["90,10"]:
                break
    finally:
        watcher.kill()
        watcher.communicate(timeout=10)
    assert lines[0].split() == ["VERSION", "POOLS", "WEIGHTS"]
    assert lines[1].split()[1:] == ["llm-pool,llm-pool-version-2", "100,0"]
    assert lines[-1].split()[1:] == ["llm-pool,llm-pool-version-2", "90,10"]
