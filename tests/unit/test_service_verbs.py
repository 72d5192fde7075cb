"""Each verb passes on what it is given (the click, the request id, the reason, the service's
options), and what reconcile found is saved with whatever the command does next."""

from __future__ import annotations

import logging
import re

import pytest

from rollout.domain.clock import ManualClock
from rollout.domain.errors import (
    Busy,
    ClusterUnavailable,
    Conflict,
    DriftDetected,
    NotFound,
    Outdated,
)
from rollout.domain.models import AuditEvent, Click, Phase
from rollout.domain.plan import build_plan
from rollout.domain.split import Marker, Pair
from rollout.service import Ref, RolloutService, ServiceOptions
from tests.unit.builders import ALICE, BASELINE, BOB, CAROL, T0, TARGET
from tests.unit.fakes import FakeStore, FakeTarget, FakeTraffic, open_gates
from tests.unit.test_service import CANARY, REF, _started, _world
from tests.unit.test_service_recovery import _lost

ELSEWHERE = Ref(canary="not-this-one")  # a click names its rollout by id, not by this


def _unbaked() -> tuple[RolloutService, FakeStore, FakeTarget]:
    """A rollout whose steps need no bake, so an adopted step is followed at once."""
    service, store, target, _ = _world()
    service.start(namespace="default", canary=CANARY, actor=ALICE,
                  plan=build_plan([10, 50, 100], interval_seconds=0))
    return service, store, target


def _actions(events: tuple[AuditEvent, ...] | list[AuditEvent]) -> list[tuple[str, str]]:
    return [(e.action.value, e.actor.id) for e in events]


def test_approve_takes_its_click_and_request_id() -> None:
    service, store, target, _ = _started()
    o = service.approve(ELSEWHERE, actor=BOB, click=Click(rollout_id="r1", step=0, epoch=0),
                        request_id="c1")
    assert o.ok and target.pair == Pair(stable=90, canary=10)
    assert service.approve(ELSEWHERE, actor=BOB, click=Click(rollout_id="r1", step=0),
                           request_id="c1").message.startswith("Already handled: ")
    stale = service.approve(ELSEWHERE, actor=BOB, click=Click(rollout_id="r1", step=0),
                            request_id="c2")
    assert (stale.message, stale.changed) == (
        "step 1 (10%) of llm-pool-version-2 is already applied; nothing to do.", False)
    assert store.saves == [("r1", 1), ("r1", 2)]  # a no-op saves nothing


def test_approve_plan_takes_its_click_and_request_id() -> None:
    service, _, _, _ = _world()
    service.start(namespace="default", canary=CANARY, actor=ALICE,
                  plan=build_plan([10, 100], auto=True))
    with pytest.raises(Outdated):
        service.approve_plan(ELSEWHERE, actor=BOB, click=Click(rollout_id="r1", step=-1,
                                                                epoch=5))
    o = service.approve_plan(ELSEWHERE, actor=BOB, request_id="p1",
                             click=Click(rollout_id="r1", step=-1, epoch=0))
    assert o.ok and service.get(REF).plan_approval is not None
    again = service.approve_plan(ELSEWHERE, actor=BOB, request_id="p1",
                                 click=Click(rollout_id="r1", step=-1, epoch=0))
    assert again.message.startswith("Already handled: ")


def test_pause_and_resume_take_their_click_reason_and_request_id() -> None:
    service, _, _, _ = _started()
    o = service.pause(ELSEWHERE, actor=BOB, reason="p99", request_id="p1",
                      click=Click(rollout_id="r1", step=0))
    assert o.message == "llm-pool-version-2 paused at 0%: p99."
    assert service.pause(ELSEWHERE, actor=BOB, request_id="p1",
                         click=Click(rollout_id="r1", step=0)).message.startswith("Already")
    with pytest.raises(Outdated):
        service.resume(ELSEWHERE, actor=BOB, click=Click(rollout_id="r1", step=0, pause=0))
    resumed = service.resume(ELSEWHERE, actor=BOB, request_id="r1",
                             click=Click(rollout_id="r1", step=0, pause=1))
    assert resumed.ok and service.get(REF).phase is Phase.AWAITING_APPROVAL
    assert service.resume(ELSEWHERE, actor=BOB, request_id="r1",
                          click=Click(rollout_id="r1", step=0, pause=1)).message.startswith(
        "Already handled: ")


def test_rollback_and_promote_take_their_click_reason_and_request_id() -> None:
    service, store, target, _ = _started()
    service.approve(REF, actor=BOB)
    o = service.rollback(ELSEWHERE, actor=BOB, reason="p99 too high", request_id="b1",
                         click=Click(rollout_id="r1", step=0))
    assert o.ok and target.pair == Pair(stable=100, canary=0)
    assert store.events[-1].detail == "p99 too high"
    assert service.rollback(ELSEWHERE, actor=BOB, request_id="b1",
                            click=Click(rollout_id="r1", step=0)).message.startswith("Already")
    other, _, _, _ = _started()
    assert other.promote(REF, actor=BOB, request_id="x").ok
    assert other.promote(REF, actor=BOB, request_id="x").message.startswith("Already handled")


def test_self_approval_where_the_service_allows_it() -> None:
    store = FakeStore()
    target = FakeTarget(target=TARGET, stable="llm-pool", canary=CANARY, baseline=BASELINE,
                        pair=Pair(stable=100, canary=0))
    service = RolloutService(gates=open_gates(),
                             store=store, traffic=FakeTraffic(target), clock=ManualClock(T0),
                             options=ServiceOptions(self_approval=True),
                             new_id=lambda canary, now: "r1")
    service.start(namespace="default", canary=CANARY, actor=ALICE,
                  plan=build_plan([10, 50, 100], auto=True, interval_seconds=0))
    assert service.approve_plan(REF, actor=ALICE).ok
    assert service.promote(REF, actor=ALICE).ok
    manual = RolloutService(gates=open_gates(), store=FakeStore(), traffic=FakeTraffic(
        FakeTarget(target=TARGET, stable="llm-pool", canary=CANARY, baseline=BASELINE,
                   pair=Pair(stable=100, canary=0))), clock=ManualClock(T0),
        options=ServiceOptions(self_approval=True), new_id=lambda canary, now: "r1")
    manual.start(namespace="default", canary=CANARY, actor=ALICE, plan=build_plan([10, 100]))
    assert manual.approve(REF, actor=ALICE).ok


def test_a_refused_write_is_paused_by_whoever_asked() -> None:
    service, _, target, _ = _started()
    service.approve(REF, actor=BOB)
    target.fail_next = ClusterUnavailable("boom")
    assert _actions(service.rollback(REF, actor=BOB).events) == [("paused", "U0BOB")]
    auto, _, auto_target, _ = _world()
    auto.start(namespace="default", canary=CANARY, actor=ALICE,
               plan=build_plan([10, 100], auto=True, interval_seconds=0))
    auto.approve_plan(REF, actor=BOB)
    auto_target.fail_next = ClusterUnavailable("boom")
    assert _actions(auto.tick("r1").events) == [("paused", "scheduler")]


def test_start_and_recover_wait_for_the_object_s_lock() -> None:
    service, store, _, _ = _world()
    store.acquire(TARGET.object_key)
    with pytest.raises(Busy):
        service.start(namespace="default", canary=CANARY, plan=build_plan([10, 100]),
                      actor=ALICE)
    assert store.saves == []
    lost, lost_store, _, _ = _lost()
    lost_store.acquire(TARGET.object_key)
    with pytest.raises(Busy):
        lost.recover(namespace="default", canary=CANARY, actor=BOB)
    assert lost_store.saves == []


def test_what_reconcile_adopted_is_saved_with_the_step_that_follows() -> None:
    service, store, target = _unbaked()
    target.pair, target.marker = Pair(stable=90, canary=10), Marker(rollout_id="r1", step=0)
    o = service.approve(REF, actor=BOB)  # step 1 landed before a crash; now step 2
    assert _actions(o.events) == [("recovered", "scheduler"), ("approved", "U0BOB"),
                                  ("step_applied", "U0BOB")]
    assert target.pair == Pair(stable=50, canary=50) and store.saves[-1] == ("r1", 2)


@pytest.mark.parametrize(("failure", "expected"), [
    (ClusterUnavailable("boom"), [("recovered", "scheduler"), ("paused", "U0BOB")]),
    (DriftDetected("weights changed outside the bot"), [("recovered", "scheduler"),
                                                        ("paused", "scheduler")]),
])
def test_what_reconcile_adopted_is_saved_with_a_write_that_failed(
    failure: Exception, expected: list[tuple[str, str]],
) -> None:
    service, _, target = _unbaked()
    target.pair, target.marker = Pair(stable=90, canary=10), Marker(rollout_id="r1", step=0)
    target.fail_next = failure
    o = service.approve(REF, actor=BOB)
    assert not o.ok and _actions(o.events) == expected
    assert service.get(REF).step == 0  # the adopted step stays recorded


def test_what_reconcile_adopted_is_saved_with_a_gateway_objection() -> None:
    service, _, target = _unbaked()
    target.pair, target.marker = Pair(stable=90, canary=10), Marker(rollout_id="r1", step=0)
    target.objects_to_writes = "ResolvedRefs False"
    o = service.approve(REF, actor=BOB)
    assert _actions(o.events) == [("recovered", "scheduler"), ("approved", "U0BOB"),
                                  ("step_applied", "U0BOB"), ("paused", "scheduler")]


def test_a_command_that_changes_nothing_after_drift_answers_for_itself() -> None:
    service, _store, target, _ = _started()
    service.pause(REF, actor=BOB)
    target.pair = Pair(stable=60, canary=40)
    o = service.pause(REF, actor=BOB)
    assert (o.message, o.changed) == (
        "llm-pool-version-2 is already paused (paused by bob).", False)


def test_a_rollback_after_drift_restores_over_the_person_s_weights() -> None:
    service, _, target, _ = _started()
    service.approve(REF, actor=BOB)
    target.pair = Pair(stable=60, canary=40)
    o = service.rollback(REF, actor=BOB)
    assert o.ok and target.pair == Pair(stable=100, canary=0)


def test_a_finished_rollout_whose_rule_an_active_one_took_is_not_rolled_back() -> None:
    service, store, target, _ = _started()
    service.promote(REF, actor=BOB)
    r1 = service.get(Ref(rollout_id="r1"))
    store.rollouts["r2"] = r1.model_copy(update={"id": "r2", "phase": Phase.AWAITING_APPROVAL,
                                                 "finished_at": None})
    with pytest.raises(Conflict, match="now belongs to rollout r2"):
        service.rollback(Ref(rollout_id="r1"), actor=BOB)
    target.marker = None  # nothing on the rule names an owner: the rollback may go ahead
    del store.rollouts["r2"]
    assert service.rollback(Ref(rollout_id="r1"), actor=BOB).ok


def test_lookups_answer_exactly() -> None:
    service, _, _, _ = _started()
    service.approve(REF, actor=BOB)
    with pytest.raises(NotFound) as missing:
        service.get(Ref(rollout_id="nope"))
    assert str(missing.value) == "rollout nope not found"
    assert [e.action.value for e in service.history(REF, limit=1)] == ["step_applied"]
    assert len(service.history(REF)) == 3


def test_a_rollout_id_names_the_canary_the_time_and_a_random_part() -> None:
    target = FakeTarget(target=TARGET, stable="llm-pool", canary=CANARY, baseline=BASELINE,
                        pair=Pair(stable=100, canary=0))
    service = RolloutService(gates=open_gates(), store=FakeStore(), traffic=FakeTraffic(target),
                             clock=ManualClock(T0))
    o = service.start(namespace="default", canary=CANARY, actor=ALICE, plan=build_plan([100]))
    assert o.rollout is not None
    assert re.fullmatch(r"llm-pool-version-2-20260101-120000-[0-9a-f]{6}", o.rollout.id)


def test_a_raised_token_is_logged_with_the_lock_and_the_token_seen(
    caplog: pytest.LogCaptureFixture,
) -> None:
    service, _, target, _ = _started()
    target.fence = 41
    with caplog.at_level(logging.WARNING, logger="rollout.service"):
        service.approve(REF, actor=BOB)
    assert [r.getMessage() for r in caplog.records] == [
        f"fence counter of {TARGET.object_key} was behind the cluster (41); raised it"]


def test_a_refused_command_tells_the_listeners_nothing() -> None:
    heard: list[object] = []
    service, _, _, _ = _started()
    service.options.listeners.append(heard.append)
    with pytest.raises(Conflict):
        service.resume(REF, actor=BOB)  # not paused: refused, nothing happened
    assert heard == []


def test_drift_on_a_rollout_paused_by_a_person_saves_no_new_version() -> None:
    service, store, target, _ = _started()
    service.pause(REF, actor=BOB)
    target.pair = Pair(stable=60, canary=40)
    service.pause(REF, actor=CAROL)
    assert store.saves == [("r1", 1), ("r1", 2)]


def test_a_command_that_finds_drift_answers_with_its_own_words() -> None:
    service, _, target, _ = _started()
    target.pair = Pair(stable=60, canary=40)
    o = service.pause(REF, actor=BOB)  # reconcile pauses for drift first; pause has nothing to do
    assert o.message.startswith("llm-pool-version-2 is already paused (weights changed")
    assert not o.changed


def test_a_write_retried_with_a_raised_token_still_refuses_a_person_s_edit() -> None:
    service, _, target, _ = _started()
    target.fence = 41
    target.edit_before_write = Pair(stable=70, canary=30)
    o = service.approve(REF, actor=BOB)
    assert not o.ok and target.pair == Pair(stable=70, canary=30)
