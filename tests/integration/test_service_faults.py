"""Failures of the cluster and of Redis: nothing half-written, a clear reason, recovery."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from kubernetes import client

from rollout.domain.errors import ClusterUnavailable, Conflict, LockLapsed, StoreUnavailable
from rollout.domain.models import PauseKind, Phase
from rollout.domain.plan import build_plan
from rollout.service import Ref
from sandbox.kube import Fault
from sandbox.redis_server import RedisServer
from tests.integration.conftest import ALICE, BOB, World, make_world
from tests.support.polling import eventually
from tests.support.real_cluster import RealCluster

POOL = "llm-pool-version-2"
REF = Ref(canary=POOL)


def _start(world: World) -> None:
    out = world.service.start(namespace="default", canary=POOL, actor=ALICE,
                              plan=build_plan(interval_seconds=0))
    assert out.ok, out.message


def test_an_injected_409_is_retried_after_a_fresh_read(world: World) -> None:
    _start(world)
    world.emulator.inject(Fault(verb="patch", resource="httproutes", status=409, count=1))
    out = world.service.approve(REF, actor=BOB)
    assert out.ok, out.message
    assert world.weights() == {"llm-pool": 90, POOL: 10}
    patch_statuses = [r.status for r in world.emulator.requests if r.verb == "patch"]
    assert patch_statuses[-2:] == [409, 200]


def test_an_injected_500_leaves_the_weights_and_pauses_with_the_reason(world: World) -> None:
    _start(world)
    world.emulator.inject(Fault(verb="patch", resource="httproutes", status=500, count=1))
    out = world.service.approve(REF, actor=BOB)
    assert not out.ok and "500" in out.message
    assert world.weights() == {"llm-pool": 100, POOL: 0}
    rollout = world.service.get(REF)
    assert rollout.phase is Phase.PAUSED and rollout.step == -1
    assert rollout.pause is not None and rollout.pause.kind is PauseKind.FAILURE
    assert "500" in rollout.pause.reason
    resumed = world.service.resume(REF, actor=BOB)
    assert resumed.rollout is not None and resumed.rollout.phase is Phase.AWAITING_APPROVAL
    assert world.service.approve(REF, actor=BOB).ok
    assert world.weights() == {"llm-pool": 90, POOL: 10}


@pytest.fixture
def slow_world(cluster: RealCluster, redis_server: RedisServer) -> Iterator[World]:
    w = make_world(cluster, redis_server.url, timeout=(1.0, 0.5))
    yield w
    w.store.client.close()
    w.api.close()


def test_a_stalled_write_is_fenced_off_and_never_lands_later(slow_world: World) -> None:
    world = slow_world
    _start(world)
    world.emulator.inject(Fault(verb="patch", resource="httproutes", status=None, count=1,
                                stall_seconds=1.5))
    out = world.service.approve(REF, actor=BOB)
    assert not out.ok and "timed out" in out.message
    rollout = world.service.get(REF)
    assert rollout.phase is Phase.PAUSED and rollout.pause is not None
    assert "timed out" in rollout.pause.reason
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the stalled request finishes late, and must fail
        stalled = [r for r in world.emulator.requests
                   if r.verb == "patch" and r.status in (409, 422)]
        if stalled:
            break
        time.sleep(0.05)
    assert stalled, "the stalled write should have been refused (stale rv or fence)"
    assert world.weights() == {"llm-pool": 100, POOL: 0}


@pytest.mark.parametrize("renewed", [True, False])
def test_a_write_slower_than_the_lock_ttl_is_recorded_while_the_lock_is_renewed(
    cluster: RealCluster, redis_server: RedisServer, renewed: bool,
) -> None:
    """A PATCH held past the lock's lifetime: renewed, the step lands and is recorded; let
    lapse, the store falls behind what landed (the case the keeper exists for)."""
    world = make_world(cluster, redis_server.url, lock_ttl=1.0)
    world.service.options.lock_renew_seconds = 0.2 if renewed else None
    try:
        _start(world)
        world.emulator.inject(Fault(verb="patch", resource="httproutes", status=None, count=1,
                                    stall_seconds=2.0))
        if renewed:
            out = world.service.approve(REF, actor=BOB)
            assert out.ok and out.changed, out.message
            assert world.service.get(REF).step == 0
        else:
            with pytest.raises(LockLapsed, match="lapsed"):
                world.service.approve(REF, actor=BOB)
            assert world.service.get(REF).step == -1
        assert world.weights() == {"llm-pool": 90, POOL: 10}
    finally:
        world.store.client.close()
        world.api.close()


def test_a_stalled_read_times_out_without_changing_anything(slow_world: World) -> None:
    world = slow_world
    _start(world)
    version = world.service.get(REF).version
    # the client retries a timed-out GET once, as the bot configures it: stall both
    world.emulator.inject(Fault(verb="get", resource="httproutes", status=None, count=2,
                                stall_seconds=1.0))
    with pytest.raises(ClusterUnavailable, match="did not answer"):
        world.service.approve(REF, actor=BOB)
    assert world.weights() == {"llm-pool": 100, POOL: 0}
    assert world.service.get(REF).version == version


@pytest.fixture
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(data_dir=tmp_path_factory.mktemp("aof"), appendonly=True)
    server.start()
    yield server
    server.close()


def test_redis_stopped_mid_command_changes_nothing_and_the_rollout_continues(
    cluster: RealCluster, own_redis: RedisServer
) -> None:
    world = make_world(cluster, own_redis.url, lock_ttl=1.0)
    _start(world)
    patches = world.route_patches()
    # Hold the approval inside its cluster read while Redis goes away under it.
    cluster.inject(Fault(verb="get", resource="httproutes", status=None, count=1,
                               stall_seconds=0.6))
    errors: list[BaseException] = []

    def approve() -> None:
        try:
            world.service.approve(REF, actor=BOB)
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    worker = threading.Thread(target=approve)
    worker.start()
    time.sleep(0.2)
    own_redis.stop()
    worker.join(timeout=30)
    assert len(errors) == 1 and isinstance(errors[0], StoreUnavailable)
    assert "Redis is unavailable" in str(errors[0])
    assert world.route_patches() == patches
    assert world.weights() == {"llm-pool": 100, POOL: 0}

    own_redis.start()
    deadline = time.monotonic() + 10
    while True:  # the held lock expires after its TTL
        try:
            out = world.service.approve(REF, actor=BOB)
            break
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert out.ok, out.message
    assert world.weights() == {"llm-pool": 90, POOL: 10}
    world.store.client.close()
    world.api.close()


def test_a_gateway_that_cannot_resolve_the_canary_stops_the_next_step(world: World) -> None:
    _start(world)
    assert world.service.approve(REF, actor=BOB).ok
    objects = client.CustomObjectsApi(world.emulator.world.admin)  # a person deletes the pool
    objects.delete_namespaced_custom_object("inference.networking.k8s.io", "v1", "default",
                                            "inferencepools", POOL)

    def unresolved() -> bool:
        conditions = world.route()["status"]["parents"][0]["conditions"]
        return any(c["type"] == "ResolvedRefs" and c["status"] == "False" for c in conditions)

    eventually(unresolved, message="the gateway reports the missing pool")
    patches = world.route_patches()
    with pytest.raises(Conflict, match="BackendNotFound"):
        world.service.approve(REF, actor=BOB)
    assert world.route_patches() == patches
    assert world.weights() == {"llm-pool": 90, POOL: 10}
    rollout = world.service.get(REF)
    assert rollout.phase is Phase.PAUSED and rollout.step == 0
    assert rollout.pause is not None and rollout.pause.kind is PauseKind.FAILURE
    assert "ResolvedRefs=False" in rollout.pause.reason
    world.service.rollback(REF, actor=BOB)
    assert world.weights() == {"llm-pool": 100, POOL: 0}
