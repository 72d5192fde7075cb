"""Redis refusing commands it does not run (READONLY on a replica, OOM under `noeviction`),
against a real redis-server of the test's own: answered as "not recorded", never a raw
error, and a change that landed in the cluster first is answered "landed, not recorded" and
recorded by the next command once Redis takes writes again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from rollout.adapters.store import RedisStore
from rollout.domain.errors import StoreUnavailable, StoreUnknown, Unrecorded
from rollout.domain.plan import build_plan
from rollout.ports import Saving
from rollout.service import Ref
from sandbox.ports import free_port
from sandbox.redis_server import RedisServer
from tests.integration.conftest import ALICE, BOB, make_world
from tests.support.polling import eventually
from tests.support.real_cluster import RealCluster
from tests.unit.builders import TARGET, started

POOL = "llm-pool-version-2"


@pytest.fixture
def server() -> Iterator[RedisServer]:
    """A server of this test's own: its settings change under the test."""
    with RedisServer() as s:
        yield s


def _admin(server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(server.url, decode_responses=True)


def _read_only(server: RedisServer) -> None:
    """A replica of a primary that is not there: it refuses writes with READONLY."""
    _admin(server).replicaof("127.0.0.1", str(free_port()))


def _out_of_memory(server: RedisServer) -> None:
    admin = _admin(server)
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", "1")


@pytest.mark.parametrize("refuse", [_read_only, _out_of_memory])
def test_refused_commands_are_not_recorded_and_change_nothing(server: RedisServer,
                                                              refuse: object) -> None:
    store = RedisStore.from_url(server.url, prefix="t", lock_ttl_seconds=30)
    lease = store.acquire(TARGET.object_key)
    created = store.create(started(), lease=lease, events=())
    assert callable(refuse)
    refuse(server)
    saving = Saving(created.model_copy(update={"version": created.version + 1}),
                    created.version, ())
    for command in (lambda: store.close(lease, saving=saving),
                    lambda: store.open(key="default/httproute/another/0")):
        with pytest.raises(StoreUnavailable, match="Redis refused the command") as refused:
            command()
        assert not isinstance(refused.value, StoreUnknown)
        assert "nothing was changed" in str(refused.value)
    assert store.get(created.id) == created
    store.client.close()


def test_a_step_that_landed_as_redis_turned_read_only_is_recorded_later(
        cluster: RealCluster, server: RedisServer) -> None:
    world = make_world(cluster, server.url, lock_ttl=1.0)
    service = world.service
    service.start(namespace="default", canary=POOL, actor=ALICE,
                  plan=build_plan([10, 100], interval_seconds=3600, auto=True))
    service.approve_plan(Ref(canary=POOL), actor=BOB)
    rid = service.get(Ref(canary=POOL)).id
    apply = service.traffic.apply

    def apply_then_redis_is_demoted(*args: object, **kwargs: object) -> object:
        written = apply(*args, **kwargs)  # type: ignore[arg-type]
        _read_only(server)
        return written

    service.traffic.apply = apply_then_redis_is_demoted  # type: ignore[method-assign, assignment]
    with pytest.raises(Unrecorded, match="landed in the cluster but could not be recorded"):
        service.tick(rid)
    service.traffic.apply = apply  # type: ignore[method-assign]
    _admin(server).replicaof("NO", "ONE")
    assert service.get(Ref(rollout_id=rid)).step == -1  # not recorded then
    eventually(lambda: not world.store.client.keys("*:lock:*"), timeout=10)  # lapsed
    service.tick(rid)  # finds the step on the route and records it
    assert service.get(Ref(rollout_id=rid)).step == 0
    world.store.client.close()
