"""Names, lists and refusals through the service over fakes: a rule an unknown rollout still
owns refuses a start whatever canary it names, a name nothing is recorded under is refused
with the close names, and the lists and the freeze's answer say exactly what they hold."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rollout.domain.clock import ManualClock
from rollout.domain.errors import NeedsOperator, NotFound
from rollout.domain.models import AuditAction, Phase, Rollout
from rollout.domain.plan import build_plan
from rollout.domain.split import Marker, MarkerState, Pair
from rollout.service import Ref, RolloutService
from tests.unit.builders import ALICE, BASELINE, BOB, T0, TARGET, started
from tests.unit.facts_builders import CANARY, STABLE
from tests.unit.fakes import FakeStore, FakeTarget, FakeTraffic, open_gates

PLAN = build_plan([10, 50, 100])
OWNED = (
    "HTTPRoute default/routes-to-llm rule 0 is marked as owned by rollout r0 at step 2, which "
    "the store does not know (was Redis emptied?). A new rollout on it is refused until an "
    "operator decides: `rollout-bot recover POOL` with the pool (or adapter) that rollout was "
    "moving traffic to rebuilds it (paused), or `rollout-bot release POOL` drops the marker")


def _marked_for_another_canary(target: FakeTarget) -> FakeTraffic:
    """The cluster as a start naming a new canary sees it: the rule it locates carries the
    marker of a rollout of another canary, so the look-up of markers by the new canary's
    name finds none."""
    traffic = FakeTraffic(target)
    traffic.find_marked = lambda *, namespace, canary: []  # type: ignore[method-assign]
    return traffic


def _service(target: FakeTarget, traffic: FakeTraffic | None = None,
             ) -> tuple[RolloutService, FakeStore]:
    store = FakeStore()
    service = RolloutService(store=store, traffic=traffic or FakeTraffic(target),
                             clock=ManualClock(T0), gates=open_gates(),
                             new_id=lambda canary, now: "r1")
    return service, store


def _target(pair: Pair, marker: Marker | None) -> FakeTarget:
    return FakeTarget(target=TARGET, stable=STABLE, canary=CANARY, baseline=BASELINE,
                      pair=pair, marker=marker)


def _finished(rollout_id: str, canary: str = CANARY, *, minutes: int = 0) -> Rollout:
    r: Rollout = started().model_copy(update={
        "id": rollout_id, "canary": canary, "phase": Phase.COMPLETED,
        "created_at": T0 + timedelta(minutes=minutes)})
    return r


def test_a_start_on_a_rule_an_unknown_active_rollout_marked_is_refused_with_what_to_do() -> None:
    target = _target(Pair(stable=50, canary=50), Marker(rollout_id="r0", step=1))
    service, store = _service(target, _marked_for_another_canary(target))
    with pytest.raises(NeedsOperator) as refused:
        service.start(namespace="default", canary=CANARY, plan=PLAN, actor=ALICE)
    assert str(refused.value) == OWNED
    assert store.saves == [] and store.events == [] and target.writes == []


def test_a_finished_rollouts_marker_on_the_rule_does_not_hold_a_new_start() -> None:
    target = _target(Pair(stable=100, canary=0),
                     Marker(rollout_id="r0", step=1, state=MarkerState.ROLLED_BACK))
    service, store = _service(target)
    out = service.start(namespace="default", canary=CANARY, plan=PLAN, actor=ALICE)
    assert out.ok and out.rollout is not None and out.rollout.id == "r1"
    assert store.saves == [("r1", 1)]


def test_a_ref_with_an_id_is_looked_up_by_the_id_and_refused_naming_it() -> None:
    service, store = _service(_target(Pair(stable=100, canary=0), None))
    store.rollouts["r1"] = _finished("r1")
    with pytest.raises(NotFound) as refused:
        service.get(Ref(canary=CANARY, rollout_id="r9"))
    assert str(refused.value) == "rollout r9 not found"


def test_history_by_id_is_that_rollouts_audit() -> None:
    service, _ = _service(_target(Pair(stable=100, canary=0), None))
    service.start(namespace="default", canary=CANARY, plan=PLAN, actor=ALICE)
    service.approve(Ref(rollout_id="r1"), actor=BOB)
    actions = [e.action for e in service.history(Ref(rollout_id="r1"))]
    assert actions[0] == AuditAction.STARTED and AuditAction.APPROVED in actions


def test_history_of_a_mistyped_pool_is_refused_with_the_close_name_and_the_known_ones() -> None:
    service, store = _service(_target(Pair(stable=100, canary=0), None))
    store.rollouts["r1"] = _finished("r1")
    store.rollouts["r2"] = _finished("r2", "llm-pool-version-3", minutes=1)
    with pytest.raises(NotFound) as refused:
        service.history(Ref(canary="llm-pool-versoin-2"))
    assert str(refused.value) == (
        "no rollout of llm-pool-versoin-2 in namespace default; did you mean "
        "llm-pool-version-2? (rollouts in default: llm-pool-version-2, llm-pool-version-3)")


def test_the_hint_names_the_pools_of_the_50_most_recent_rollouts_only() -> None:
    service, store = _service(_target(Pair(stable=100, canary=0), None))
    store.rollouts["old"] = _finished("old", "llm-pool-version-3")
    for i in range(50):
        store.rollouts[f"r{i}"] = _finished(f"r{i}", minutes=i + 1)
    with pytest.raises(NotFound) as refused:
        service.get(Ref(canary="llm-pool-versoin-2"))
    assert str(refused.value).endswith("(rollouts in default: llm-pool-version-2)")


def test_the_list_holds_the_10_most_recent_finished_rollouts_by_default() -> None:
    service, store = _service(_target(Pair(stable=100, canary=0), None))
    for i in range(12):
        store.rollouts[f"r{i}"] = _finished(f"r{i}", minutes=i)
    assert [r.id for r in service.list_rollouts()] == [f"r{i}" for i in range(2, 12)]


def test_in_flight_lists_only_finished_rollouts_that_are_still_recorded() -> None:
    service, store = _service(_target(Pair(stable=100, canary=0), None))
    store.rollouts["done"] = _finished("done")
    store.rollouts["live"] = started().model_copy(update={"id": "live"})
    store.in_flight.update({"done", "live", "gone"})
    assert [r.id for r in service.in_flight()] == ["done"]


def test_a_freeze_with_no_active_rollout_says_none_is_held() -> None:
    service, _ = _service(_target(Pair(stable=100, canary=0), None))
    out = service.freeze(actor=BOB, reason="incident 42")
    assert out.message == (
        "Rollouts are frozen by bob since 2026-01-01 12:00:00 UTC: incident 42. New starts "
        "and step-ups wait until an approver runs unfreeze (0 active rollouts held); "
        "rollback and pause still work.")
