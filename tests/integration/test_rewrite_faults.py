"""Adapter rollouts when things go wrong: a human edits the targets (drift pauses), the process
dies after the patch (the next command adopts it), Redis is emptied (the rewrite's annotations
are found, even at 0% where the new adapter is not a target yet)."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rollout.adapters.kube.router import TrafficRouter
from rollout.adapters.store import RedisStore
from rollout.domain.errors import Busy, Conflict, DriftDetected, NeedsOperator
from rollout.domain.machine import ApplyStep, Effect
from rollout.domain.models import AuditAction, PauseKind, Phase, Rollout
from rollout.domain.split import Observed, Pair, acceptable_pairs
from rollout.ports import Lease, Memo, Saving
from rollout.service import RolloutService
from sandbox.redis_server import RedisServer
from tests.integration.conftest import ALICE, BOB, World, make_world
from tests.integration.rewrite_support import (
    REF,
    V1,
    V2,
    rewrite,
    rewrite_patches,
    start,
    targets,
)
from tests.support import weight_writes
from tests.support.kube_api import close_api
from tests.support.real_cluster import RealCluster


@pytest.fixture
def world(cluster: RealCluster, redis_server: RedisServer) -> Iterator[World]:
    w = make_world(cluster, redis_server.url, lock_ttl=1.5)
    try:
        yield w
    finally:
        w.store.client.close()
        close_api(w.api)


def _human_sets(world: World, new_targets: list[dict[str, Any]]) -> None:
    obj = rewrite(world)
    obj["spec"]["rules"][0]["targets"] = new_targets
    world.emulator.put_object(obj)


# -- drift ----------------------------------------------------------------------------------


@pytest.mark.parametrize("edit", [
    [{"modelRewrite": V1, "weight": 90}, {"modelRewrite": V2, "weight": 30}],
    [{"modelRewrite": V1, "weight": 90}],
    [{"modelRewrite": V2, "weight": 10}],
], ids=["weight", "canary-removed", "stable-removed"])
def test_a_human_edit_pauses_and_is_not_overwritten(world: World,
                                                    edit: list[dict[str, Any]]) -> None:
    start(world)
    world.service.approve(REF, actor=BOB)
    _human_sets(world, edit)
    patches = rewrite_patches(world)
    with pytest.raises(Conflict, match=r"paused: weights changed outside the bot"):
        world.service.approve(REF, actor=BOB)
    rollout = world.service.get(REF)
    assert rollout.phase is Phase.PAUSED and rollout.step == 0
    assert rollout.pause is not None and rollout.pause.kind is PauseKind.DRIFT
    assert targets(world) == edit
    assert rewrite_patches(world) == patches
    assert "drift" in world.service.status(REF).cluster_note


def test_drift_at_0_percent_is_noticed_too(world: World) -> None:
    start(world)
    _human_sets(world, [{"modelRewrite": V1, "weight": 100}, {"modelRewrite": V2, "weight": 1}])
    out = world.service.tick(world.service.get(REF).id)
    assert out.rollout is not None and out.rollout.phase is Phase.PAUSED
    assert out.rollout.pause is not None
    assert "the cluster has stable 100 / canary 1" in out.rollout.pause.reason
    assert targets(world)[1] == {"modelRewrite": V2, "weight": 1}


def test_rollback_after_drift_restores_the_baseline(world: World) -> None:
    spec = copy.deepcopy(rewrite(world)["spec"])
    start(world)
    world.service.approve(REF, actor=BOB)
    _human_sets(world, [{"modelRewrite": V2, "weight": 7}])
    world.service.tick(world.service.get(REF).id)
    assert world.service.get(REF).phase is Phase.PAUSED
    out = world.service.rollback(REF, actor=ALICE)
    assert out.rollout is not None and out.rollout.phase is Phase.ROLLED_BACK
    assert rewrite(world)["spec"] == spec


# -- a process killed after its patch landed --------------------------------------------------


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, not even the lock release."""


class DiesAfterPatch:
    def __init__(self, real: TrafficRouter) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def apply(self, rollout: Rollout, effect: Effect, *, fence: int,
              before: tuple[Pair, ...] | None = None, recalled: bool = False) -> Observed:
        self.real.apply(rollout, effect, fence=fence, before=before, recalled=recalled)
        raise Killed


class KeepsLock:
    """A store whose process died: its lock is never released (it expires after 1.5 s)."""

    def __init__(self, real: RedisStore) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def close(self, lease: Lease, *, saving: Saving | None = None,
              memo: Memo | None = None) -> None:
        """Its last round trip (save, memo, release) never runs."""


def _dying(world: World) -> RolloutService:
    traffic: Any = DiesAfterPatch(world.service.traffic)  # type: ignore[arg-type]
    store: Any = KeepsLock(world.store)
    return RolloutService(store=store, traffic=traffic, clock=world.clock,
                          gates=world.service.gates)


def _retry(call: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + 10
    while True:
        try:
            return call()
        except Busy:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_a_step_killed_after_its_patch_is_adopted_not_applied_twice(world: World) -> None:
    start(world)
    with pytest.raises(Killed):
        _dying(world).approve(REF, actor=BOB)
    assert world.service.get(REF).step == -1
    assert targets(world) == [{"modelRewrite": V1, "weight": 90},
                              {"modelRewrite": V2, "weight": 10}]
    out = _retry(lambda: world.service.approve(REF, actor=BOB))
    assert out.ok, out.message
    rollout = world.service.get(REF)
    assert rollout.step == 1  # step 1 adopted, step 2 applied by this approval
    assert targets(world) == [{"modelRewrite": V1, "weight": 75},
                              {"modelRewrite": V2, "weight": 25}]
    actions = [e.action for e in world.service.history(REF)]
    assert actions.count(AuditAction.RECOVERED) == 1
    assert actions.count(AuditAction.STEP_APPLIED) == 1
    writes = weight_writes(world.emulator, resource="inferencemodelrewrites", field="targets")
    assert writes == [[90, 10], [75, 25]]


def test_a_rollback_killed_after_its_patch_is_adopted(world: World) -> None:
    spec = copy.deepcopy(rewrite(world)["spec"])
    start(world)
    world.service.approve(REF, actor=BOB)
    with pytest.raises(Killed):
        _dying(world).rollback(REF, actor=BOB)
    assert rewrite(world)["spec"] == spec
    assert world.service.get(REF).phase is Phase.BAKING
    _retry(lambda: world.service.tick(world.service.get(REF).id))
    rollout = world.service.get(REF)
    assert rollout.phase is Phase.ROLLED_BACK
    assert "rollback found applied" in [e.detail for e in world.service.history(REF)]


# -- Redis emptied ----------------------------------------------------------------------------


@pytest.mark.parametrize("approvals", [0, 2])
def test_after_redis_is_lost_the_rewrite_marker_is_found_and_recovered(
    world: World, cluster: RealCluster, redis_server: RedisServer, approvals: int,
) -> None:
    spec = copy.deepcopy(rewrite(world)["spec"])
    start(world)
    for _ in range(approvals):
        world.service.approve(REF, actor=BOB)
    rollout_id = world.service.get(REF).id
    fresh = make_world(cluster, redis_server.url)  # an empty Redis keyspace
    try:
        with pytest.raises(NeedsOperator, match="recover"):
            start(fresh)
        out = fresh.service.recover(namespace="default", canary=V2, actor=BOB)
        assert out.rollout is not None and out.rollout.id == rollout_id
        assert out.rollout.phase is Phase.PAUSED and out.rollout.step == approvals - 1
        assert out.rollout.pause is not None
        assert out.rollout.pause.kind is PauseKind.MANUAL  # the cluster agrees with the record
        fresh.service.rollback(REF, actor=BOB)
        assert rewrite(world)["spec"] == spec
    finally:
        fresh.store.client.close()
        close_api(fresh.api)


def test_an_edit_between_read_and_write_is_caught_by_the_adapter(world: World) -> None:
    """The last line of defence: the patch itself re-checks the weights it replaces."""
    start(world)
    rollout = world.service.get(REF)
    _human_sets(world, [{"modelRewrite": V1, "weight": 60}, {"modelRewrite": V2, "weight": 40}])
    patches = rewrite_patches(world)
    stepped = rollout.model_copy(update={"step": 0})
    with pytest.raises(DriftDetected, match="has stable 60 / canary 40"):
        world.service.traffic.apply(stepped, ApplyStep(step=0, percent=10), fence=10**16,
                                    before=acceptable_pairs(rollout))
    assert rewrite_patches(world) == patches
