"""A recorded state this version cannot read (a newer version's, in a rolling upgrade, or a
damaged one), against a real Redis and the real API server: the scheduler's reload and the
lists pass it by, and a command naming it is told why, holding no lock."""

from __future__ import annotations

import json

import pytest

from rollout.adapters.leadership import LeaderLease
from rollout.domain.errors import Unreadable
from rollout.scheduler import RolloutScheduler
from rollout.service import Ref
from tests.integration.conftest import BOB, World
from tests.integration.test_sweep_indexes import _baking

NEWER = "r-from-a-newer-version"
LOCK = "default/httproute/someone-elses"


def _newer_state(world: World, like: str) -> None:
    """An active rollout whose phase this version does not know, indexed as due now."""
    state = json.loads(str(world.store.client.hget(world.store.key("rollout", like), "data")))
    state.update(id=NEWER, phase="WARMING_THE_KV_CACHE")
    world.store.client.hset(world.store.key("rollout", NEWER),
                            mapping={"data": json.dumps(state), "lock": LOCK})
    world.store.client.sadd(world.store.key("active"), NEWER)
    world.store.client.zadd(world.store.key("due"), {NEWER: 0})


def test_the_scheduler_and_the_lists_pass_an_unreadable_state_by(world: World) -> None:
    rid = _baking(world)
    _newer_state(world, rid)
    assert [r.id for r in world.service.active()] == [rid]
    assert [r.id for r in world.service.list_rollouts()] == [rid]
    assert world.service.load([NEWER, rid])[NEWER] is None
    lease = LeaderLease(world.store.client, key=world.store.key("leader"), holder="a",
                        ttl_seconds=30)
    scheduler = RolloutScheduler(service=world.service, lease=lease, sweep_seconds=5)
    scheduler.scheduler.start(paused=True)
    try:
        scheduler.sweep()  # takes the lease: the full reload reads both
        assert scheduler.due_times() == {rid: world.service.get(Ref(rollout_id=rid)).next_due_at}
    finally:
        scheduler.scheduler.shutdown(wait=False)
        lease.release()


def test_a_command_naming_an_unreadable_state_is_told_why_and_holds_no_lock(
        world: World) -> None:
    _newer_state(world, _baking(world))
    with pytest.raises(Unreadable, match=f"rollout {NEWER} cannot be read by this version") as exc:
        world.service.rollback(Ref(rollout_id=NEWER), actor=BOB)
    assert (exc.value.rollout_id, exc.value.field) == (NEWER, "phase")
    assert world.store.client.get(world.store.key("lock", LOCK)) is None
    with pytest.raises(Unreadable):
        world.service.get(Ref(rollout_id=NEWER))
