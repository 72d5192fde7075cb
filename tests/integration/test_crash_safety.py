"""Invariant 5: a process killed at any point of a step leaves a state the next tick or
command converges from, never applying the step twice and never skipping it."""

from __future__ import annotations

from typing import Any

import pytest

from rollout.adapters.store import RedisStore
from rollout.domain.machine import Effect
from rollout.domain.models import Phase, Rollout, TargetKind
from rollout.domain.plan import build_plan
from rollout.domain.split import Observed, Pair
from rollout.ports import Lease, Memo, Saving, Traffic
from rollout.service import Ref, RolloutService
from sandbox.redis_server import RedisServer
from tests.integration.conftest import ALICE, BOB, TrailingCache, World, make_world
from tests.support import weight_writes
from tests.support.real_cluster import RealCluster

POOL = "llm-pool-version-2"
REF = Ref(canary=POOL)


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, not even the lock release."""


class DyingTraffic:
    """The service's traffic, killed in the cluster write (before or after it lands); only
    what a step's command reaches is forwarded."""

    def __init__(self, real: Traffic, *, before: bool) -> None:
        self.real, self.before = real, before

    def observe(self, rollout: Rollout) -> Observed:
        return self.real.observe(rollout)

    def recall(self, rollout: Rollout) -> Observed | None:
        return self.real.recall(rollout)

    def apply(self, rollout: Rollout, effect: Effect, *, fence: int,
              before: tuple[Pair, ...] | None = None, recalled: bool = False) -> Observed:
        if self.before:
            raise Killed
        self.real.apply(rollout, effect, fence=fence, before=before, recalled=recalled)
        raise Killed


class DyingStore:
    """Dies right after its command's last round trip (the save, the request's memo and the
    lock's release, one script); once dead, sends nothing more."""

    def __init__(self, real: RedisStore) -> None:
        self.real = real
        self.dead = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def close(self, lease: Lease, *, saving: Saving | None = None,
              memo: Memo | None = None) -> None:
        if self.dead:
            return
        self.real.close(lease, saving=saving, memo=memo)
        self.dead = True
        raise Killed


@pytest.fixture
def world(cluster: RealCluster, redis_server: RedisServer) -> World:
    return make_world(cluster, redis_server.url, lock_ttl=1.5)


def _dying(world: World, point: str) -> RolloutService:
    traffic: Any = world.service.traffic
    store: Any = world.store
    if point in ("before-patch", "after-patch"):
        traffic = DyingTraffic(world.service.traffic, before=point == "before-patch")
        store = _NoRelease(world.store)
    else:
        store = DyingStore(world.store)
    return RolloutService(store=store, traffic=traffic, clock=world.clock,
                          gates=world.service.gates)


class _NoRelease(DyingStore):
    """Killed in the cluster write: the command's last round trip never runs, its lock is
    left to lapse."""

    def __init__(self, real: RedisStore) -> None:
        super().__init__(real)
        self.dead = True


def _retry(call: Any) -> Any:
    """The next command after a crash waits out the dead process's lock (TTL 1.5 s: long
    enough for a command's own reads, the gates' among them), and retries as told when its
    own lock lapses on a loaded machine (TemporaryFailure)."""
    import time

    from rollout.domain.errors import TemporaryFailure

    deadline = time.monotonic() + 10
    while True:
        try:
            return call()
        except TemporaryFailure:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.mark.parametrize("point", ["before-patch", "after-patch", "after-save"])
@pytest.mark.parametrize("via", ["approve", "tick"])
def test_a_step_killed_at_any_point_is_applied_exactly_once(
    world: World, point: str, via: str
) -> None:
    auto = via == "tick"
    world.service.start(namespace="default", canary=POOL, actor=ALICE,
                        plan=build_plan([10, 50, 100], interval_seconds=0, auto=auto))
    if auto:  # an automatic plan applies nothing before its approval
        world.service.approve_plan(REF, actor=BOB)
    rollout_id = world.service.get(REF).id
    dying = _dying(world, point)
    with pytest.raises(Killed):
        if auto:
            dying.tick(rollout_id)
        else:
            dying.approve(REF, actor=BOB)

    def step() -> Any:
        return world.service.tick(rollout_id) if auto else world.service.approve(REF, actor=BOB)

    # the survivors carry on: whatever the crash left, each step lands exactly once
    while world.service.get(REF).phase is not Phase.COMPLETED:
        _retry(step)
    assert weight_writes(world.emulator) == [[100, 0], [90, 10], [50, 50], [0, 100]]
    applied = [e.step for e in world.service.history(REF)
               if e.action in ("step_applied", "recovered")]
    assert applied == [0, 1, 2]
    assert world.weights() == {"llm-pool": 0, POOL: 100}


def test_a_crash_after_the_patch_is_recorded_by_status_reads_too(world: World) -> None:
    world.service.start(namespace="default", canary=POOL, actor=ALICE,
                        plan=build_plan([10, 50, 100], interval_seconds=0))
    with pytest.raises(Killed):
        _dying(world, "after-patch").approve(REF, actor=BOB)
    assert world.service.get(REF).step == -1
    assert world.weights() == {"llm-pool": 90, POOL: 10}
    _retry(lambda: world.service.tick(world.service.get(REF).id))
    assert world.service.get(REF).step == 0
    actions = [e.action for e in world.service.history(REF)]
    assert actions[-2:] == ["recovered", "approval_requested"]
    assert weight_writes(world.emulator) == [[100, 0], [90, 10]]


def test_a_rollback_of_a_completed_rollout_killed_after_its_write_is_recorded(
    world: World,
) -> None:
    """The route is back at baseline and the store still says completed: the rollout was
    marked as having a write in flight, so status names it and the sweep records it."""
    world.service.start(namespace="default", canary=POOL, actor=ALICE,
                        plan=build_plan([10, 100], interval_seconds=0))
    world.service.approve(REF, actor=BOB)
    _retry(lambda: world.service.approve(REF, actor=BOB))
    assert world.service.get(REF).phase is Phase.COMPLETED
    with pytest.raises(Killed):
        _dying(world, "after-patch").rollback(REF, actor=BOB)
    assert world.weights() == {"llm-pool": 100, POOL: 0}
    assert world.service.get(REF).phase is Phase.COMPLETED
    status = world.service.status(REF)
    assert "rolled back before a crash" in status.cluster_note
    finishing = world.service.in_flight()
    assert [r.id for r in finishing] == [world.service.get(REF).id]
    _retry(lambda: world.service.watch(finishing[0]))  # what the scheduler's sweep does
    rollout = world.service.get(REF)
    assert rollout.phase is Phase.ROLLED_BACK
    assert world.service.in_flight() == []
    assert world.service.status(REF).cluster_note == ""
    assert [e.action for e in world.service.history(REF)][-1] == "recovered"
    assert weight_writes(world.emulator)[-1] == [100, 0]


def test_a_step_a_dead_replica_landed_is_adopted_by_a_tick_whose_cache_has_not_seen_it(
    world: World, cluster: RealCluster,
) -> None:
    """The surviving scheduler decides its tick on the namespace cache's copy, which still
    shows the step before the dead replica's write: its PATCH on that copy is refused, the
    tick is decided again on a fresh read, adopts the step, and never writes it twice."""
    world.service.start(namespace="default", canary=POOL, actor=ALICE,
                        plan=build_plan([10, 50, 100], interval_seconds=0, auto=True))
    world.service.approve_plan(REF, actor=BOB)
    rollout_id = world.service.get(REF).id
    assert world.service.tick(rollout_id).ok  # 10%
    copy = cluster.get_object("gateway.networking.k8s.io", "v1", "httproutes", "default",
                              "routes-to-llm")
    assert copy is not None
    with pytest.raises(Killed):
        _dying(world, "after-patch").tick(rollout_id)  # 50% landed, never recorded
    assert world.weights() == {"llm-pool": 50, POOL: 50}
    routes: Any = world.service.traffic.adapters[TargetKind.ROUTE]  # type: ignore[attr-defined]
    routes.routes.cache = TrailingCache(copy)
    _retry(lambda: world.service.tick(rollout_id))
    applied = [e.step for e in world.service.history(REF)
               if e.action in ("step_applied", "recovered")]
    assert applied[:2] == [0, 1]
    assert weight_writes(world.emulator).count([50, 50]) == 1
