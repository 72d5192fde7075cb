"""The machine's endings and its reading of the cluster to the letter: retire and the keep
period, a bake held by its analysis, a failed start, a recovered rollout, and what a write's
answer or a reconcile read of the cluster is taken to mean."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rollout.domain import machine
from rollout.domain.analysis import SubjectKind
from rollout.domain.canary import AnalysisSetup
from rollout.domain.errors import Conflict, Unauthorized
from rollout.domain.machine import ApplyStep, Decision, Prepare, Restore
from rollout.domain.models import Actor, Pause, PauseKind, Phase, Rollout, Target, TargetKind
from rollout.domain.plan import build_plan
from rollout.domain.split import Marker, MarkerState, Observed, Pair
from tests.unit.analysis_builders import spec
from tests.unit.builders import ALICE, BASELINE, BOB, CAROL, T0, TARGET, started

T1 = T0 + timedelta(minutes=5)
SCHEDULER = Actor.scheduler()
SETUP = AnalysisSetup(name="quick", spec=spec(), kind=SubjectKind.POOL)
REWRITE = Target(kind=TargetKind.REWRITE, namespace="default", name="rewrites", rule=0)


def completed(*, keep: int = 0, target: Target = TARGET) -> Rollout:
    """Started by alice with a keep period of `keep` seconds, promoted by bob at T0."""
    r = machine.start(rollout_id="r1", target=target, stable="llm-pool",
                      canary="llm-pool-version-2", plan=build_plan((10, 100)),
                      baseline=BASELINE, actor=ALICE, now=T0, keep_seconds=keep).rollout
    return machine.promote(r, actor=BOB, now=T0).rollout


def _event(d: Decision) -> tuple[str, str, int | None, int | None, str]:
    (e,) = d.events
    return (e.action.value, e.actor.id, e.step, e.percent, e.detail)


def test_retire_is_refused_to_the_author_unless_self_approval_is_on() -> None:
    with pytest.raises(Unauthorized) as author:
        machine.retire(completed(), actor=ALICE, now=T1)
    assert str(author.value) == ("alice started this rollout and cannot retire its old pool "
                                 "(two-person rule): ask another approver")
    assert machine.retire(completed(), actor=ALICE, now=T1, self_approval=True).changed


def test_retire_audits_what_left_which_rule_at_the_last_step() -> None:
    d = machine.retire(completed(), actor=CAROL, now=T1)
    assert _event(d) == ("retired", "U0CAROL", 1, 100,
                         "llm-pool removed from HTTPRoute default/routes-to-llm rule 0")


def test_a_second_retire_changes_nothing_and_says_it_was_done() -> None:
    done = machine.retire(completed(), actor=CAROL, now=T1).rollout
    again = machine.retire(done, actor=CAROL, now=T1)
    assert again == Decision(rollout=done, changed=False, message=(
        "llm-pool was already retired from HTTPRoute default/routes-to-llm rule 0."))


def test_retire_of_an_unfinished_rollout_names_its_phase_and_what_would_go() -> None:
    with pytest.raises(Conflict) as waiting:
        machine.retire(started(), actor=CAROL, now=T1)
    assert str(waiting.value) == ("rollout r1 of llm-pool-version-2 is awaiting approval: only "
                                  "a completed rollout retires its old pool")
    rewrite = machine.start(rollout_id="r1", target=REWRITE, stable="llm-pool",
                            canary="llm-pool-version-2", plan=build_plan((10, 100)),
                            baseline=BASELINE, actor=ALICE, now=T0).rollout
    with pytest.raises(Conflict) as adapter:
        machine.retire(rewrite, actor=CAROL, now=T1)
    assert str(adapter.value) == ("rollout r1 of llm-pool-version-2 is awaiting approval: only "
                                  "a completed rollout retires its old adapter")


def test_who_completed_an_adapter_rollout_cannot_retire_its_old_adapter() -> None:
    with pytest.raises(Unauthorized) as completer:
        machine.retire(completed(target=REWRITE), actor=BOB, now=T1)
    assert str(completer.value) == ("bob completed this rollout and cannot retire its old "
                                    "adapter (two-person rule): ask another approver")


def test_a_retire_at_the_end_of_the_keep_period_is_not_early() -> None:
    r = completed(keep=300)
    d = machine.retire(r, actor=CAROL, now=T0 + timedelta(seconds=300))
    assert d.events[0].detail == "llm-pool removed from HTTPRoute default/routes-to-llm rule 0"
    assert d.message.startswith("llm-pool retired: its backendRef")


def test_the_end_of_the_keep_period_is_audited_at_the_last_step() -> None:
    d = machine.keep_over(completed(keep=300), now=T1)
    assert _event(d) == ("keep_ended", "scheduler", 1, 100,
                         "llm-pool was kept for rollback until 2026-01-01 12:05 UTC")


def test_a_keep_period_not_over_yet_tells_nobody() -> None:
    r = completed(keep=600)
    assert machine.keep_over(r, now=T1) == Decision(rollout=r, changed=False, message="")


def test_a_bake_held_by_its_analysis_says_what_it_waits_for() -> None:
    r = started((10, 50, 100), interval=120).model_copy(update={"analysis": SETUP})
    baking = machine.approve(r, actor=BOB, now=T0).rollout
    d = machine.tick(baking, now=T0 + timedelta(seconds=120))
    action, actor, step, percent, detail = _event(d)
    assert (action, actor, step, percent) == ("analysis_awaited", "scheduler", 0, 10)
    assert detail.startswith("step 2 (50%) waits for it: warming up: first run at ")
    assert d.message == f"The bake of step 1 (10%) of llm-pool-version-2 is over; {detail}."


def test_a_failed_start_leaves_nothing_due() -> None:
    r = started(reminder_seconds=300)
    assert r.next_due_at is not None
    assert machine.fail(r, now=T1, reason="boom", actor=ALICE).rollout.next_due_at is None


def test_a_recovered_rollout_keeps_its_analysis_and_says_what_drifted() -> None:
    d = machine.recover(
        rollout_id="r1", target=TARGET, stable="llm-pool", canary="llm-pool-version-2",
        plan=build_plan((10, 50, 100)), baseline=BASELINE, requester=ALICE, created_at=T0,
        step=0, observed=Observed(pair=Pair(stable=70, canary=30)), actor=BOB, now=T1,
        keep_seconds=0,
        analysis=SETUP)
    assert d.rollout.analysis == SETUP
    assert d.rollout.pause == Pause(
        kind=PauseKind.DRIFT, by=BOB, at=T1, resume_phase=Phase.BAKING,
        reason="rebuilt from the route's annotations after the state was lost; check and "
               "resume (the cluster shows stable 70 / canary 30, the step expects stable 90 "
               "/ canary 10)", seen_stable=70, seen_canary=30)


def test_a_lost_answer_counts_as_landed_only_when_marker_and_weights_both_say_so() -> None:
    r = machine.approve(started(), actor=BOB, now=T0).rollout
    back = machine.rollback(r, actor=BOB, now=T1).rollout

    def seen(state: MarkerState, step: int, stable: int, canary: int) -> Observed:
        return Observed(pair=Pair(stable=stable, canary=canary),
                        marker=Marker(rollout_id="r1", step=step, state=state))

    active, rolled_back = MarkerState.ACTIVE, MarkerState.ROLLED_BACK
    assert machine.shows_landed(back, Restore(), seen(rolled_back, 0, 100, 0))
    assert not machine.shows_landed(back, Restore(), seen(active, 0, 100, 0))
    assert not machine.shows_landed(back, Restore(), seen(rolled_back, 0, 90, 10))
    assert machine.shows_landed(started(), Prepare(), seen(active, -1, 100, 0))
    assert not machine.shows_landed(started(), Prepare(), seen(active, 0, 100, 0))
    assert machine.shows_landed(r, ApplyStep(step=0, percent=10), seen(active, 0, 90, 10))
    assert not machine.shows_landed(r, ApplyStep(step=0, percent=10), seen(active, 0, 75, 25))


def test_a_rollback_over_a_later_step_records_only_this_rollout_s_landed_steps() -> None:
    r = machine.approve(started(), actor=BOB, now=T0).rollout

    def over(rollout_id: str, step: int, state: MarkerState = MarkerState.ACTIVE) -> Observed:
        return Observed(pair=Pair(stable=100, canary=0),
                        replaced=Marker(rollout_id=rollout_id, step=step, state=state))

    (last,) = machine.overtaken(r, over("r1", 3), now=T1)
    assert (last.action, last.actor, last.step, last.percent, last.detail) == (
        "recovered", SCHEDULER, 3, 100, "step 4 (100%) landed before the rollback took over "
        "and was not recorded; the rollback undid it")
    assert machine.overtaken(r, over("r0", 2), now=T1) == ()
    assert machine.overtaken(r, over("r1", 2, MarkerState.ROLLED_BACK), now=T1) == ()
    assert machine.overtaken(r, over("r1", 0), now=T1) == ()


def test_a_retire_that_landed_before_a_crash_is_recorded_once() -> None:
    done = completed()
    marker = Marker(rollout_id="r1", step=1, state=MarkerState.RETIRED)
    d = machine.reconcile(done, Observed(pair=Pair(stable=0, canary=100), marker=marker),
                          now=T1)
    assert d is not None
    assert d.rollout == done.model_copy(update={
        "updated_at": T1, "retired_at": T1, "retired_by": SCHEDULER})
    assert (d.message, d.effect) == ("llm-pool was retired before a crash; recorded.", None)
    assert _event(d) == ("recovered", "scheduler", 1, 100, "retire found applied")


def test_another_rollout_s_marker_is_never_adopted_as_a_landed_step() -> None:
    baking = machine.approve(started(), actor=BOB, now=T0).rollout
    marker = Marker(rollout_id="r0", step=1)
    d = machine.reconcile(baking, Observed(pair=Pair(stable=75, canary=25), marker=marker),
                          now=T1)
    assert d is not None and d.rollout.step == 0
    assert d.rollout.pause is not None and d.rollout.pause.kind is PauseKind.DRIFT


def test_a_step_found_landed_after_a_failure_pause_ends_the_pause() -> None:
    baking = machine.approve(started(), actor=BOB, now=T0).rollout
    paused = machine.effect_failed(baking, now=T0, reason="timeout", actor=BOB).rollout
    for step, pair in ((1, Pair(stable=75, canary=25)), (3, Pair(stable=0, canary=100))):
        found = machine.reconcile(paused, Observed(pair=pair, marker=Marker(
            rollout_id="r1", step=step)), now=T1)
        assert found is not None and found.rollout.step == step
        assert found.rollout.phase is not Phase.PAUSED and found.rollout.pause is None
