"""Failures of the cluster and of Redis: nothing half-written, a clear reason, recovery."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from kubernetes import client

from rollout.adapters.kube.fenced import ABANDONED
from rollout.adapters.kube.markers import FENCE, rule_key
from rollout.domain.errors import (
    ClusterUnavailable,
    Conflict,
    StoreUnavailable,
    Throttled,
    Unrecorded,
)
from rollout.domain.models import PauseKind, Phase, Rollout
from rollout.domain.plan import build_plan
from rollout.lock_keeper import LockKeeper
from rollout.service import Ref
from sandbox.kube import Fault
from sandbox.redis_server import RedisServer
from tests.integration.conftest import ALICE, BOB, World, make_world
from tests.support.kube_api import close_api
from tests.support.kube_proxy import THROTTLE_RETRY_AFTER
from tests.support.polling import eventually
from tests.support.real_cluster import RealCluster

POOL = "llm-pool-version-2"
#: slow_world's read timeout, and a stall that outlasts two of them (a write and the bump
#: that would fence it off, sent once the write timed out, both stalled)
SLOW_READ_TIMEOUT = 2.0
STALL = 3 * SLOW_READ_TIMEOUT
REF = Ref(canary=POOL)


def _start(world: World) -> None:
    out = world.service.start(namespace="default", canary=POOL, actor=ALICE,
                              plan=build_plan(interval_seconds=0))
    assert out.ok, out.message


def _approving(world: World) -> tuple[threading.Thread, list[BaseException]]:
    """An approval running in a thread of its own, and the errors it raised (for the test's
    assertions once it is joined)."""
    errors: list[BaseException] = []

    def approve() -> None:
        try:
            world.service.approve(REF, actor=BOB)
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    worker = threading.Thread(target=approve)
    worker.start()
    return worker, errors


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


def test_a_write_answered_503_before_the_server_is_fenced_off_and_said_not_to_land(
    world: World,
) -> None:
    """A 5xx that never reached the server looks the same to the bot: the read-back shows
    nothing landed, the object is bumped so that the write can never land later, and the
    answer says it did not land, with the status it got."""
    _start(world)
    version = world.route()["metadata"]["resourceVersion"]
    world.emulator.inject(Fault(verb="patch", resource="httproutes", status=503, count=1))
    out = world.service.approve(REF, actor=BOB)
    assert not out.ok and "503" in out.message
    assert "fenced off and did not land" in out.message
    assert world.weights() == {"llm-pool": 100, POOL: 0}
    route = world.route()["metadata"]
    assert route["resourceVersion"] != version  # bumped: the write's guard can never pass
    assert ABANDONED in (route.get("annotations") or {})
    rollout = world.service.get(REF)
    assert rollout.phase is Phase.PAUSED and rollout.step == -1


def test_a_throttled_write_changes_nothing_and_the_same_approval_goes_through_after(
    world: World,
) -> None:
    """A 429 is the server refusing before it serves: no read-back, no fence-off write, no
    pause; the answer says the API server is throttling the bot, and when to retry."""
    _start(world)
    world.emulator.inject(Fault(verb="patch", resource="httproutes", status=429, count=1))
    before = len(world.emulator.requests)
    with pytest.raises(Throttled, match="throttling") as refused:
        world.service.approve(REF, actor=BOB)
    assert refused.value.retry_after == float(THROTTLE_RETRY_AFTER)  # the server's, not ours
    sent = world.emulator.requests[before:]
    assert [(r.verb, r.status) for r in sent if r.verb == "patch"] == [("patch", 429)]
    assert world.weights() == {"llm-pool": 100, POOL: 0}
    rollout = world.service.get(REF)
    assert rollout.step == -1 and rollout.phase is Phase.AWAITING_APPROVAL
    assert world.service.approve(REF, actor=BOB).ok
    assert world.weights() == {"llm-pool": 90, POOL: 10}


@pytest.fixture
def slow_world(cluster: RealCluster, redis_server: RedisServer) -> Iterator[World]:
    """A read timeout short enough for the tests to wait out (STALL outlasts it), long
    enough that a request nothing holds is answered within it on a loaded machine (0.5 s
    once timed the read-back out as well, and the answer named another fate)."""
    w = make_world(cluster, redis_server.url, timeout=(5.0, SLOW_READ_TIMEOUT))
    yield w
    w.store.client.close()
    close_api(w.api)


def test_a_stalled_write_is_fenced_off_and_never_lands_later(slow_world: World) -> None:
    world = slow_world
    _start(world)
    world.emulator.inject(Fault(verb="patch", resource="httproutes", status=None, count=1,
                                stall_seconds=STALL))
    out = world.service.approve(REF, actor=BOB)
    assert not out.ok and "fenced off and did not land" in out.message
    rollout = world.service.get(REF)
    assert rollout.phase is Phase.PAUSED and rollout.pause is not None
    assert "did not answer" in rollout.pause.reason
    # the stalled request finishes late, and must fail
    eventually(lambda: [r for r in world.emulator.requests
                        if r.verb == "patch" and r.status in (409, 422)], timeout=30,
               message="the stalled write refused (stale rv or fence)")
    assert world.weights() == {"llm-pool": 100, POOL: 0}


@pytest.mark.parametrize("renewed", [True, False])
def test_a_write_slower_than_the_lock_ttl_is_recorded_while_the_lock_is_renewed(
    cluster: RealCluster, redis_server: RedisServer, renewed: bool,
) -> None:
    """A PATCH held past the lock's lifetime: renewed, the step lands and is recorded; let
    lapse, the store falls behind what landed (the case the keeper exists for)."""
    # a TTL of 3 s renewed every 0.2 s: a renewal late by a loaded machine's second is not
    # a lapse (with 1 s it was); the PATCH is held past the TTL either way
    world = make_world(cluster, redis_server.url, lock_ttl=3.0)
    world.service.options.lock_keeper = LockKeeper(0.2) if renewed else None
    try:
        _start(world)
        world.emulator.inject(Fault(verb="patch", resource="httproutes", status=None, count=1,
                                    stall_seconds=4.0))
        if renewed:
            out = world.service.approve(REF, actor=BOB)
            assert out.ok and out.changed, out.message
            assert world.service.get(REF).step == 0
        else:
            with pytest.raises(Unrecorded, match="lock lapsed before the save"):
                world.service.approve(REF, actor=BOB)
            assert world.service.get(REF).step == -1
        assert world.weights() == {"llm-pool": 90, POOL: 10}
    finally:
        world.store.client.close()
        close_api(world.api)


def _landed_patches(world: World) -> list[int]:
    return [r.status for r in world.emulator.requests
            if r.verb == "patch" and r.resource == "httproutes" and r.status < 300]


@pytest.mark.parametrize("answer", [None, 500, 504], ids=["dropped", "500", "504"])
def test_a_write_whose_answer_was_lost_is_answered_by_what_landed(
    world: World, answer: int | None,
) -> None:
    """The server applies the PATCH and the caller hears no answer (the connection drops) or
    a 5xx (the server's request or storage timeout, a load balancer in front of it): a fresh
    read shows the write landed, so the step is recorded and the answer says it was applied,
    not that it failed."""
    _start(world)
    landed = len(_landed_patches(world))
    world.emulator.inject(Fault(verb="patch", resource="httproutes", count=1,
                                drop_after=answer is None, answer_after=answer))
    out = world.service.approve(REF, actor=BOB)
    assert out.ok and out.changed, out.message
    assert "Not applied" not in out.message and "step 1 (10%)" in out.message
    assert world.weights() == {"llm-pool": 90, POOL: 10}
    assert len(_landed_patches(world)) == landed + 1  # landed once, never fenced off after
    rollout = world.service.get(REF)
    assert rollout.step == 0 and rollout.phase is not Phase.PAUSED
    assert world.service.status(REF).cluster_note == ""


def test_a_write_and_its_fence_off_both_stalled_say_the_fate_is_unknown_then_converge(
    slow_world: World,
) -> None:
    """Both the PATCH and the bump that would fence it off stall past the timeout: the answer
    says it is not known whether the step landed (never "did not land"); the stalled PATCH
    then lands, and the scheduler's sweep records it."""
    world = slow_world
    _start(world)
    world.emulator.inject(Fault(verb="patch", resource="httproutes", status=None, count=2,
                                stall_seconds=STALL))
    out = world.service.approve(REF, actor=BOB)
    assert not out.ok and out.message.startswith("Not known whether this landed")
    assert "did not land" not in out.message
    assert world.service.get(REF).phase is Phase.PAUSED
    eventually(lambda: world.weights() == {"llm-pool": 90, POOL: 10}, timeout=30,
               message="the stalled step to land")
    swept = world.service.watch(world.service.get(REF))
    assert swept is not None
    rollout = world.service.get(REF)
    assert rollout.step == 0 and rollout.phase is Phase.BAKING
    assert "found applied in the cluster" in swept.message


def test_a_start_whose_first_write_and_fence_off_stalled_is_paused_not_failed_then_converges(
    slow_world: World,
) -> None:
    """A start's first write stalls past the timeout and so does the bump that would fence it
    off: the start must not say it failed (the cluster may name it at any moment), nor free
    the target; it pauses, and once the write lands the sweep finds it on the route."""
    world = slow_world
    world.emulator.inject(Fault(verb="patch", resource="httproutes", status=None, count=2,
                                stall_seconds=STALL))
    out = world.service.start(namespace="default", canary=POOL, actor=ALICE,
                              plan=build_plan(interval_seconds=0))
    assert not out.ok and out.message.startswith("Not known whether this landed")
    assert "failed" not in out.message
    rollout = world.service.get(REF)
    assert rollout.phase is Phase.PAUSED and rollout.active
    eventually(lambda: rule_key(0) in (world.route()["metadata"].get("annotations") or {}),
               timeout=30, message="the stalled first write to land")
    world.service.watch(world.service.get(REF))
    assert world.service.status(REF).cluster_note == ""
    world.service.resume(REF, actor=BOB)
    assert world.service.approve(REF, actor=BOB).ok
    assert world.weights() == {"llm-pool": 90, POOL: 10}


def test_redis_stopped_after_a_write_landed_says_it_landed_and_is_recorded_later(
    cluster: RealCluster, own_redis: RedisServer,
) -> None:
    world = make_world(cluster, own_redis.url, lock_ttl=1.0)
    _start(world)
    # Hold the PATCH on its way while Redis goes away: it lands, the save cannot.
    released = cluster.hold_stalls()  # until Redis is stopped
    cluster.inject(Fault(verb="patch", resource="httproutes", status=None, count=1,
                         stall_seconds=60))
    worker, errors = _approving(world)
    try:
        eventually(lambda: cluster.faults_armed() == 0, timeout=10,
                   message="the approval's PATCH to be held")
        own_redis.stop()  # the PATCH is on its way, after the lock was confirmed
    finally:
        released.set()
    worker.join(timeout=30)
    assert len(errors) == 1 and isinstance(errors[0], Unrecorded)
    message = str(errors[0])
    # Redis went away under the save: whether it ran before it went is not known here
    assert message.startswith("the change landed in the cluster, and Redis did not answer "
                              "whether it was recorded")
    assert "nothing was changed" not in message
    assert world.weights() == {"llm-pool": 90, POOL: 10}
    own_redis.start()
    rollout = eventually(lambda: _get_when_back(world), timeout=10, message="Redis back")
    swept = world.service.watch(rollout)
    assert swept is not None and world.service.get(REF).step == 0
    world.store.client.close()
    close_api(world.api)


def _get_when_back(world: World) -> Rollout | None:
    try:
        return world.service.get(REF)
    except StoreUnavailable:
        return None


def test_a_stalled_read_times_out_without_changing_anything(slow_world: World) -> None:
    world = slow_world
    _start(world)
    version = world.service.get(REF).version
    # the client retries a timed-out GET once, as the bot configures it: stall both
    world.emulator.inject(Fault(verb="get", resource="httproutes", status=None, count=2,
                                stall_seconds=STALL))
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
    released = cluster.hold_stalls()  # until Redis is stopped
    cluster.inject(Fault(verb="get", resource="httproutes", status=None, count=1,
                               stall_seconds=60))
    worker, errors = _approving(world)
    try:
        eventually(lambda: cluster.faults_armed() == 0, timeout=10,
                   message="the approval's read to be held")
        assert world.store.client.keys(world.store.key("lock", "*")), "the approval's lock"
        own_redis.stop()  # the approval is inside its read, its lock taken
    finally:
        released.set()
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
    close_api(world.api)


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


def test_a_write_lost_while_a_rollback_took_over_leaves_the_rollbacks_fence(world: World) -> None:
    """An approval's PATCH is held and answered 503 without reaching the server; meanwhile a
    rollback takes the target (a newer token) and writes. The approval's read-back finds the
    object moved: its own write, made on the older version, can never land, so it writes
    nothing; bumping it would have set the older token over the rollback's."""
    _start(world)
    # held until the rollback wrote (a stall of a fixed 1.5 s could end first on a loaded
    # machine, and a sleep guessed when the PATCH was held)
    released = world.emulator.hold_stalls()
    world.emulator.inject(Fault(verb="patch", resource="httproutes", status=503, count=1,
                                stall_seconds=60))
    worker, _errors = _approving(world)
    try:
        eventually(lambda: world.emulator.faults_armed() == 0,
                   message="the approval's PATCH held by the fault")
        assert world.service.rollback(REF, actor=BOB).ok
        rolled_back = world.route()["metadata"]["annotations"][FENCE]
    finally:
        released.set()
    worker.join()
    annotations = world.route()["metadata"]["annotations"]
    assert annotations[FENCE] == rolled_back  # not lowered to the approval's older token
    assert ABANDONED not in annotations
    assert world.weights() == {"llm-pool": 100, POOL: 0}
    assert world.service.get(REF).phase is Phase.ROLLED_BACK
