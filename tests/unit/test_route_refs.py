"""An HTTPRoute step changes the managed pair's weights and nothing else of the rule:
other backendRefs, their order and every field stay byte-for-byte (DESIGN invariant 4)."""

from __future__ import annotations

import copy
from typing import Any

from rollout.adapters.kube.httproute import HTTPRouteSplit
from rollout.domain.machine import ApplyStep, Prepare, Restore, Retire
from rollout.domain.models import Baseline
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


HEADERS = [{"type": "RequestHeaderModifier",
            "requestHeaderModifier": {"set": [{"name": "x-pool-tier", "value": "gold"}]}}]


def _node_update() -> tuple[list[dict[str, Any]], Any]:
    """A rule whose stable ref carries filters, and a rollout that adds the canary."""
    refs = [{"kind": "Service", "name": "mirror", "port": 8080, "weight": 3},
            {**POOL, "name": "llm-pool", "weight": 100, "filters": copy.deepcopy(HEADERS)}]
    r = started(baseline=Baseline(stable=copy.deepcopy(refs[1]), canary=None,
                                  stable_weight=100, canary_weight=0))
    return refs, r


def test_a_canary_ref_the_bot_adds_carries_the_stables_filters() -> None:
    """Without them the canary's requests would lose the headers the stable's get, and the two
    pools would no longer serve alike."""
    refs, r = _node_update()
    for effect in (Prepare(), ApplyStep(step=0, percent=10)):
        after = HTTPRouteSplit._next_refs(refs, r, effect)
        assert after[-1]["name"] == "llm-pool-version-2"
        assert after[-1]["filters"] == HEADERS
        assert after[-1]["filters"] is not after[1]["filters"]  # a copy, not shared
        assert after[:2] == [refs[0], {**refs[1], "weight": after[1]["weight"]}]


def test_a_rollback_and_a_retire_after_copied_filters_leave_the_rule_exact() -> None:
    refs, r = _node_update()
    before = copy.deepcopy(refs)
    stepped = HTTPRouteSplit._next_refs(refs, r, ApplyStep(step=1, percent=25))
    assert HTTPRouteSplit._next_refs(stepped, r, Restore()) == before
    retired = HTTPRouteSplit._next_refs(stepped, r, Retire())
    assert retired == [before[0], {**POOL, "name": "llm-pool-version-2", "weight": 25,
                                   "filters": HEADERS}]


def test_a_stable_ref_without_filters_adds_a_canary_without_them() -> None:
    refs = [{**POOL, "name": "llm-pool", "weight": 100}]
    r = started(baseline=Baseline(stable=copy.deepcopy(refs[0]), canary=None,
                                  stable_weight=100, canary_weight=0))
    after = HTTPRouteSplit._next_refs(refs, r, Prepare())
    assert after[-1] == {**POOL, "name": "llm-pool-version-2", "weight": 0}
