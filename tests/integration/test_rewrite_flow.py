"""Adapter rollouts against a real Redis and the emulated cluster: InferenceModelRewrite target
weights move step by step, and a rollback puts the rule back exactly as it was."""

from __future__ import annotations

import copy

import pytest

from rollout.adapters.kube.markers import PREFIX
from rollout.domain.errors import NotReady
from rollout.domain.models import Phase, TargetKind
from rollout.domain.plan import build_plan
from rollout.service import Ref
from tests.integration.conftest import ALICE, BOB, World
from tests.integration.rewrite_support import (
    LEGACY,
    LLMD,
    REF,
    REWRITE,
    V1,
    V2,
    put_rewrite,
    rewrite,
    rewrite_patches,
    rule,
    start,
    targets,
)
from tests.support.real_cluster import KubeWorld


def _approve(world: World, times: int, ref: Ref = REF) -> list[list[dict[str, object]]]:
    seen = []
    for _ in range(times):
        out = world.service.approve(ref, actor=BOB)
        assert out.ok, out.message
        seen.append(copy.deepcopy(targets(world)))
    return seen


def test_approvals_move_the_rule_from_v1_to_v2(world: World) -> None:
    spec_before = copy.deepcopy(rewrite(world)["spec"])
    out = start(world)
    assert out.ok, out.message
    assert out.rollout is not None
    assert out.rollout.target.kind is TargetKind.REWRITE
    assert out.rollout.target.api_group == LLMD
    assert (out.rollout.stable, out.rollout.canary) == (V1, V2)
    # 0%: the canary is absent (a rewrite weight cannot be 0); only the marker was written
    assert rewrite(world)["spec"] == spec_before
    assert rewrite_patches(world) == 1
    seen = _approve(world, 4)
    assert seen == [
        [{"modelRewrite": V1, "weight": 90}, {"modelRewrite": V2, "weight": 10}],
        [{"modelRewrite": V1, "weight": 75}, {"modelRewrite": V2, "weight": 25}],
        [{"modelRewrite": V1, "weight": 50}, {"modelRewrite": V2, "weight": 50}],
        [{"modelRewrite": V2, "weight": 100}],
    ]
    rollout = world.service.get(REF)
    assert rollout.phase is Phase.COMPLETED
    assert world.store.active_on(rollout.target.key) is None
    assert world.service.status(REF).cluster_note == ""
    # the rest of the object is untouched
    after = rewrite(world)["spec"]
    assert after["poolRef"] == spec_before["poolRef"]
    assert after["rules"][0]["matches"] == spec_before["rules"][0]["matches"]


@pytest.mark.parametrize("approvals", [3, 4])
def test_rollback_at_50_or_100_restores_the_rule_exactly(world: World, approvals: int) -> None:
    spec_before = copy.deepcopy(rewrite(world)["spec"])
    start(world)
    _approve(world, approvals)
    out = world.service.rollback(REF, actor=BOB, reason="adapter quality")
    assert out.ok, out.message
    assert out.rollout is not None and out.rollout.phase is Phase.ROLLED_BACK
    obj = rewrite(world)
    assert obj["spec"] == spec_before
    assert all(k.startswith(PREFIX) for k in obj["metadata"]["annotations"])
    assert '"state":"rolled-back"' in obj["metadata"]["annotations"][PREFIX + "rule-0"]
    assert world.service.status(REF).observed is not None


def test_status_and_history(world: World) -> None:
    start(world)
    _approve(world, 1)
    status = world.service.status(REF)
    assert status.observed is not None
    assert (status.observed.pair.stable, status.observed.pair.canary) == (90, 10)
    assert status.cluster_note == ""
    assert [e.action for e in world.service.history(REF)] == ["started", "approved",
                                                              "step_applied"]


def test_a_legacy_rewrite_the_endpoint_picker_ignores_is_refused(world: World) -> None:
    """With llm-d.ai served, the endpoint picker reads only that group: a legacy rewrite's
    weights would move no traffic."""
    put_rewrite(world, "legacy-lora", [rule("legacy", {"modelRewrite": "legacy-v1",
                                                       "weight": 100})], group=LEGACY)
    before = rewrite(world, "legacy-lora", LEGACY)
    with pytest.raises(NotReady) as refused:
        start(world, "legacy-lora", canary="legacy-v2", steps=(25, 100))
    assert "is in group inference.networking.x-k8s.io, but the cluster serves llm-d.ai" \
        in str(refused.value)
    assert "Create the rewrite as llm-d.ai/v1alpha2" in str(refused.value)
    after = rewrite(world, "legacy-lora", LEGACY)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert world.service.list_rollouts() == []


def test_a_rewrite_in_the_legacy_group_works_the_same(world: World,
                                                      kube_world: KubeWorld) -> None:
    with kube_world.legacy_only():
        _legacy_rollout(world)


def _legacy_rollout(world: World) -> None:
    put_rewrite(world, "legacy-lora", [rule("legacy", {"modelRewrite": "legacy-v1",
                                                       "weight": 100})], group=LEGACY)
    spec_before = copy.deepcopy(rewrite(world, "legacy-lora", LEGACY)["spec"])
    out = start(world, "legacy-lora", canary="legacy-v2", steps=(25, 100))
    assert out.ok, out.message
    assert out.rollout is not None and out.rollout.target.api_group == LEGACY
    ref = Ref(canary="legacy-v2")
    world.service.approve(ref, actor=BOB)
    assert targets(world, "legacy-lora", LEGACY) == [
        {"modelRewrite": "legacy-v1", "weight": 75}, {"modelRewrite": "legacy-v2", "weight": 25}]
    world.service.approve(ref, actor=BOB)
    assert targets(world, "legacy-lora", LEGACY) == [{"modelRewrite": "legacy-v2",
                                                      "weight": 100}]
    world.service.rollback(ref, actor=BOB)
    assert rewrite(world, "legacy-lora", LEGACY)["spec"] == spec_before


def test_only_the_managed_rule_and_targets_change(world: World) -> None:
    rules = [
        rule("base", {"modelRewrite": "base-a", "weight": 3}),
        rule("lora", {"modelRewrite": "keep", "weight": 200},
             {"modelRewrite": "lora-v1", "weight": 200}),
    ]
    put_rewrite(world, "multi", rules)
    spec_before = copy.deepcopy(rewrite(world, "multi")["spec"])
    out = start(world, "multi", canary="lora-v2", steps=(50, 100), stable="lora-v1")
    assert out.ok, out.message
    assert out.rollout is not None and out.rollout.target.rule == 1
    ref = Ref(canary="lora-v2")
    world.service.approve(ref, actor=BOB)
    assert targets(world, "multi", rule=1) == [
        {"modelRewrite": "keep", "weight": 200}, {"modelRewrite": "lora-v1", "weight": 100},
        {"modelRewrite": "lora-v2", "weight": 100}]
    world.service.approve(ref, actor=BOB)
    assert targets(world, "multi", rule=1) == [
        {"modelRewrite": "keep", "weight": 200}, {"modelRewrite": "lora-v2", "weight": 200}]
    assert targets(world, "multi", rule=0) == spec_before["rules"][0]["targets"]
    world.service.rollback(ref, actor=ALICE)
    assert rewrite(world, "multi")["spec"] == spec_before


def test_a_rule_without_weights_gets_them_and_loses_them_on_rollback(world: World) -> None:
    put_rewrite(world, "equal", [rule("m", {"modelRewrite": "a-v1"}, {"modelRewrite": "b"})])
    spec_before = copy.deepcopy(rewrite(world, "equal")["spec"])
    out = start(world, "equal", canary="a-v2", steps=(10, 100), stable="a-v1")
    assert out.ok, out.message
    ref = Ref(canary="a-v2")
    world.service.approve(ref, actor=BOB)
    # the CRD wants weights on all targets or none: b keeps its half of the traffic
    assert targets(world, "equal") == [
        {"modelRewrite": "a-v1", "weight": 90}, {"modelRewrite": "a-v2", "weight": 10},
        {"modelRewrite": "b", "weight": 100}]
    world.service.approve(ref, actor=BOB)
    assert targets(world, "equal") == [{"modelRewrite": "a-v2", "weight": 100},
                                       {"modelRewrite": "b", "weight": 100}]
    world.service.rollback(ref, actor=BOB)
    assert rewrite(world, "equal")["spec"] == spec_before


def test_promote_removes_the_old_adapter(world: World) -> None:
    start(world)
    out = world.service.promote(REF, actor=BOB)
    assert out.rollout is not None and out.rollout.phase is Phase.COMPLETED
    assert targets(world) == [{"modelRewrite": V2, "weight": 100}]


def test_pool_rollouts_still_work_next_to_an_adapter_rollout(world: World) -> None:
    start(world)
    out = world.service.start(namespace="default", canary="llm-pool-version-2", actor=ALICE,
                              plan=build_plan())
    assert out.ok, out.message
    world.service.approve(Ref(canary="llm-pool-version-2"), actor=BOB)
    world.service.approve(REF, actor=BOB)
    assert world.weights() == {"llm-pool": 90, "llm-pool-version-2": 10}
    assert targets(world)[1] == {"modelRewrite": V2, "weight": 10}
    assert REWRITE in world.service.get(REF).target.key
