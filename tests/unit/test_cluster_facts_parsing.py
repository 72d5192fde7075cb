"""The cluster's objects read as the endpoint picker reads them: the active-ports annotation
as Go's fmt.Sscanf("%d") reads each part, and a poolRef group given as "" naming no pool."""

from __future__ import annotations

from typing import Any

import pytest

from rollout.adapters.cluster_facts import objective_facts, pod_facts
from rollout.domain.facts import POOL_GROUP


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
