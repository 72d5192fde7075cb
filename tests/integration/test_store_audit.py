"""A rollout's history as Redis keeps it: the most recent events, oldest first."""

from __future__ import annotations

from datetime import timedelta

from rollout.domain.models import Actor, AuditAction, AuditEvent
from rollout.domain.plan import build_plan
from rollout.service import Ref
from tests.integration.conftest import ALICE, BOB, World


def test_history_gives_the_last_two_hundred_events_oldest_first(world: World) -> None:
    """It gave the first 200: a long rollout's `history` stopped before its latest events."""
    at = world.clock.now()
    for i in range(201):
        world.store.record(AuditEvent(at=at + timedelta(seconds=i), rollout_id="r1",
                                      target="httproute/default/routes-to-llm/0",
                                      action=AuditAction.REMINDER, actor=Actor.scheduler(),
                                      detail=str(i)))
    shown = world.service.history(Ref(rollout_id="r1"))
    assert [e.detail for e in shown] == [str(i) for i in range(1, 201)]
    assert [e.detail for e in world.service.history(Ref(rollout_id="r1"), limit=3)] == \
        ["198", "199", "200"]


def test_each_start_of_a_pool_adds_no_key_of_the_pool_s_own(world: World) -> None:
    """Every start pushed the rollout's id on a per-pool list nothing read: a pool rolled out
    every day grew it for ever. A pool keeps one marker, its latest rollout."""
    pool = "llm-pool-version-2"
    for _ in range(3):
        world.service.start(namespace="default", canary=pool, actor=ALICE,
                            plan=build_plan([10, 100], interval_seconds=0, auto=False))
        world.service.rollback(Ref(canary=pool), actor=BOB, reason="again")
    pool_keys = sorted(str(k) for k in
                       world.store.client.scan_iter(world.store.key("pool", "*")))
    assert pool_keys == [world.store.key("pool", "default", pool)]
