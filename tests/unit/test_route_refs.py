"""An HTTPRoute step changes the managed pair's weights and nothing else of the rule:
other backendRefs, their order and every field stay byte-for-byte (DESIGN invariant 4)."""

from __future__ import annotations

import copy
from typing import Any

from rollout.adapters.kube.httproute import HTTPRouteSplit
from rollout.domain.machine import ApplyStep, Prepare, Restore
from tests.unit.builders import started

POOL = {"group": "inference.networking.k8s.io", "kind": "InferencePool"}
REFS: list[dict[str, Any]] = [
    {"kind": "Service", "name": "mirror", "port": 8080, "weight": 3},
    {**POOL, "name": "llm-pool", "weight": 100},
    {**POOL, "name": "llm-pool-shadow", "weight": 7, "filters": [{"type": "X"}]},
    {**POOL, "name": "llm-pool-version-2", "weight": 0},
]


def _others(refs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in refs if r.get("name") not in ("llm-pool", "llm-pool-version-2")]


def test_a_step_keeps_the_rules_other_backend_refs() -> None:
    r = started()
    before = copy.deepcopy(REFS)
    after = HTTPRouteSplit._next_refs(REFS, r, ApplyStep(step=1, percent=25))
    assert before == REFS  # the read object is not mutated
    assert _others(after) == _others(before)
    assert [x["name"] for x in after] == [x["name"] for x in before]
    assert (after[1]["weight"], after[3]["weight"]) == (75, 25)


def test_prepare_and_restore_keep_the_rules_other_backend_refs() -> None:
    r = started()
    for effect in (Prepare(), Restore()):
        after = HTTPRouteSplit._next_refs(REFS, r, effect)
        assert _others(after) == _others(REFS)
