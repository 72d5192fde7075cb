"""What the gate tests do to the real API server as a person or another tool would: a pod's
readiness set through the status subresource, a server-side apply of the route's weights."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from rollout.domain.facts import LLMD_GROUP
from tests.support.polling import eventually
from tests.support.real_cluster import RealCluster

NS = "default"
ROUTE = "routes-to-llm"


def set_ready(cluster: RealCluster, pod: str, ready: bool) -> None:
    """The kubelet's part: the pod's Ready condition, as the admin, through /status."""
    status = "True" if ready else "False"
    cluster.world.core.patch_namespaced_pod_status(pod, NS, {"status": {"conditions": [
        {"type": "Ready", "status": status}, {"type": "ContainersReady", "status": status}]}})


def apply_as(cluster: RealCluster, manager: str, weights: tuple[int, int]) -> None:
    """A server-side apply of the route's weights, as a GitOps tool (or the bot) would."""
    route = cluster.get_object("gateway.networking.k8s.io", "v1", "httproutes", NS, ROUTE)
    assert route is not None
    body = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": ROUTE, "namespace": NS},
            "spec": copy.deepcopy(route["spec"])}
    for ref, weight in zip(body["spec"]["rules"][0]["backendRefs"], weights, strict=True):
        ref["weight"] = weight
    cluster.world.objects.patch_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", NS, "httproutes", ROUTE, body,
        field_manager=manager, force=True, _content_type="application/apply-patch+yaml")


def put_younger_rewrite(cluster: RealCluster, name: str = "small-segment-lora-b") -> Any:
    """A copy of the seed's rewrite (the same model on the same pool), created a second later:
    the endpoint picker applies the older one and silently ignores this one."""
    seed = cluster.get_object(LLMD_GROUP, "v1alpha2", "inferencemodelrewrites", NS,
                              "small-segment-lora")
    assert seed is not None
    created = datetime.fromisoformat(seed["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
    # Creation times have a one-second grain: be sure the second one is younger.
    eventually(lambda: datetime.now(UTC).replace(microsecond=0) > created, timeout=3.0)
    younger = copy.deepcopy(seed)
    younger["metadata"] = {"name": name, "namespace": NS}
    cluster.put_object(younger)
    return cluster.get_object(LLMD_GROUP, "v1alpha2", "inferencemodelrewrites", NS, name)
