"""The pure state machine: every phase and command, with an injected clock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rollout.domain import machine
from rollout.domain.errors import Conflict, Outdated, Unauthorized
from rollout.domain.machine import ApplyStep, Prepare, Restore
from rollout.domain.models import Click, PauseKind, Phase, Rollout
from rollout.domain.split import Marker, MarkerState, Observed, Pair, expected_pair
from tests.unit.builders import ALICE, BOB, CAROL, T0, started


def test_start_prepares_the_target_and_awaits_the_first_approval() -> None:
    d = machine.start(
        rollout_id="r1", target=started().target, stable="llm-pool", canary="llm-pool-version-2",
        plan=started().plan, baseline=started().baseline, actor=ALICE, now=T0,
    )
    assert isinstance(d.effect, Prepare)
    assert d.rollout.phase is Phase.AWAITING_APPROVAL and d.rollout.step == -1
    assert [e.action for e in d.events] == ["started"]


def test_approval_applies_the_pending_step_then_bakes(rollout: Rollout) -> None:
    r = rollout.model_copy(update={"plan": rollout.plan.model_copy(
        update={"interval_seconds": 600})})
    d = machine.approve(r, actor=BOB, now=T0)
    assert d.effect == ApplyStep(step=0, percent=10)
    assert d.rollout.phase is Phase.BAKING and d.rollout.step == 0
    assert d.rollout.next_due_at == T0 + timedelta(seconds=600)
    assert expected_pair(d.rollout) == Pair(stable=90, canary=10)


def test_starter_cannot_approve_unless_self_approval_is_allowed(rollout: Rollout) -> None:
    with pytest.raises(Unauthorized, match="two-person rule"):
        machine.approve(rollout, actor=ALICE, now=T0)
    d = machine.approve(rollout, actor=ALICE, now=T0, self_approval=True)
    assert isinstance(d.effect, ApplyStep)


def test_second_approval_of_an_applied_step_is_a_no_op_that_says_so(rollout: Rollout) -> None:
    applied = machine.approve(rollout, actor=BOB, now=T0).rollout
    again = machine.approve(applied, actor=CAROL, now=T0,
                            click=Click(rollout_id=applied.id, step=0, epoch=applied.epoch))
    assert not again.changed and again.effect is None
    assert "already applied" in again.message


def test_an_approve_drawn_before_a_pause_and_resume_is_refused(rollout: Rollout) -> None:
    click = Click(rollout_id=rollout.id, step=0, epoch=rollout.epoch)
    paused = machine.pause(rollout, actor=CAROL, now=T0).rollout
    resumed = machine.resume(paused, actor=CAROL, now=T0).rollout
    assert resumed.epoch == rollout.epoch + 2
    with pytest.raises(Outdated, match="paused or resumed since"):
        machine.approve(resumed, actor=BOB, now=T0, click=click)


def test_approval_during_bake_is_refused_with_the_time_it_opens() -> None:
    r = started(interval=600)
    r = machine.approve(r, actor=BOB, now=T0).rollout
    with pytest.raises(Conflict, match="still baking"):
        machine.approve(r, actor=BOB, now=T0 + timedelta(seconds=60))


def test_bake_over_opens_approval_even_without_a_tick() -> None:
    r = machine.approve(started(interval=60), actor=BOB, now=T0).rollout
    d = machine.approve(r, actor=CAROL, now=T0 + timedelta(seconds=61))
    assert d.effect == ApplyStep(step=1, percent=25)


def test_two_distinct_approvers_when_the_plan_asks() -> None:
    r = started(approvals=2)
    first = machine.approve(r, actor=BOB, now=T0)
    assert first.effect is None and "1/2" in first.message
    dup = machine.approve(first.rollout, actor=BOB, now=T0)
    assert not dup.changed and "already approved" in dup.message
    second = machine.approve(first.rollout, actor=CAROL, now=T0)
    assert second.effect == ApplyStep(step=0, percent=10)


def test_tick_applies_an_automatic_step_when_due_and_not_before() -> None:
    r = started(auto=True, interval=30)
    assert r.phase is Phase.AWAITING_APPROVAL and r.needs_plan_approval
    assert not machine.tick(r, now=T0 + timedelta(hours=1)).changed
    r = machine.approve_plan(r, actor=BOB, now=T0).rollout
    d = machine.tick(r, now=T0)
    assert d.effect == ApplyStep(step=0, percent=10)
    r = d.rollout
    assert not machine.tick(r, now=T0 + timedelta(seconds=29)).changed
    assert machine.tick(r, now=T0 + timedelta(seconds=30)).effect == ApplyStep(step=1, percent=25)


def test_automatic_steps_cannot_be_approved() -> None:
    r = machine.approve_plan(started(auto=True, interval=30), actor=BOB, now=T0).rollout
    with pytest.raises(Conflict, match="automatic"):
        machine.approve(r, actor=BOB, now=T0 + timedelta(seconds=31))


def test_tick_requests_approval_after_the_bake() -> None:
    r = machine.approve(started(interval=60), actor=BOB, now=T0).rollout
    d = machine.tick(r, now=T0 + timedelta(seconds=60))
    assert d.rollout.phase is Phase.AWAITING_APPROVAL and d.effect is None
    assert [e.action for e in d.events] == ["approval_requested"]


def test_reminders_repeat_and_the_timeout_pauses() -> None:
    r = started(reminder_seconds=600, approval_timeout_seconds=1800)
    assert r.next_due_at == T0 + timedelta(seconds=600)
    assert not machine.tick(r, now=T0 + timedelta(seconds=599)).changed
    d = machine.tick(r, now=T0 + timedelta(seconds=600))
    assert [e.action for e in d.events] == ["reminder"]
    assert d.rollout.next_due_at == T0 + timedelta(seconds=1200)
    d = machine.tick(d.rollout, now=T0 + timedelta(seconds=1200))
    assert [e.action for e in d.events] == ["reminder"]
    d = machine.tick(d.rollout, now=T0 + timedelta(seconds=1800))
    assert d.rollout.phase is Phase.PAUSED
    assert d.rollout.pause is not None and d.rollout.pause.kind is PauseKind.TIMEOUT


def test_pause_keeps_the_rest_of_the_bake_for_resume() -> None:
    r = machine.approve(started(interval=600), actor=BOB, now=T0).rollout
    paused = machine.pause(r, actor=CAROL, now=T0 + timedelta(seconds=100)).rollout
    assert paused.phase is Phase.PAUSED and paused.next_due_at is None
    assert not machine.tick(paused, now=T0 + timedelta(seconds=10_000)).changed
    resumed = machine.resume(paused, actor=CAROL, now=T0 + timedelta(seconds=5000)).rollout
    assert resumed.phase is Phase.BAKING
    assert resumed.next_due_at == T0 + timedelta(seconds=5500)


def test_paused_rollout_refuses_approval_and_promote(rollout: Rollout) -> None:
    paused = machine.pause(rollout, actor=BOB, now=T0, reason="latency").rollout
    with pytest.raises(Conflict, match="paused"):
        machine.approve(paused, actor=BOB, now=T0)
    with pytest.raises(Conflict, match="paused"):
        machine.promote(paused, actor=BOB, now=T0)
    assert not machine.pause(paused, actor=BOB, now=T0).changed


def test_rollback_restores_from_any_phase_and_is_final(rollout: Rollout) -> None:
    r = machine.approve(rollout, actor=BOB, now=T0).rollout
    d = machine.rollback(r, actor=CAROL, now=T0)
    assert isinstance(d.effect, Restore) and d.rollout.phase is Phase.ROLLED_BACK
    assert not machine.rollback(d.rollout, actor=CAROL, now=T0).changed
    with pytest.raises(Conflict):
        machine.approve(d.rollout, actor=BOB, now=T0)
    assert not machine.tick(d.rollout, now=T0 + timedelta(days=1)).changed


def test_promote_jumps_to_100_and_completes(rollout: Rollout) -> None:
    d = machine.promote(rollout, actor=BOB, now=T0)
    assert d.effect == ApplyStep(step=3, percent=100)
    assert d.rollout.phase is Phase.COMPLETED
    assert expected_pair(d.rollout) == Pair(stable=0, canary=100)


def test_completed_rollout_can_still_roll_back(rollout: Rollout) -> None:
    done = machine.promote(rollout, actor=BOB, now=T0).rollout
    assert isinstance(machine.rollback(done, actor=BOB, now=T0).effect, Restore)


def test_failed_write_pauses_with_the_reason_and_keeps_the_step(rollout: Rollout) -> None:
    d = machine.effect_failed(rollout, now=T0, reason="API 500", actor=BOB)
    assert d.rollout.phase is Phase.PAUSED and d.rollout.step == -1
    assert d.rollout.pause is not None and d.rollout.pause.reason == "API 500"


def test_reconcile_agrees_with_matching_weights(rollout: Rollout) -> None:
    applied = machine.approve(rollout, actor=BOB, now=T0).rollout
    observed = Observed(pair=Pair(stable=90, canary=10),
                        marker=Marker(rollout_id="r1", step=0))
    assert machine.reconcile(applied, observed, now=T0) is None


def test_reconcile_adopts_a_step_that_landed_before_a_crash(rollout: Rollout) -> None:
    observed = Observed(pair=Pair(stable=90, canary=10), marker=Marker(rollout_id="r1", step=0))
    d = machine.reconcile(rollout, observed, now=T0)
    assert d is not None and d.effect is None
    assert d.rollout.step == 0 and [e.action for e in d.events] == ["recovered"]


def test_reconcile_adopts_a_rollback_that_landed_before_a_crash(rollout: Rollout) -> None:
    observed = Observed(pair=Pair(stable=100, canary=0),
                        marker=Marker(rollout_id="r1", step=-1, state=MarkerState.ROLLED_BACK))
    d = machine.reconcile(rollout, observed, now=T0)
    assert d is not None and d.rollout.phase is Phase.ROLLED_BACK


def test_reconcile_pauses_on_drift_and_says_what_it_saw(rollout: Rollout) -> None:
    applied = machine.approve(rollout, actor=BOB, now=T0).rollout
    observed = Observed(pair=Pair(stable=70, canary=30), marker=Marker(rollout_id="r1", step=0))
    d = machine.reconcile(applied, observed, now=T0)
    assert d is not None and d.effect is None
    assert d.rollout.phase is Phase.PAUSED
    assert d.rollout.pause is not None and d.rollout.pause.kind is PauseKind.DRIFT
    assert "stable 70 / canary 30" in d.rollout.pause.reason
    assert machine.reconcile(d.rollout, observed, now=T0) is None  # said once


def test_reconcile_does_not_adopt_weights_that_do_not_match_the_marker(rollout: Rollout) -> None:
    observed = Observed(pair=Pair(stable=80, canary=20), marker=Marker(rollout_id="r1", step=0))
    d = machine.reconcile(rollout, observed, now=T0)
    assert d is not None and d.rollout.phase is Phase.PAUSED and d.rollout.step == -1


def test_an_automatic_plan_waits_for_another_approver_before_any_step() -> None:
    r = started(auto=True, interval=0)
    assert r.phase is Phase.AWAITING_APPROVAL and r.needs_plan_approval
    with pytest.raises(Conflict, match="approve-plan"):
        machine.approve(r, actor=BOB, now=T0)
    with pytest.raises(Unauthorized, match="two-person rule"):
        machine.approve_plan(r, actor=ALICE, now=T0)
    d = machine.approve_plan(r, actor=BOB, now=T0)
    assert d.effect is None and [e.action for e in d.events] == ["plan_approved"]
    assert d.rollout.phase is Phase.BAKING and d.rollout.next_due_at == T0
    assert machine.tick(d.rollout, now=T0).effect == ApplyStep(step=0, percent=10)
    again = machine.approve_plan(d.rollout, actor=CAROL, now=T0)
    assert not again.changed and "already approved" in again.message
    with pytest.raises(Conflict, match="no automatic steps"):
        machine.approve_plan(started(), actor=BOB, now=T0)


def test_the_author_cannot_promote_alone(rollout: Rollout) -> None:
    with pytest.raises(Unauthorized, match="two-person rule"):
        machine.promote(rollout, actor=ALICE, now=T0)
    assert isinstance(machine.promote(rollout, actor=BOB, now=T0).effect, ApplyStep)


def test_one_approver_cannot_promote_a_plan_that_needs_several_per_step() -> None:
    r = started(approvals=2)
    with pytest.raises(Conflict, match=r"needs 2 approvers for a step, and promote would "
                                       r"apply the remaining steps on one"):
        machine.promote(r, actor=BOB, now=T0)
    one = started(approvals=1)
    assert machine.promote(one, actor=BOB, now=T0).rollout.phase is Phase.COMPLETED


def test_an_approve_click_is_refused_only_for_what_a_reviewer_cares_about() -> None:
    r = started(interval=60, approvals=2)
    click = Click(rollout_id=r.id, step=0, epoch=r.epoch)
    first = machine.approve(r, actor=BOB, now=T0, click=click).rollout
    assert first.version == r.version  # the machine leaves versions to the store
    second = machine.approve(first, actor=CAROL, now=T0, click=click)  # same drawing
    assert second.effect == ApplyStep(step=0, percent=10)
    later = Click(rollout_id=r.id, step=1, epoch=r.epoch)
    requested = machine.tick(second.rollout, now=T0 + timedelta(seconds=60)).rollout
    reminded = requested.model_copy(update={"plan": requested.plan.model_copy(
        update={"reminder_seconds": 10})})
    reminded = machine.tick(reminded, now=T0 + timedelta(seconds=75)).rollout
    assert [a.actor.id for a in machine.approve(reminded, actor=BOB, now=T0, click=later)
            .rollout.approvals if a.step == 1] == ["U0BOB"]
    stale = machine.approve(second.rollout, actor=BOB, now=T0, click=click)
    assert not stale.changed and "already applied" in stale.message
    paused = machine.pause(requested, actor=CAROL, now=T0, reason="p99").rollout
    with pytest.raises(Conflict, match="paused: p99"):
        machine.approve(paused, actor=BOB, now=T0, click=later)
    with pytest.raises(Outdated, match="not the pending step"):
        machine.approve(requested, actor=BOB, now=T0,
                        click=Click(rollout_id=r.id, step=2, epoch=r.epoch))


def test_resume_ends_only_the_pause_it_was_drawn_for(rollout: Rollout) -> None:
    with pytest.raises(Conflict, match="not paused"):
        machine.resume(rollout, actor=BOB, now=T0)
    first = machine.pause(rollout, actor=CAROL, now=T0).rollout
    click = Click(rollout_id=rollout.id, step=0, pause=first.epoch)
    resumed = machine.resume(first, actor=BOB, now=T0, click=click).rollout
    again = machine.pause(resumed, actor=CAROL, now=T0, reason="again").rollout
    with pytest.raises(Outdated, match="paused again"):
        machine.resume(again, actor=BOB, now=T0, click=click)
    with pytest.raises(Conflict, match="not paused"):
        machine.resume(resumed, actor=BOB, now=T0, click=click)


def test_a_finished_rollout_never_rolls_back_a_newer_rollouts_rule(rollout: Rollout) -> None:
    done = machine.promote(rollout, actor=BOB, now=T0).rollout
    assert done.phase is Phase.COMPLETED
    with pytest.raises(Conflict, match="now belongs to rollout r2"):
        machine.rollback(done, actor=BOB, now=T0, owner="r2")
    d = machine.rollback(done, actor=BOB, now=T0, owner=done.id)
    assert isinstance(d.effect, Restore)
    assert d.rollout.canary_percent == 0
    assert expected_pair(d.rollout) == Pair(stable=100, canary=0)


def test_drift_pause_keeps_what_the_cluster_showed(rollout: Rollout) -> None:
    applied = machine.approve(rollout, actor=BOB, now=T0).rollout
    seen = Observed(pair=Pair(stable=70, canary=30))
    d = machine.reconcile(applied, seen, now=T0)
    assert d is not None and d.rollout.phase is Phase.PAUSED
    assert d.rollout.pause is not None and d.rollout.epoch == applied.epoch + 1
    assert (d.rollout.pause.seen_stable, d.rollout.pause.seen_canary) == (70, 30)


def test_drift_names_the_manager_that_last_wrote_the_weights() -> None:
    r = started()
    seen = Observed(pair=Pair(stable=70, canary=30), marker=None,
                    writer="argocd-controller (Argo CD) at 2026-01-01T12:00:00Z")
    found = machine.reconcile(r, seen, now=T0)
    assert found is not None and found.rollout.pause is not None
    assert found.rollout.pause.reason.endswith(
        "; last written by argocd-controller (Argo CD) at 2026-01-01T12:00:00Z")


def test_an_old_cards_approve_of_a_rolled_back_rollout_says_it_is_rolled_back() -> None:
    """It said the step "is already applied; nothing to do", while the rollback had taken
    the step's weights away; a completed rollout's step is still already applied."""
    applied = machine.approve(started(), actor=BOB, now=T0).rollout
    back = machine.rollback(applied, actor=CAROL, now=T0).rollout
    with pytest.raises(Conflict, match="is rolled back: nothing to approve"):
        machine.approve(back, actor=BOB, now=T0, click=Click(rollout_id="r1", step=0))
    done = machine.approve(started((100,)), actor=BOB, now=T0).rollout
    assert done.phase is Phase.COMPLETED
    again = machine.approve(done, actor=BOB, now=T0, click=Click(rollout_id="r1", step=0))
    assert not again.changed and again.message.endswith("is already applied; nothing to do.")


def test_a_plan_approved_during_a_freeze_says_its_first_step_waits_for_it() -> None:
    """It said the first step "applies now", and the tick then held it for the freeze."""
    r = started(auto=True)
    frozen = machine.approve_plan(r, actor=BOB, now=T0, frozen="frozen by carol since x: y")
    assert frozen.message == (
        "bob approved the plan of llm-pool-version-2; step 1 (10%) applies once the freeze "
        "is lifted (rollouts are frozen by carol since x: y).")
    assert machine.approve_plan(r, actor=BOB, now=T0).message == (
        "bob approved the plan of llm-pool-version-2; step 1 (10%) applies now.")


def test_a_last_step_found_applied_is_recorded_as_completed_too() -> None:
    """Its save lost, the last step found on the route was recorded without `completed` in
    the history."""
    r = started((10, 100))
    r = machine.approve(r, actor=BOB, now=T0).rollout
    seen = Observed(pair=Pair(stable=0, canary=100),
                    marker=Marker(rollout_id="r1", step=1, state=MarkerState.ACTIVE))
    found = machine.reconcile(r, seen, now=T0)
    assert found is not None and found.rollout.phase is Phase.COMPLETED
    assert [e.action for e in found.events] == ["recovered", "completed"]
    middle = machine.reconcile(started(), Observed(
        pair=Pair(stable=90, canary=10),
        marker=Marker(rollout_id="r1", step=0, state=MarkerState.ACTIVE)), now=T0)
    assert middle is not None and [e.action for e in middle.events] == ["recovered"]
