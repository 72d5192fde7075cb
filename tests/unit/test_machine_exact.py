"""Each transition stated whole: the next state field by field, the effect, the audit events
and the answer a person reads. The other machine tests state rules; these pin what a
transition writes, so a dropped field or a changed answer does not pass unseen."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rollout.domain import machine
from rollout.domain.errors import Conflict, Outdated, Unauthorized
from rollout.domain.machine import ApplyStep, Decision, Restore
from rollout.domain.models import (
    Actor,
    Approval,
    Click,
    Pause,
    PauseKind,
    Phase,
    Rollout,
)
from rollout.domain.split import Marker, MarkerState, Observed, Pair
from tests.unit.builders import ALICE, BOB, CAROL, T0, started

T1 = T0 + timedelta(minutes=5)
SCHEDULER = Actor.scheduler()


def _events(d: Decision) -> list[tuple[str, str, int | None, int | None, str]]:
    assert all(e.at == d.rollout.updated_at and e.rollout_id == "r1" for e in d.events)
    assert all(e.target == "httproute/default/routes-to-llm/0" for e in d.events)
    return [(e.action.value, e.actor.id, e.step, e.percent, e.detail) for e in d.events]


def _baking() -> Rollout:
    """Step 1 (10%) applied at T1, baking for a minute."""
    return machine.approve(started(interval=60), actor=BOB, now=T1).rollout


def test_an_automatic_plan_s_approval_makes_its_waiting_step_due_now() -> None:
    auto = started(auto=True, interval=60)
    d = machine.approve_plan(auto, actor=BOB, now=T1)
    assert d.rollout == auto.model_copy(update={
        "phase": Phase.BAKING, "updated_at": T1, "next_due_at": T1,
        "plan_approval": Approval(step=-1, actor=BOB, at=T1)})
    assert (d.message, d.changed, d.effect) == (
        "bob approved the plan of llm-pool-version-2; step 1 (10%) applies now.", True, None)
    assert _events(d) == [("plan_approved", "U0BOB", None, None, "automatic steps may apply")]


def test_approve_plan_refusals_say_why() -> None:
    auto = started(auto=True)
    with pytest.raises(Conflict) as manual:
        machine.approve_plan(started(), actor=BOB, now=T1)
    assert str(manual.value) == ("the plan of llm-pool-version-2 has no automatic steps: each "
                                 "step is approved on its own (`approve`)")
    with pytest.raises(Unauthorized) as author:
        machine.approve_plan(auto, actor=ALICE, now=T1)
    assert str(author.value) == ("alice started this rollout and cannot approve its plan "
                                 "(two-person rule): ask another approver")
    assert machine.approve_plan(auto, actor=ALICE, now=T1, self_approval=True).changed
    with pytest.raises(Outdated) as outdated:
        machine.approve_plan(auto, actor=BOB, now=T1,
                             click=Click(rollout_id="r1", step=-1, epoch=3))
    assert str(outdated.value) == ("llm-pool-version-2 was paused or resumed since this card "
                                   "was drawn; look at the card again")
    assert machine.approve_plan(auto, actor=BOB, now=T1,
                                click=Click(rollout_id="r1", step=-1, epoch=0)).changed
    approved = machine.approve_plan(auto, actor=BOB, now=T1).rollout
    again = machine.approve_plan(approved, actor=CAROL, now=T1)
    assert (again.rollout, again.changed, again.message) == (
        approved, False, "the plan of llm-pool-version-2 is already approved by bob.")
    done = machine.rollback(approved, actor=BOB, now=T1).rollout
    with pytest.raises(Conflict) as finished:
        machine.approve_plan(done, actor=BOB, now=T1)
    assert str(finished.value) == ("rollout r1 of llm-pool-version-2 is rolled back: nothing "
                                   "to approve")


def test_the_last_approval_applies_the_step() -> None:
    r = started()
    d = machine.approve(r, actor=BOB, now=T1)
    assert d.rollout == r.model_copy(update={
        "phase": Phase.BAKING, "step": 0, "updated_at": T1, "next_due_at": T1,
        "awaiting_since": None, "approvals": (Approval(step=0, actor=BOB, at=T1),)})
    assert (d.message, d.effect) == ("llm-pool-version-2 now at 10% (step 1 (10%)).",
                                     ApplyStep(step=0, percent=10))
    assert _events(d) == [("approved", "U0BOB", 0, 10, "1/1"),
                          ("step_applied", "U0BOB", 0, 10, "stable 90 / canary 10")]


def test_an_approval_short_of_the_count_is_recorded_and_says_how_many() -> None:
    two = started(approvals=2)
    d = machine.approve(two, actor=BOB, now=T1)
    assert d.rollout == two.model_copy(update={
        "updated_at": T1, "approvals": (Approval(step=0, actor=BOB, at=T1),)})
    assert (d.message, d.effect) == ("bob approved step 1 (10%): 1/2 approvals.", None)
    assert _events(d) == [("approved", "U0BOB", 0, 10, "1/2")]
    again = machine.approve(d.rollout, actor=BOB, now=T1)
    assert (again.rollout, again.changed, again.message) == (
        d.rollout, False, "bob already approved step 1 (10%); 1/2 approvals.")


def test_approve_refusals_say_why() -> None:
    r = started()
    applied = machine.approve(r, actor=BOB, now=T1).rollout
    stale = machine.approve(applied, actor=CAROL, now=T1, click=Click(rollout_id="r1", step=0))
    assert (stale.rollout, stale.changed, stale.message) == (
        applied, False, "step 1 (10%) of llm-pool-version-2 is already applied; nothing to do.")
    with pytest.raises(Outdated) as ahead:
        machine.approve(r, actor=BOB, now=T1, click=Click(rollout_id="r1", step=2))
    assert str(ahead.value) == "step 3 is not the pending step; step 1 (10%) is"
    with pytest.raises(Outdated) as moved:
        machine.approve(r, actor=BOB, now=T1, click=Click(rollout_id="r1", step=0, epoch=2))
    assert str(moved.value) == ("llm-pool-version-2 was paused or resumed since this card was "
                                "drawn; look at the card again: step 1 (10%) is pending")
    assert machine.approve(r, actor=BOB, now=T1,
                           click=Click(rollout_id="r1", step=0, epoch=0)).changed
    with pytest.raises(Conflict) as plan:
        machine.approve(started(auto=True), actor=BOB, now=T1)
    assert str(plan.value) == (
        "the plan of llm-pool-version-2 applies steps automatically and is not approved yet: "
        "an approver other than its author approves it with `approve-plan` (the card's "
        "Approve plan button)")
    with pytest.raises(Unauthorized) as author:
        machine.approve(r, actor=ALICE, now=T1)
    assert str(author.value) == ("alice started this rollout and cannot approve its steps "
                                 "(two-person rule): ask another approver")
    done = machine.promote(r, actor=BOB, now=T1).rollout
    with pytest.raises(Conflict) as finished:
        machine.approve(done, actor=BOB, now=T1)
    assert str(finished.value) == ("rollout r1 of llm-pool-version-2 is completed: nothing to "
                                   "approve")


def test_an_automatic_step_cannot_be_approved_and_says_when_it_applies() -> None:
    auto = machine.approve_plan(started(auto=True, interval=60), actor=BOB, now=T0).rollout
    baking = machine.tick(auto, now=T1).rollout
    with pytest.raises(Conflict) as refused:
        machine.approve(baking, actor=CAROL, now=T1)
    assert str(refused.value) == ("step 2 (25%) is automatic; it applies when the bake ends at "
                                  "12:06:00 UTC (promote skips ahead)")


def test_a_pause_keeps_the_bake_left_and_moves_the_epoch() -> None:
    baking = _baking()
    at = T1 + timedelta(seconds=20)
    d = machine.pause(baking, actor=CAROL, now=at)
    pause = Pause(kind=PauseKind.MANUAL, reason="paused by carol", by=CAROL, at=at,
                  resume_phase=Phase.BAKING, bake_left_seconds=40.0)
    assert d.rollout == baking.model_copy(update={
        "phase": Phase.PAUSED, "epoch": 1, "updated_at": at, "next_due_at": None,
        "pause": pause})
    assert d.message == "llm-pool-version-2 paused at 10%: paused by carol."
    assert _events(d) == [("paused", "U0CAROL", 0, 10, "paused by carol")]
    overdue = machine.pause(baking, actor=CAROL, now=T1 + timedelta(hours=1), reason="p99")
    assert overdue.rollout.pause is not None
    assert (overdue.rollout.pause.bake_left_seconds, overdue.rollout.pause.reason) == (0.0, "p99")
    again = machine.pause(d.rollout, actor=BOB, now=at)
    assert (again.rollout, again.changed, again.message) == (
        d.rollout, False, "llm-pool-version-2 is already paused (paused by carol).")


def test_resume_finishes_the_bake_that_was_left() -> None:
    at = T1 + timedelta(seconds=20)
    paused = machine.pause(_baking(), actor=CAROL, now=at).rollout
    later = at + timedelta(seconds=80)
    d = machine.resume(paused, actor=BOB, now=later)
    assert d.rollout == paused.model_copy(update={
        "phase": Phase.BAKING, "epoch": 2, "updated_at": later, "pause": None,
        "next_due_at": later + timedelta(seconds=40)})
    assert d.message == "llm-pool-version-2 resumed at 10%."
    assert _events(d) == [("resumed", "U0BOB", 0, 10, "paused by carol")]


def test_resume_after_a_drift_pause_warns_that_the_plan_s_weights_come_back() -> None:
    at = T1 + timedelta(seconds=20)
    paused = machine.pause(_baking(), actor=SCHEDULER, now=at, reason="drift seen",
                           kind=PauseKind.DRIFT, seen=Pair(stable=70, canary=30)).rollout
    assert paused.pause is not None
    assert (paused.pause.seen_stable, paused.pause.seen_canary) == (70, 30)
    d = machine.resume(paused, actor=BOB, now=at)
    assert d.message == ("llm-pool-version-2 resumed at 10%. The next step writes the plan's "
                         "weights over the manual change.")
    assert _events(d) == [("resumed", "U0BOB", 0, 10,
                           "paused by the scheduler (drift): drift seen")]


def test_resume_with_no_bake_left_opens_the_next_approval() -> None:
    paused = machine.pause(_baking(), actor=CAROL, now=T1 + timedelta(hours=1)).rollout
    later = T1 + timedelta(hours=2)
    d = machine.resume(paused, actor=BOB, now=later)
    assert d.rollout == paused.model_copy(update={
        "phase": Phase.AWAITING_APPROVAL, "epoch": 2, "updated_at": later, "pause": None,
        "awaiting_since": later, "next_due_at": None})


def test_resume_refusals_say_why() -> None:
    with pytest.raises(Conflict) as running:
        machine.resume(_baking(), actor=BOB, now=T1)
    assert str(running.value) == "llm-pool-version-2 is not paused; nothing to resume"
    paused = machine.pause(_baking(), actor=CAROL, now=T1).rollout
    with pytest.raises(Outdated) as stale:
        machine.resume(paused, actor=BOB, now=T1, click=Click(rollout_id="r1", step=0, pause=0))
    assert str(stale.value) == ("llm-pool-version-2 was paused again since this card was drawn "
                                "(paused by carol); look at the card again")
    assert machine.resume(paused, actor=BOB, now=T1,
                          click=Click(rollout_id="r1", step=0, pause=1)).changed
    done = machine.rollback(paused, actor=BOB, now=T1).rollout
    with pytest.raises(Conflict) as finished:
        machine.resume(done, actor=BOB, now=T1)
    assert str(finished.value) == ("rollout r1 of llm-pool-version-2 is rolled back: nothing to "
                                   "resume")
    with pytest.raises(Conflict) as no_pause:
        machine.pause(done, actor=BOB, now=T1)
    assert str(no_pause.value) == ("rollout r1 of llm-pool-version-2 is rolled back: nothing to "
                                   "pause")


def test_a_rollback_restores_and_finishes() -> None:
    baking = _baking()
    d = machine.rollback(baking, actor=BOB, now=T1 + timedelta(seconds=1), reason="p99")
    at = T1 + timedelta(seconds=1)
    assert d.rollout == baking.model_copy(update={
        "phase": Phase.ROLLED_BACK, "updated_at": at, "next_due_at": None,
        "awaiting_since": None, "finished_at": at, "rolled_back_by": BOB,
        "rollback_reason": "p99"})
    assert (d.message, d.effect) == (
        "llm-pool-version-2 rolled back: stable 100 / canary 0 restored.", Restore())
    assert _events(d) == [("rolled_back", "U0BOB", 0, 10, "p99")]
    waiting = machine.rollback(started(), actor=BOB, now=T1).rollout
    assert (waiting.awaiting_since, waiting.next_due_at) == (None, None)
    again = machine.rollback(d.rollout, actor=CAROL, now=at)
    assert (again.rollout, again.changed, again.message) == (
        d.rollout, False, "llm-pool-version-2 is already rolled back.")
    assert machine.rollback(baking, actor=BOB, now=at).events[0].detail == "requested by bob"


def test_a_promotion_applies_the_last_step_and_completes() -> None:
    baking = _baking()
    d = machine.promote(baking, actor=CAROL, now=T1 + timedelta(seconds=1))
    at = T1 + timedelta(seconds=1)
    assert d.rollout == baking.model_copy(update={
        "phase": Phase.COMPLETED, "step": 3, "updated_at": at, "next_due_at": None,
        "awaiting_since": None, "finished_at": at, "keep_until": at, "completed_by": CAROL})
    assert (d.message, d.effect) == (
        "llm-pool-version-2 now at 100% (step 4 (100%)). Rollout completed; llm-pool takes no "
        f"traffic and is kept for rollback until {at:%Y-%m-%d %H:%M} UTC; then an approver "
        "retires it (`retire`).", ApplyStep(step=3, percent=100))
    assert _events(d) == [("promoted", "U0CAROL", 3, 100, "from 10%"),
                          ("step_applied", "U0CAROL", 3, 100, "stable 0 / canary 100"),
                          ("completed", "U0CAROL", 3, 100, "")]
    with pytest.raises(Unauthorized) as author:
        machine.promote(baking, actor=ALICE, now=T1)
    assert str(author.value) == ("alice started this rollout and cannot promote it (two-person "
                                 "rule): ask another approver")
    with pytest.raises(Conflict) as finished:
        machine.promote(d.rollout, actor=CAROL, now=T1)
    assert str(finished.value) == ("rollout r1 of llm-pool-version-2 is completed: nothing to "
                                   "promote")


def test_a_step_after_a_paused_bake_starts_a_fresh_bake() -> None:
    r = started(interval=60)
    nxt = machine.approve(r, actor=BOB, now=T1).rollout
    assert nxt.next_due_at == T1 + timedelta(seconds=60) and nxt.last_reminder_at is None


def test_the_end_of_a_bake_asks_for_approval() -> None:
    baking = _baking()
    at = T1 + timedelta(seconds=60)
    assert machine.tick(baking, now=at - timedelta(seconds=1)) == Decision(
        rollout=baking, changed=False, message="nothing due")
    d = machine.tick(baking, now=at)
    assert d.rollout == baking.model_copy(update={
        "phase": Phase.AWAITING_APPROVAL, "updated_at": at, "next_due_at": None,
        "awaiting_since": at})
    assert d.message == "step 2 (25%) of llm-pool-version-2 awaits approval."
    assert _events(d) == [("approval_requested", "scheduler", 1, 25, "")]


def test_reminders_then_the_timeout() -> None:
    at = T1 + timedelta(seconds=60)
    waiting = machine.tick(_baking(), now=at).rollout
    waiting = waiting.model_copy(update={"plan": waiting.plan.model_copy(update={
        "reminder_seconds": 300, "approval_timeout_seconds": 900})})
    assert machine.tick(waiting, now=at + timedelta(seconds=299)).changed is False
    later = at + timedelta(seconds=300)
    d = machine.tick(waiting, now=later)
    assert d.rollout == waiting.model_copy(update={
        "updated_at": later, "last_reminder_at": later,
        "next_due_at": later + timedelta(seconds=300)})
    assert d.message == "step 2 (25%) of llm-pool-version-2 still awaits approval (5m)."
    assert _events(d) == [("reminder", "scheduler", 1, 25, "waiting 5m")]
    timeout = at + timedelta(seconds=900)
    t = machine.tick(waiting, now=timeout)
    assert t.rollout.pause == Pause(
        kind=PauseKind.TIMEOUT, reason="step 2 (25%) was not approved within 15m", by=SCHEDULER,
        at=timeout, resume_phase=Phase.AWAITING_APPROVAL)
    assert t.message == ("llm-pool-version-2 paused at 10%: step 2 (25%) was not approved "
                         "within 15m.")
    unknown = waiting.model_copy(update={"awaiting_since": None})
    assert machine.tick(unknown, now=timeout).changed is False


def test_a_failed_first_write_ends_the_rollout() -> None:
    r = started()
    d = machine.fail(r, now=T1, reason="boom", actor=ALICE)
    assert d.rollout == r.model_copy(update={
        "phase": Phase.FAILED, "updated_at": T1, "next_due_at": None, "finished_at": T1})
    assert (d.message, d.effect) == ("Rollout r1 failed: boom", None)
    assert _events(d) == [("failed", "U0ALICE", None, None, "boom")]


def test_a_failed_write_of_a_finished_or_paused_rollout_changes_nothing() -> None:
    baking = _baking()
    paused = machine.pause(baking, actor=CAROL, now=T1).rollout
    done = machine.rollback(baking, actor=BOB, now=T1).rollout
    for r in (paused, done):
        assert machine.effect_failed(r, now=T1, reason="boom", actor=BOB) == Decision(
            rollout=r, changed=False, message="boom")
    failed = machine.effect_failed(baking, now=T1, reason="boom", actor=BOB)
    assert failed.rollout.pause is not None and failed.rollout.pause.kind is PauseKind.FAILURE


def test_a_rollback_that_landed_before_a_crash_is_recorded_once() -> None:
    baking = _baking()
    marker = Marker(rollout_id="r1", step=0, state=MarkerState.ROLLED_BACK)
    d = machine.reconcile(baking, Observed(pair=Pair(stable=100, canary=0), marker=marker),
                          now=T1 + timedelta(seconds=5))
    at = T1 + timedelta(seconds=5)
    assert d is not None and d.rollout == baking.model_copy(update={
        "phase": Phase.ROLLED_BACK, "updated_at": at, "next_due_at": None, "finished_at": at})
    assert (d.message, d.effect) == (
        "llm-pool-version-2 was rolled back before a crash; recorded.", None)
    assert _events(d) == [("recovered", "scheduler", 0, 10, "rollback found applied")]


def test_a_rollback_of_a_paused_rollout_found_landed_ends_its_pause() -> None:
    """Status, the CLI and the card read `pause` as "paused now": a rollback recorded from
    the route after a crash ends the pause, as a rollback recorded at once does."""
    paused = machine.pause(_baking(), actor=CAROL, now=T1).rollout
    marker = Marker(rollout_id="r1", step=0, state=MarkerState.ROLLED_BACK)
    d = machine.reconcile(paused, Observed(pair=Pair(stable=100, canary=0), marker=marker),
                          now=T1 + timedelta(seconds=5))
    assert d is not None and d.rollout.phase is Phase.ROLLED_BACK
    assert d.rollout.pause is None and d.rollout.awaiting_since is None


def test_a_last_step_that_landed_before_a_crash_completes_the_rollout() -> None:
    baking = _baking()
    marker = Marker(rollout_id="r1", step=3, state=MarkerState.COMPLETED)
    d = machine.reconcile(baking, Observed(pair=Pair(stable=0, canary=100), marker=marker),
                          now=T1)
    assert d is not None and d.rollout.phase is Phase.COMPLETED and d.rollout.step == 3
    assert d.message == "step 4 (100%) found applied in the cluster; recorded once."
    assert _events(d) == [("recovered", "scheduler", 3, 100,
                           "step 4 (100%) found applied in the cluster; recorded once"),
                          ("completed", "scheduler", 3, 100, "")]
