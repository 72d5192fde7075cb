"""What the gate tests do to the real API server as a person or another tool would: a pod's
readiness set through the status subresource, a server-side apply of the route's weights."""

from __future__ import annotations

import copy

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
