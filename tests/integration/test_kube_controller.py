"""The simulated gateway controller: route and pool status after spec changes."""

from __future__ import annotations

import time
from typing import Any, cast

from kubernetes import client

from sandbox.kube import KubeEmulator

GW = ("gateway.networking.k8s.io", "v1")
POOL = ("inference.networking.k8s.io", "v1")
NS = "default"
CONTROLLER = "sandbox.emulator/gateway-controller"


def _get(co: client.CustomObjectsApi, kind: tuple[str, str], plural: str,
         name: str) -> dict[str, Any]:
    return cast(dict[str, Any], co.get_namespaced_custom_object(*kind, NS, plural, name))


def _conditions(obj: dict[str, Any], key: str = "parents") -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in obj["status"][key][0]["conditions"]}


def test_seeded_route_is_accepted_and_resolved(kube_emulator: KubeEmulator) -> None:
    route = kube_emulator.get_object(*GW, "httproutes", NS, "routes-to-llm")
    assert route is not None
    parent = route["status"]["parents"][0]
    assert parent["controllerName"] == CONTROLLER
    assert parent["parentRef"] == {"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                   "name": "inference-gateway"}
    conds = _conditions(route)
    assert (conds["Accepted"]["status"], conds["Accepted"]["reason"]) == ("True", "Accepted")
    assert (conds["ResolvedRefs"]["status"], conds["ResolvedRefs"]["reason"]) == (
        "True", "ResolvedRefs")
    assert all(c["observedGeneration"] == 1 and c["lastTransitionTime"].endswith("Z")
               for c in conds.values())


def test_status_follows_generation_before_the_response(kube_api: client.ApiClient) -> None:
    co = client.CustomObjectsApi(kube_api)
    co.patch_namespaced_custom_object(*GW, NS, "httproutes", "routes-to-llm", {"spec": {
        "rules": [{"backendRefs": [
            {"group": "inference.networking.k8s.io", "kind": "InferencePool",
             "name": "llm-pool", "weight": 90},
            {"group": "inference.networking.k8s.io", "kind": "InferencePool",
             "name": "llm-pool-version-2", "weight": 10}]}]}})
    route = _get(co, GW, "httproutes", "routes-to-llm")
    assert route["metadata"]["generation"] == 2
    assert {c["observedGeneration"] for c in _conditions(route).values()} == {2}


def test_missing_pool_is_backend_not_found(kube_api: client.ApiClient) -> None:
    co = client.CustomObjectsApi(kube_api)
    co.patch_namespaced_custom_object(*GW, NS, "httproutes", "llm-route", {"spec": {
        "rules": [{"backendRefs": [
            {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "llm",
             "weight": 50},
            {"group": "inference.networking.k8s.io", "kind": "InferencePool",
             "name": "llm-typo", "weight": 50}]}]}})
    route = _get(co, GW, "httproutes", "llm-route")
    resolved = _conditions(route)["ResolvedRefs"]
    assert (resolved["status"], resolved["reason"]) == ("False", "BackendNotFound")
    assert "llm-typo" in resolved["message"]
    assert resolved["observedGeneration"] == 2
    assert _conditions(route)["Accepted"]["status"] == "True"
    # creating the pool resolves the reference
    co.create_namespaced_custom_object(*POOL, NS, "inferencepools", {
        "metadata": {"name": "llm-typo"},
        "spec": {"selector": {"matchLabels": {"app": "llm-typo"}},
                 "targetPorts": [{"number": 8000}]}})
    route = _get(co, GW, "httproutes", "llm-route")
    assert _conditions(route)["ResolvedRefs"]["status"] == "True"


def test_pool_status_lists_the_gateway_when_referenced(kube_api: client.ApiClient) -> None:
    co = client.CustomObjectsApi(kube_api)
    stable = _get(co, POOL, "inferencepools", "llm-pool")
    entry = stable["status"]["parents"][0]
    assert entry["parentRef"] == {"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                  "name": "inference-gateway", "namespace": "default"}
    assert {c["type"]: c["status"] for c in entry["conditions"]} == {
        "Accepted": "True", "ResolvedRefs": "True"}
    fresh = _get(co, POOL, "inferencepools", "llm-new")
    assert "status" not in fresh or not fresh["status"].get("parents")
    route = _get(co, GW, "httproutes", "llm-route")
    refs = route["spec"]["rules"][0]["backendRefs"]
    refs.append({"group": "inference.networking.k8s.io", "kind": "InferencePool",
                 "name": "llm-new", "weight": 0})
    co.replace_namespaced_custom_object(*GW, NS, "httproutes", "llm-route", route)
    fresh = _get(co, POOL, "inferencepools", "llm-new")
    assert fresh["status"]["parents"][0]["parentRef"]["name"] == "inference-gateway"


def test_metadata_only_change_does_not_rewrite_status(kube_emulator: KubeEmulator,
                                                      kube_api: client.ApiClient) -> None:
    co = client.CustomObjectsApi(kube_api)
    patched = cast(dict[str, Any], co.patch_namespaced_custom_object(
        *GW, NS, "httproutes", "routes-to-llm", {"metadata": {"labels": {"a": "b"}}}))
    after = kube_emulator.get_object(*GW, "httproutes", NS, "routes-to-llm")
    assert after is not None
    assert after["metadata"]["resourceVersion"] == patched["metadata"]["resourceVersion"]


def test_put_object_runs_the_controller(kube_emulator: KubeEmulator) -> None:
    stored = kube_emulator.put_object({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "setup", "namespace": "team-a"},
        "spec": {"parentRefs": [{"name": "inference-gateway", "namespace": "default"}],
                 "rules": [{"backendRefs": [{"group": "inference.networking.k8s.io",
                                             "kind": "InferencePool", "name": "llm-pool",
                                             "weight": 1}]}]},
    })
    assert stored["metadata"]["generation"] == 1
    route = kube_emulator.get_object(*GW, "httproutes", "team-a", "setup")
    assert route is not None
    # the pool is looked up in the route's namespace: team-a has none
    assert _conditions(route)["ResolvedRefs"]["reason"] == "BackendNotFound"
    assert _conditions(route)["Accepted"]["status"] == "True"


def test_delayed_controller() -> None:
    emulator = KubeEmulator(seed="demo", controller_delay=0.2)
    emulator.start()
    try:
        route = emulator.get_object(*GW, "httproutes", NS, "routes-to-llm")
        assert route is not None
        route["spec"]["rules"][0]["backendRefs"][1]["weight"] = 30
        emulator.put_object(route)
        now = emulator.get_object(*GW, "httproutes", NS, "routes-to-llm")
        assert now is not None and now["metadata"]["generation"] == 2
        assert _conditions(now)["Accepted"]["observedGeneration"] == 1  # not yet
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            now = emulator.get_object(*GW, "httproutes", NS, "routes-to-llm")
            assert now is not None
            if _conditions(now)["Accepted"]["observedGeneration"] == 2:
                break
            time.sleep(0.02)
        assert _conditions(now)["Accepted"]["observedGeneration"] == 2
    finally:
        emulator.stop()
