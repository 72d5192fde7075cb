"""A tick decides on the namespace cache's copy of its target (`Traffic.recall`), sparing
its GET; a copy that trails the cluster must never change what the tick does: whatever the
copy shows, the outcome is the one a fresh read gives. The fake's `copy` stands for the
cache's copy; its write refuses a copy the target has moved on from, as the real PATCH does
on its resourceVersion."""

from __future__ import annotations

import pytest

from rollout.domain.clock import ManualClock
from rollout.domain.errors import Conflict, NeedsOperator
from rollout.domain.models import AuditAction, PauseKind, Phase
from rollout.domain.plan import build_plan
from rollout.domain.split import Marker, MarkerState, Observed, Pair
from rollout.service import Ref, RolloutService
from tests.unit.builders import ALICE, BOB
from tests.unit.fakes import FakeStore, FakeTarget, one_route_world

CANARY = "llm-pool-version-2"
REF = Ref(canary=CANARY)


def _stepping() -> tuple[RolloutService, FakeStore, FakeTarget, ManualClock]:
    """An automatic rollout at its first step (10%), its bake over: the next tick is due."""
    service, store, target, clock = one_route_world(CANARY)
    service.start(namespace="default", canary=CANARY, actor=ALICE,
                  plan=build_plan([10, 50, 100], interval_seconds=60, auto=True))
    service.approve_plan(REF, actor=BOB)
    service.tick("r1")
    assert target.pair == Pair(stable=90, canary=10)
    clock.advance(61)
    target.reads = 0
    return service, store, target, clock


def _as_is(target: FakeTarget) -> Observed:
    return Observed(pair=target.pair, marker=target.marker)


def test_a_tick_on_a_copy_that_shows_the_cluster_writes_without_a_read() -> None:
    service, _, target, _ = _stepping()
    target.copy = _as_is(target)
    outcome = service.tick("r1")
    assert outcome.ok and target.pair == Pair(stable=50, canary=50)
    assert target.reads == 0


def test_a_person_edit_the_copy_has_not_seen_pauses_the_tick_and_is_not_overwritten() -> None:
    service, store, target, _ = _stepping()
    target.copy = _as_is(target)
    writes = len(target.writes)
    target.pair = Pair(stable=70, canary=30)  # after the copy: the watch has not brought it
    outcome = service.tick("r1")
    r = service.get(REF)
    assert r.phase is Phase.PAUSED and r.pause is not None and r.pause.kind is PauseKind.DRIFT
    assert target.pair == Pair(stable=70, canary=30) and len(target.writes) == writes
    assert [e.action for e in outcome.events] == [AuditAction.PAUSED]
    assert [e.action for e in store.events][-1] is AuditAction.PAUSED


def test_a_step_another_replica_landed_unseen_by_the_copy_is_adopted_not_written_again(
) -> None:
    service, store, target, _ = _stepping()
    target.copy = _as_is(target)
    writes = len(target.writes)
    # another replica wrote step 1 and died before saving it
    target.pair, target.marker = Pair(stable=50, canary=50), Marker(rollout_id="r1", step=1)
    service.tick("r1")
    r = service.get(REF)
    assert r.step == 1 and r.phase is Phase.BAKING
    assert len(target.writes) == writes  # adopted from the fresh read: not written twice
    assert AuditAction.RECOVERED in [e.action for e in store.events]


def test_a_rollback_another_replica_landed_unseen_by_the_copy_is_recorded_not_drift() -> None:
    service, _, target, _ = _stepping()
    target.copy = _as_is(target)
    target.pair = Pair(stable=100, canary=0)
    target.marker = Marker(rollout_id="r1", step=0, state=MarkerState.ROLLED_BACK)
    service.tick("r1")
    r = service.get(REF)
    assert r.phase is Phase.ROLLED_BACK
    assert target.pair == Pair(stable=100, canary=0)


def test_drift_that_only_the_copy_still_shows_does_not_pause() -> None:
    service, _, target, _ = _stepping()
    # the copy caught a person's edit that was undone since: a fresh read decides
    target.copy = Observed(pair=Pair(stable=70, canary=30), marker=target.marker)
    outcome = service.tick("r1")
    assert outcome.ok and service.get(REF).phase is Phase.BAKING
    assert target.pair == Pair(stable=50, canary=50)
    assert target.reads == 1


def test_a_copy_the_rule_cannot_be_read_from_is_read_again_before_any_pause() -> None:
    service, _, target, _ = _stepping()
    target.copy_unreadable = NeedsOperator("two rules reference llm-pool-version-2")
    outcome = service.tick("r1")
    assert outcome.ok and service.get(REF).phase is Phase.BAKING
    assert target.pair == Pair(stable=50, canary=50) and target.reads == 1


def test_only_a_tick_decides_on_the_copy() -> None:
    service, _, target, _ = _stepping()
    target.copy = _as_is(target)
    with pytest.raises(Conflict):  # refused (the step is automatic), after reading the route
        service.approve(REF, actor=BOB)
    assert target.reads == 1  # a click reads the route even while the copy is current
    target.reads = 0
    target.copy = Observed(pair=Pair(stable=70, canary=30), marker=target.marker)
    target.pair = Pair(stable=60, canary=40)  # what a fresh read shows
    service.pause(REF, actor=BOB)
    r = service.get(REF)
    assert r.pause is not None and r.pause.kind is PauseKind.DRIFT
    assert "60" in r.pause.reason and target.reads == 1
