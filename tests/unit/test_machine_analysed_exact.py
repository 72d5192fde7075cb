"""`machine.analysed` to the letter: the audit events and the sentences a run folded in
produces (who reads them: the card's thread, the audit log), and what it leaves alone."""

from __future__ import annotations

from datetime import datetime, timedelta

from rollout.domain import gating, machine
from rollout.domain.analysis import AnalysisSpec, SubjectKind
from rollout.domain.canary import AnalysisSetup
from rollout.domain.machine import Decision
from rollout.domain.models import Actor, Phase, Rollout
from rollout.domain.verdict import judge
from tests.unit.analysis_builders import results, spec
from tests.unit.builders import BOB, T0, started

SETUP = AnalysisSetup(name="quick", spec=spec(), kind=SubjectKind.POOL)
WHY = "canary analysis `quick` of step 1 (10%)"
#: past the 60 s warm-up, inside the 120 s bake
EARLY = T0 + timedelta(seconds=70)


def landed(*, interval: int = 120, setup: AnalysisSetup = SETUP) -> Rollout:
    """Step 1 (10%) applied at T0 with its analysis started."""
    r = started((10, 50, 100), interval=interval).model_copy(update={"analysis": setup})
    return machine.approve(r, actor=BOB, now=T0).rollout


def fold(r: Rollout, now: datetime, *, err: float = 0.01,
         analysis: AnalysisSpec | None = None) -> Decision:
    """One run at `now` with the canary's error rate `err`, folded into `r`."""
    run = judge(analysis or SETUP.spec, gating.subject_of(r), results(err=(err, 0.01)), at=now)
    return machine.analysed(r, run=run, measured=r.step_analysis, now=now)


def test_a_run_with_nothing_to_measure_leaves_the_rollout_as_it_was() -> None:
    r = landed()
    stale = fold(machine.pause(r, actor=BOB, now=EARLY).rollout, EARLY)
    assert stale.changed is False and stale.message == "no analysis due"
    assert stale.rollout is not None and stale.rollout.phase is Phase.PAUSED
    unmeasured = r.model_copy(update={"step_analysis": None})
    idle = machine.analysed(unmeasured, run=None, measured=None, now=EARLY)
    assert idle.changed is False and idle.rollout is unmeasured


def test_a_pass_inside_the_bake_is_audited_once_with_its_step() -> None:
    first = fold(landed(), EARLY)
    assert first.rollout is not None and first.rollout.phase is Phase.BAKING
    assert first.message == f"{WHY}: 1 passing run"
    (passed,) = first.events
    assert (passed.action, passed.step, passed.percent, passed.detail) == (
        "analysis_passed", 0, 10, "1 passing run")
    assert passed.actor == Actor.scheduler() and passed.at == EARLY
    later = EARLY + timedelta(seconds=30)
    again = fold(first.rollout, later)
    assert again.events == () and again.message == f"{WHY}: 2 passing runs"


def test_a_recheck_without_a_run_judges_the_state_as_it_stands() -> None:
    passed = fold(landed(), EARLY).rollout
    assert passed is not None
    later = EARLY + timedelta(seconds=5)
    recheck = machine.analysed(passed, run=None, measured=passed.step_analysis, now=later)
    assert recheck.rollout is not None
    assert recheck.rollout.step_analysis == passed.step_analysis
    assert recheck.message == f"{WHY}: 1 passing run"


def test_a_run_still_short_of_a_verdict_says_why_it_waits() -> None:
    one_failure = fold(landed(), EARLY, err=0.5)
    assert one_failure.events == () and one_failure.rollout is not None
    assert one_failure.rollout.phase is Phase.BAKING
    assert one_failure.message is not None
    assert one_failure.message.startswith(f"{WHY}: check error-rate failed 1 time")


def test_a_failure_rolls_back_with_the_reason_in_the_audit_and_the_answer() -> None:
    r = fold(landed(), EARLY, err=0.5).rollout
    assert r is not None
    now = EARLY + timedelta(seconds=30)
    failed = fold(r, now, err=0.5)
    assert failed.rollout is not None and failed.rollout.phase is Phase.ROLLED_BACK
    first, rolled_back = failed.events[0], failed.events[1]
    reason = first.detail
    assert reason.startswith("check error-rate failed 2 times, more than the limit of 1")
    assert (first.action, first.step, first.percent, first.actor) == (
        "analysis_failed", 0, 10, Actor.scheduler())
    assert rolled_back.action == "rolled_back" and rolled_back.detail == f"{WHY}: {reason}"
    assert failed.message is not None
    assert failed.message.endswith(f" {WHY}: {reason}")
    assert failed.message != f" {WHY}: {reason}"  # the rollback's own sentence comes first


def test_a_failure_that_pauses_answers_with_the_pause_alone() -> None:
    pausing = spec(on_failure="pause")
    setup = AnalysisSetup(name="quick", spec=pausing, kind=SubjectKind.POOL)
    r = fold(landed(setup=setup), EARLY, err=0.5, analysis=pausing).rollout
    assert r is not None
    now = EARLY + timedelta(seconds=30)
    failed = fold(r, now, err=0.5, analysis=pausing)
    assert failed.rollout is not None and failed.rollout.phase is Phase.PAUSED
    assert [e.action for e in failed.events] == ["analysis_failed", "paused"]
    paused = failed.events[1]
    assert paused.detail.startswith(f"{WHY}: check error-rate failed 2 times")
    assert failed.message is not None and WHY in failed.message
    assert not failed.message.endswith(f"{paused.detail} {paused.detail}")
    assert failed.message.count(WHY) == 1


def test_a_pass_after_the_bake_ended_moves_on_and_says_both() -> None:
    r = landed()
    held = machine.tick(r, now=T0 + timedelta(seconds=120)).rollout
    assert held is not None and held.next_due_at is None
    now = T0 + timedelta(seconds=130)
    moved = fold(held, now)
    assert moved.rollout is not None and moved.rollout.phase is Phase.AWAITING_APPROVAL
    assert moved.rollout.updated_at == now
    assert moved.message is not None
    assert moved.message.startswith(f"{WHY}: 1 passing run. ")
    assert [(e.action, e.step) for e in moved.events] == [
        ("analysis_passed", 0), ("approval_requested", 1)]


def test_a_pass_while_awaiting_approval_does_not_wake_the_scheduler() -> None:
    r = landed()
    held = machine.tick(r, now=T0 + timedelta(seconds=120)).rollout
    assert held is not None
    waiting = fold(held, T0 + timedelta(seconds=130)).rollout
    assert waiting is not None and waiting.phase is Phase.AWAITING_APPROVAL
    assert waiting.next_due_at is None
    now = T0 + timedelta(seconds=160)
    passed = fold(waiting, now)
    assert passed.rollout is not None
    assert passed.rollout.phase is Phase.AWAITING_APPROVAL
    assert passed.rollout.next_due_at is None
    assert passed.message == f"{WHY}: 2 passing runs"
    assert passed.events == ()
