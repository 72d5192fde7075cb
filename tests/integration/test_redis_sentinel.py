"""Redis Sentinel with real processes: the master is killed mid-rollout, Sentinel promotes
the replica, and the rollout goes on through the new master. No step lands twice, and a
rollback after the failover restores the weights. When the failover loses the last write
(the replica had not received it), the route's annotations are ahead of Redis: the bot
refuses to guess and says so, and `recover` rebuilds the rollout from the route."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
import redis

from rollout.domain.errors import NeedsOperator, Refused, TemporaryFailure
from rollout.domain.models import AuditAction, Click, Phase
from rollout.domain.plan import build_plan
from rollout.service import Outcome, Ref
from sandbox.redis_server import RedisServer
from tests.integration.conftest import ALICE, BOB, World, make_world
from tests.support import weight_writes
from tests.support.kube_api import close_api
from tests.support.real_cluster import RealCluster
from tests.support.sentinel import Sentinel, in_sync, pause, wait_for

POOL = "llm-pool-version-2"
REF = Ref(canary=POOL)
T = TypeVar("T")


class Cluster:
    def __init__(self) -> None:
        self.master = RedisServer(appendonly=True)
        self.master.start()
        self.replica = RedisServer(config=f"replicaof 127.0.0.1 {self.master.port}")
        self.replica.start()
        wait_for(lambda: in_sync(self.replica), "the replica to sync")
        self.sentinel = Sentinel(self.master.port)
        wait_for(lambda: self.sentinel.knows_replica(self.replica.port),
                 "the sentinel to find the replica")

    def close(self) -> None:
        self.sentinel.close()
        for server in (self.replica, self.master):
            if server.running:
                pause(server, resume=True)
            server.close()


@pytest.fixture
def redis_ha() -> Iterator[Cluster]:
    c = Cluster()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def world(redis_ha: Cluster, cluster: RealCluster) -> Iterator[World]:
    w = make_world(cluster, "redis://sentinel-managed/0",
                   sentinels=(redis_ha.sentinel.address,))
    try:
        yield w
    finally:
        w.store.client.close()
        close_api(w.api)


def retrying(call: Callable[[], T], *, timeout: float = 30.0) -> T:
    """What a person does on 'Redis is unavailable, try again': try again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except (TemporaryFailure, redis.ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _fail_over(redis_ha: Cluster) -> None:
    redis_ha.master.kill()
    wait_for(lambda: redis_ha.sentinel.master_port() == redis_ha.replica.port,
             "Sentinel to promote the replica")


def test_the_rollout_continues_through_a_failover_and_rolls_back(
    world: World, redis_ha: Cluster,
) -> None:
    world.service.start(namespace="default", canary=POOL, actor=ALICE,
                        plan=build_plan([10, 50, 100], interval_seconds=0))
    assert world.service.approve(REF, actor=BOB).ok
    # replicated (redis-py leaves execute_command unannotated)
    assert world.store.client.execute_command("WAIT", 1, 2000) == 1  # type: ignore[no-untyped-call]
    _fail_over(redis_ha)

    out: Outcome = retrying(lambda: world.service.approve(REF, actor=BOB))
    assert out.ok and world.weights() == {"llm-pool": 50, POOL: 50}
    out = retrying(lambda: world.service.rollback(REF, actor=BOB, reason="after failover"))
    assert out.rollout is not None and out.rollout.phase is Phase.ROLLED_BACK
    assert world.weights() == {"llm-pool": 100, POOL: 0}
    assert weight_writes(world.emulator) == [[100, 0], [90, 10], [50, 50], [100, 0]]
    actions = [e.action for e in world.service.history(REF)]
    assert actions.count(AuditAction.STEP_APPLIED) == 2 and actions[-1] == "rolled_back"


def _snapshot(client: redis.Redis, prefix: str) -> dict[str, bytes]:
    raw = redis.Redis(connection_pool=client.connection_pool)
    return {k: raw.dump(k) for k in client.scan_iter(f"{prefix}:*")}  # type: ignore[misc]


def _as_if_lost(client: redis.Redis, prefix: str, before: dict[str, bytes]) -> None:
    """Put the promoted master back where the replica stood before the last write: what an
    asynchronous replica that had not received that write holds after a failover."""
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    for key, value in before.items():
        client.restore(key, 0, value, replace=True)


def test_a_step_the_failover_lost_is_not_applied_twice(world: World, redis_ha: Cluster) -> None:
    world.service.start(namespace="default", canary=POOL, actor=ALICE,
                        plan=build_plan([10, 50, 100], interval_seconds=0))
    assert world.service.approve(REF, actor=BOB).ok
    prefix = world.store.key("x")[:-2]
    before = _snapshot(world.store.client, prefix)
    assert world.service.approve(REF, actor=BOB).ok  # 50% lands on the route...
    assert world.weights() == {"llm-pool": 50, POOL: 50}
    _fail_over(redis_ha)
    retrying(lambda: _as_if_lost(world.store.client, prefix, before))  # ...and Redis loses it
    assert retrying(lambda: world.service.get(REF)).step == 0

    writes = len(weight_writes(world.emulator))
    # the card drawn from the stale state offers "Approve 50%" (step index 1) again
    try:
        stale = Click(rollout_id=world.service.get(REF).id, step=1)
        out = retrying(lambda: world.service.approve(REF, actor=BOB, click=stale))
        answer = f"{out.ok} {out.message}"
        assert not out.ok or not out.changed, answer
    except (NeedsOperator, Refused) as exc:
        answer = str(exc)
    assert weight_writes(world.emulator)[writes:] == [], f"wrote again after: {answer}"
    assert world.service.get(REF).step == 1  # converged from the route's annotations
    out = retrying(lambda: world.service.rollback(REF, actor=BOB, reason="after failover"))
    assert world.weights() == {"llm-pool": 100, POOL: 0}
    assert weight_writes(world.emulator)[writes:] == [[100, 0]]
