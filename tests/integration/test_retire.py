"""The keep period and `retire` against the real API server: a completed rollout keeps the
old pool in the route at weight 0 (a rollback still restores it); `retire` removes that one
backendRef and nothing else, through the fenced write, and is refused to who completed the
rollout; the rewrite's old adapter target goes the same way."""

from __future__ import annotations

import copy

import pytest

from rollout.domain.errors import Conflict, Unauthorized
from rollout.domain.facts import POOL_GROUP
from rollout.domain.plan import build_plan
from rollout.service import Ref
from tests.integration.conftest import ALICE, BOB, CAROL, World
from tests.integration.rewrite_support import REF as REWRITE_REF
from tests.integration.rewrite_support import V1, V2, rewrite, targets
from tests.integration.rewrite_support import start as rewrite_start
from tests.support.gateway_controller import wait_until_settled

STABLE, CANARY = "llm-pool", "llm-pool-version-2"
REF = Ref(canary=CANARY)


def _completed(world: World) -> None:
    world.service.start(namespace="default", canary=CANARY, actor=ALICE,
                        plan=build_plan([50, 100], interval_seconds=0), keep_seconds=3600)
    for _ in range(2):
        assert world.service.approve(REF, actor=BOB).ok
    assert world.weights() == {STABLE: 0, CANARY: 100}


def test_retire_after_completion_removes_the_old_backend_ref_and_nothing_else(
        world: World) -> None:
    _completed(world)
    before = copy.deepcopy(world.route())
    world.clock.advance(2 * 3600)
    out = world.service.retire(REF, actor=CAROL)
    assert out.ok, out.message
    assert "the team may now delete InferencePool llm-pool" in out.message
    after = world.route()
    assert world.weights() == {CANARY: 100}
    wanted = copy.deepcopy(before["spec"])
    wanted["rules"][0]["backendRefs"] = [
        ref for ref in wanted["rules"][0]["backendRefs"] if ref["name"] != STABLE]
    assert after["spec"] == wanted  # that one backendRef, nothing else
    assert after["metadata"].get("labels") == before["metadata"].get("labels")
    assert world.emulator.get_object(POOL_GROUP, "v1", "inferencepools", "default",
                                     STABLE) is not None  # the bot deletes nothing
    status = world.service.status(REF)
    assert status.cluster_note == "" and status.observed is not None
    patches = world.route_patches()
    with pytest.raises(Conflict, match="was retired"):
        world.service.rollback(REF, actor=CAROL)
    assert world.route_patches() == patches and world.weights() == {CANARY: 100}


def test_retire_is_refused_to_who_completed_the_rollout_and_changes_nothing(
        world: World) -> None:
    _completed(world)
    # the gateway's status answer to the last step lands a moment after it: not a write of ours
    wait_until_settled(world.emulator.world.objects, "default", "routes-to-llm")
    version = world.route()["metadata"]["resourceVersion"]
    with pytest.raises(Unauthorized, match="cli:bob completed this rollout"):
        world.service.retire(REF, actor=BOB)
    with pytest.raises(Unauthorized, match="cli:alice started this rollout"):
        world.service.retire(REF, actor=ALICE)
    assert world.route()["metadata"]["resourceVersion"] == version
    assert world.weights() == {STABLE: 0, CANARY: 100}


def test_a_rollback_in_the_keep_period_restores_the_old_pool(world: World) -> None:
    _completed(world)
    world.clock.advance(600)
    assert world.service.rollback(REF, actor=CAROL).ok
    assert world.weights() == {STABLE: 100, CANARY: 0}


def test_retire_of_an_adapter_rollout_changes_only_the_marker_and_ends_rollback(
        world: World) -> None:
    assert rewrite_start(world, steps=(100,)).ok
    assert world.service.approve(REWRITE_REF, actor=BOB).ok
    spec = copy.deepcopy(rewrite(world)["spec"])
    assert targets(world) == [{"modelRewrite": V2, "weight": 100}]
    out = world.service.retire(REWRITE_REF, actor=CAROL)
    assert out.ok, out.message
    assert f"the team may now unload adapter {V1}" in out.message
    assert rewrite(world)["spec"] == spec
    with pytest.raises(Conflict, match="was retired"):
        world.service.rollback(REWRITE_REF, actor=CAROL)
    assert rewrite(world)["spec"] == spec
