"""The cluster's objects read as the endpoint picker reads them: the active-ports annotation
as Go's fmt.Sscanf("%d") reads each part, and a poolRef group given as "" naming no pool."""

from __future__ import annotations

from typing import Any

import pytest

from rollout.adapters.cluster_facts import objective_facts, pod_facts
from rollout.domain.facts import POOL_GROUP, ClusterFacts, PoolFacts
from rollout.domain.preflight import ready_endpoints


def _pod(active: str) -> dict[str, Any]:
    return {"metadata": {"name": "p", "labels": {}, "annotations": {
                "inference.networking.k8s.io/active-ports": active}},
            "spec": {"containers": []},
            "status": {"podIP": "10.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]}}


@pytest.mark.parametrize(("active", "ports"), [
    ("8000,8001", {8000, 8001}),
    (" 8000 , 8001 ", {8000, 8001}),
    ("+8000", {8000}),
    ("8000/TCP", {8000}),
    ("8000,\u00b2", {8000}),  # a superscript two: not a digit to the picker
    ("\uff18\uff10\uff10\uff10", set()),  # full-width digits: skipped
    ("0,-1,http", set()),
    ("9" * 5000, set()),
])
def test_active_ports_are_read_as_the_endpoint_picker_reads_them(active: str,
                                                                   ports: set[int]) -> None:
    assert pod_facts(_pod(active)).active_ports == frozenset(ports)


def _objective(ref: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "chat"}, "spec": {"poolRef": ref, "priority": 1}}


def test_a_pool_ref_group_given_empty_names_no_pool_group() -> None:
    assert objective_facts(_objective({"name": "llm-pool"})).pool_group == POOL_GROUP
    assert objective_facts(_objective({"name": "llm-pool", "group": ""})).pool_group == ""


def test_a_pod_serving_the_target_port_from_a_sidecar_counts_as_the_picker_counts_it() -> None:
    """llm-d's modelservice chart: the routing proxy listens on the pool's target port (8000)
    as a native sidecar in `initContainers`, vLLM on 8200 in `containers`. The picker reads
    no container ports, so the pod is one endpoint; counting none refused every start."""
    pod = {"metadata": {"name": "llm-d-0", "labels": {"app": "llm-d"}},
           "spec": {"initContainers": [{"name": "routing-proxy", "restartPolicy": "Always",
                                        "ports": [{"containerPort": 8000}]}],
                    "containers": [{"name": "vllm", "ports": [{"containerPort": 8200}]}]},
           "status": {"podIP": "10.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]}}
    pool = PoolFacts(name="llm-d", group=POOL_GROUP, selector={"app": "llm-d"},
                     target_ports=(8000,))
    assert ready_endpoints(ClusterFacts(namespace="default", pods=(pod_facts(pod),)), pool) == 1
