"""The test world's reseed: each test starts on the demo objects, whatever the last one did.

A reseed makes again only what changed (`KubeWorld.reseed`); what it leaves must be what a
reseed from nothing leaves: the same objects, the same specs and labels, the routes' statuses
answered by the gateway for their current generation and resolved.
"""

from __future__ import annotations

import copy
from typing import Any, cast

from tests.support.gateway_controller import LateGatewayController
from tests.support.real_cluster import NAMESPACE, KubeWorld

Obj = dict[str, Any]
ROUTES = ("gateway.networking.k8s.io", "v1", "httproutes")
POOLS = ("inference.networking.k8s.io", "v1", "inferencepools")
OBJECTIVES = ("llm-d.ai", "v1alpha2", "inferenceobjectives")
RESOURCES = (ROUTES, POOLS, OBJECTIVES, ("inference.networking.x-k8s.io", "v1alpha2",
                                         "inferencepools"))


def _contents(world: KubeWorld) -> dict[str, Any]:
    """What a test can see of the seeded objects, without what the server numbers."""
    seen: dict[str, Any] = {}
    for group, version, plural in RESOURCES:
        items = cast(Obj, world.objects.list_namespaced_custom_object(
            group, version, NAMESPACE, plural))["items"]
        for item in items:
            meta = item["metadata"]
            seen[f"{plural}/{meta['name']}"] = {
                "labels": meta.get("labels"), "spec": item.get("spec"),
                "generation": meta.get("generation"),
                "status": _conditions(item) if plural == "httproutes" else item.get("status")}
    for service in world.core.list_namespaced_service(NAMESPACE).items:
        assert service.metadata is not None and service.spec is not None
        seen[f"services/{service.metadata.name}"] = service.spec.ports[0].port \
            if service.spec.ports else None
    for pod in _pods(world):
        seen[f"pods/{pod['metadata']['name']}"] = (pod["metadata"].get("labels"),
                                                   pod["status"].get("pod_ip"))
    return seen


def _pods(world: KubeWorld) -> list[Obj]:
    return list(world.core.list_namespaced_pod(NAMESPACE).to_dict()["items"])


def _conditions(route: Obj) -> list[tuple[Any, ...]]:
    generation = route["metadata"]["generation"]
    return sorted((c["type"], c["status"], c["reason"], c["observedGeneration"] == generation)
                  for p in (route.get("status") or {}).get("parents") or []
                  for c in p.get("conditions") or [])


def _uid(world: KubeWorld, pool: str) -> str:
    found = world.get(*POOLS, NAMESPACE, pool)
    assert found is not None
    return str(found["metadata"]["uid"])


def _route(world: KubeWorld, name: str) -> Obj:
    found = world.get(*ROUTES, NAMESPACE, name)
    assert found is not None
    return found


def test_a_reseed_after_changes_leaves_what_a_fresh_seed_leaves(kube_world: KubeWorld) -> None:
    kube_world.reseed()
    fresh = _contents(kube_world)
    untouched = _uid(kube_world, "llm-pool-version-2")
    assert fresh["httproutes/routes-to-llm"]["status"] == [
        ("Accepted", "True", "Accepted", True), ("ResolvedRefs", "True", "ResolvedRefs", True)]

    # What tests do: a weight changed, a pool deleted (the gateway answers BackendNotFound),
    # an objective added, a label changed, a pod and an endpoint picker's Service deleted.
    route = _route(kube_world, "routes-to-llm")
    route["spec"]["rules"][0]["backendRefs"][0]["weight"] = 10
    kube_world.put(route)
    kube_world.objects.delete_namespaced_custom_object(*POOLS[:2], NAMESPACE, POOLS[2], "llm")
    extra = copy.deepcopy(kube_world.get(*OBJECTIVES, NAMESPACE, "llm-pool-chat"))
    assert extra is not None
    extra["metadata"] = {"name": "left-behind", "namespace": NAMESPACE}
    kube_world.put(extra)
    pool = kube_world.get(*POOLS, NAMESPACE, "llm-pool")
    assert pool is not None
    pool["metadata"].setdefault("labels", {})["touched"] = "yes"
    kube_world.put(pool)
    kube_world.core.delete_namespaced_pod(_pods(kube_world)[0]["metadata"]["name"], NAMESPACE,
                                          grace_period_seconds=0)
    kube_world.core.delete_namespaced_service("llm-new-epp", NAMESPACE)
    assert _contents(kube_world) != fresh

    kube_world.reseed()
    assert _contents(kube_world) == fresh
    # mended, not seeded afresh: what the test left alone is the object it was
    assert _uid(kube_world, "llm-pool-version-2") == untouched


def test_a_reseed_of_an_untouched_namespace_writes_nothing(kube_world: KubeWorld) -> None:
    kube_world.reseed()
    before = {name: _route(kube_world, name)["metadata"]["resourceVersion"]
              for name in ("routes-to-llm", "llm-route")}
    kube_world.reseed()
    after = {name: _route(kube_world, name)["metadata"]["resourceVersion"]
             for name in ("routes-to-llm", "llm-route")}
    assert after == before


def test_the_gateway_is_quiet_only_once_it_has_answered_a_write(kube_world: KubeWorld) -> None:
    """`wait_quiet`, which a reseed ends with: the answer to a route written is in."""
    kube_world.reseed()
    controller: LateGatewayController = kube_world.controller
    controller.delay = 0.3
    try:
        route = _route(kube_world, "llm-route")
        route["spec"]["rules"][0]["backendRefs"][0]["weight"] = 7
        written = kube_world.put(route)
        controller.wait_quiet(
            {"httproutes.gateway.networking.k8s.io":
             int(written["metadata"]["resourceVersion"])})
        assert not LateGatewayController._stale(_route(kube_world, "llm-route"))
    finally:
        controller.delay = 0.05
