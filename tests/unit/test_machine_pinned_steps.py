"""The machine's steps to the letter where the other machine tests leave room: what a landed
step clears, the sentences of start and approve-plan, the refusals of a step held by its
analysis, and what pause and resume leave behind."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rollout.domain import gating, machine
from rollout.domain.analysis import SubjectKind
from rollout.domain.canary import AnalysisSetup
from rollout.domain.errors import Conflict
from rollout.domain.models import Gate, Phase, Rollout, Step
from rollout.domain.plan import build_plan
from rollout.domain.split import Observed, Pair
from rollout.domain.verdict import StepAnalysis, judge
from tests.unit.analysis_builders import results, spec
from tests.unit.builders import ALICE, BASELINE, BOB, CAROL, T0, TARGET, started

T1 = T0 + timedelta(minutes=5)
SETUP = AnalysisSetup(name="quick", spec=spec(), kind=SubjectKind.POOL)


def analysed_baking(*, auto: bool = False) -> Rollout:
    """Step 1 (10%) of 10/50/100 applied at T0 with a 120 s bake and its analysis started."""
    r = started((10, 50, 100), interval=120, auto=auto).model_copy(update={"analysis": SETUP})
    if auto:
        r = machine.approve_plan(r, actor=BOB, now=T0).rollout
        return machine.tick(r, now=T0).rollout
    return machine.approve(r, actor=BOB, now=T0).rollout


def test_a_step_approved_after_reminders_starts_its_bake_with_no_reminder_left() -> None:
    waiting = started(interval=60, reminder_seconds=300)
    reminded = machine.tick(waiting, now=T0 + timedelta(seconds=300)).rollout
    assert reminded.last_reminder_at == T0 + timedelta(seconds=300)
    baking = machine.approve(reminded, actor=BOB, now=T1 + timedelta(minutes=1)).rollout
    assert baking.phase is Phase.BAKING and baking.last_reminder_at is None


def test_approving_the_last_awaited_step_completes_with_nothing_awaited_or_held() -> None:
    waiting = started((50, 100)).model_copy(update={"held": "waits for capacity"})
    step1 = machine.approve(waiting, actor=BOB, now=T0).rollout
    awaiting = machine.tick(step1, now=T0).rollout
    assert awaiting.awaiting_since == T0
    done = machine.approve(awaiting.model_copy(update={"held": "a freeze"}), actor=CAROL,
                           now=T1).rollout
    assert done.phase is Phase.COMPLETED
    assert (done.awaiting_since, done.held, done.pause) == (None, "", None)


def test_a_rollout_starts_without_gitops_leave_unless_asked() -> None:
    assert started().allow_gitops is False


def test_an_automatic_plan_s_start_says_who_must_approve_the_plan() -> None:
    d = machine.start(rollout_id="r1", target=TARGET, stable="llm-pool",
                      canary="llm-pool-version-2", plan=build_plan((10, 100), auto=True),
                      baseline=BASELINE, actor=ALICE, now=T0)
    assert d.message == (
        "Rollout r1 started: llm-pool → llm-pool-version-2; step 1 (10%) waits until an "
        "approver other than alice approves the plan (`approve-plan`), because later steps "
        "apply without a per-step approval. No canary analysis: steps are not gated on "
        "metrics (the bot has no PROMETHEUS_URL).")


def test_a_start_with_an_analysis_says_it_gates_every_step() -> None:
    d = machine.start(rollout_id="r1", target=TARGET, stable="llm-pool",
                      canary="llm-pool-version-2", plan=build_plan((10, 100)),
                      baseline=BASELINE, actor=ALICE, now=T0, analysis=SETUP)
    assert d.message == (
        "Rollout r1 started: llm-pool → llm-pool-version-2; step 1 (10%) awaits approval. "
        "Canary analysis `quick` must pass after each step before the next is requested "
        "or applied.")


def test_approving_a_plan_whose_next_step_still_needs_people_does_not_say_it_applies() -> None:
    plan = build_plan((10, 50, 100))
    plan = plan.model_copy(update={"steps": (
        plan.steps[0], Step(percent=50, gate=Gate.AUTO), plan.steps[2])})
    r = machine.start(rollout_id="r1", target=TARGET, stable="llm-pool",
                      canary="llm-pool-version-2", plan=plan, baseline=BASELINE, actor=ALICE,
                      now=T0).rollout
    d = machine.approve_plan(r, actor=BOB, now=T1)
    assert d.rollout.phase is Phase.AWAITING_APPROVAL
    assert d.message == "bob approved the plan of llm-pool-version-2."


def recovered_held(**plan_options: int) -> Rollout:
    """An automatic rollout rebuilt at step 1 (10%) of 10/50/100 with its analysis (its plan
    approval is not on the record), resumed at T0: the analysis holds the next step."""
    plan = build_plan((10, 50, 100), interval_seconds=120, auto=True)
    recovered = machine.recover(
        rollout_id="r1", target=TARGET, stable="llm-pool", canary="llm-pool-version-2",
        plan=plan.model_copy(update=plan_options), baseline=BASELINE, requester=ALICE,
        created_at=T0, step=0, observed=Observed(pair=Pair(stable=90, canary=10)), actor=BOB,
        now=T0, keep_seconds=0, analysis=SETUP).rollout
    held = machine.resume(recovered, actor=BOB, now=T0).rollout
    assert held.phase is Phase.BAKING and held.needs_plan_approval
    return held


def test_a_plan_approved_while_its_step_is_held_by_the_analysis_says_what_it_waits_for() -> None:
    d = machine.approve_plan(recovered_held(), actor=BOB, now=T1)
    assert d.rollout.updated_at == T1 and d.rollout.plan_approval is not None
    assert (d.rollout.phase, d.rollout.next_due_at) == (Phase.BAKING, None)
    assert d.message == (
        "bob approved the plan of llm-pool-version-2; step 2 (50%) waits for the canary "
        "analysis of step 1 (10%): warming up: first run at 12:01:30 UTC.")


def test_a_plan_approved_while_its_step_awaits_an_inconclusive_analysis_holds_the_step() -> None:
    held = recovered_held(reminder_seconds=600)
    at = T0 + timedelta(seconds=70)
    run = judge(SETUP.spec, gating.subject_of(held), results(), at=at)
    waiting = machine.analysed(held, run=run, measured=held.step_analysis, now=at).rollout
    assert waiting.phase is Phase.AWAITING_APPROVAL and waiting.next_due_at is not None
    later = at + timedelta(seconds=30)
    unsure = judge(SETUP.spec, gating.subject_of(waiting), results(requests=(10, 90)), at=later)
    waiting = machine.analysed(waiting, run=unsure, measured=waiting.step_analysis,
                               now=later).rollout
    assert waiting.phase is Phase.AWAITING_APPROVAL
    d = machine.approve_plan(waiting, actor=CAROL, now=T1)
    assert (d.rollout.phase, d.rollout.next_due_at) == (Phase.BAKING, None)
    assert d.message.startswith(
        "carol approved the plan of llm-pool-version-2; step 2 (50%) waits for the canary "
        "analysis of step 1 (10%): inconclusive, waiting: ")


def test_an_automatic_step_held_by_its_analysis_says_it_waits_for_the_analysis() -> None:
    r = analysed_baking(auto=True)
    held = machine.tick(r, now=T0 + timedelta(seconds=120)).rollout
    assert held.next_due_at is None
    with pytest.raises(Conflict) as refused:
        machine.approve(held, actor=CAROL, now=T0 + timedelta(seconds=121))
    assert str(refused.value) == (
        "step 2 (50%) is automatic; it applies once the canary analysis of step 1 (10%) "
        "passes (warming up: first run at 12:01:30 UTC); promote skips ahead")


def test_an_analysed_step_still_baking_refuses_approval_with_the_time_left() -> None:
    with pytest.raises(Conflict) as refused:
        machine.approve(analysed_baking(), actor=CAROL, now=T0 + timedelta(seconds=10))
    assert str(refused.value) == ("step 1 (10%) is still baking for 1m50s; approval of "
                                  "step 2 (50%) opens at 12:02:00 UTC")


def test_at_the_end_of_the_bake_an_unpassed_analysis_is_what_refuses_approval() -> None:
    with pytest.raises(Conflict) as refused:
        machine.approve(analysed_baking(), actor=CAROL, now=T0 + timedelta(seconds=120))
    assert str(refused.value).startswith(
        "step 2 (50%) waits for the canary analysis of step 1 (10%): warming up")


def test_an_inconclusive_analysis_at_the_end_of_the_bake_refuses_approval() -> None:
    r = analysed_baking()
    at = T0 + timedelta(seconds=70)
    run = judge(SETUP.spec, gating.subject_of(r), results(requests=(10, 90)), at=at)
    unsure = machine.analysed(r, run=run, measured=r.step_analysis, now=at).rollout
    assert unsure.phase is Phase.BAKING and unsure.next_due_at is not None
    with pytest.raises(Conflict) as refused:
        machine.approve(unsure, actor=CAROL, now=T0 + timedelta(seconds=130))
    assert str(refused.value).startswith(
        "step 2 (50%) waits for the canary analysis of step 1 (10%): inconclusive, waiting")


def test_an_approval_after_an_unnoticed_bake_end_awaits_since_the_bake_ended() -> None:
    baking = machine.approve(started(interval=60, approvals=2), actor=BOB, now=T0)
    baking = machine.approve(baking.rollout, actor=CAROL, now=T0)
    d = machine.approve(baking.rollout, actor=BOB, now=T1)
    assert d.rollout.phase is Phase.AWAITING_APPROVAL
    assert d.rollout.awaiting_since == T0 + timedelta(seconds=60)
    assert d.message == "bob approved step 2 (25%): 1/2 approvals."


def test_a_pause_clears_why_the_pending_step_was_held() -> None:
    held = machine.approve(started(), actor=BOB, now=T0).rollout.model_copy(
        update={"held": "waits for capacity"})
    assert machine.pause(held, actor=CAROL, now=T1).rollout.held == ""


def test_a_resume_with_a_second_of_bake_left_finishes_that_second() -> None:
    baking = machine.approve(started(interval=60), actor=BOB, now=T0).rollout
    paused = machine.pause(baking, actor=CAROL, now=T0 + timedelta(seconds=59)).rollout
    d = machine.resume(paused, actor=BOB, now=T1)
    assert d.rollout.phase is Phase.BAKING
    assert d.rollout.next_due_at == T1 + timedelta(seconds=1)


def test_a_resume_after_the_bake_starts_the_analysis_over_and_holds_the_next_step() -> None:
    r = analysed_baking()
    paused = machine.pause(r, actor=CAROL, now=T0 + timedelta(seconds=200)).rollout
    d = machine.resume(paused, actor=BOB, now=T1)
    assert d.rollout == paused.model_copy(update={
        "phase": Phase.BAKING, "epoch": 2, "updated_at": T1, "pause": None,
        "next_due_at": None, "step_analysis": StepAnalysis(step=0, started_at=T1)})


def test_a_resume_after_reminders_reminds_again_only_after_the_reminder_interval() -> None:
    waiting = started(interval=60, reminder_seconds=300, approval_timeout_seconds=900)
    reminded = machine.tick(waiting, now=T0 + timedelta(seconds=300)).rollout
    paused = machine.tick(reminded, now=T0 + timedelta(seconds=900)).rollout
    assert paused.phase is Phase.PAUSED and paused.last_reminder_at is not None
    at = T0 + timedelta(hours=1)
    resumed = machine.resume(paused, actor=BOB, now=at).rollout
    assert resumed.phase is Phase.AWAITING_APPROVAL and resumed.last_reminder_at is None
    assert machine.tick(resumed, now=at + timedelta(seconds=1)).changed is False
