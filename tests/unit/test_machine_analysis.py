"""The state machine's analysis gate as pure functions on a manual clock: a step's analysis
starts when it lands, holds the end of the bake, and a run folded in acts on its verdict."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rollout.domain import gating, machine
from rollout.domain.analysis import SubjectKind
from rollout.domain.canary import AnalysisSetup
from rollout.domain.errors import Conflict
from rollout.domain.models import Phase, Rollout
from rollout.domain.verdict import judge
from tests.unit.analysis_builders import results, spec
from tests.unit.builders import ALICE, BOB, T0, started

SETUP = AnalysisSetup(name="quick", spec=spec(), kind=SubjectKind.POOL)


def landed() -> Rollout:
    """Step 1 (10%) applied at T0, with a 120s bake and the analysis of `spec()`."""
    r = started((10, 50, 100), interval=120).model_copy(update={"analysis": SETUP})
    return machine.approve(r, actor=BOB, now=T0).rollout


def test_a_landed_step_starts_its_analysis_and_the_last_step_needs_none() -> None:
    r = landed()
    assert r.step_analysis is not None and r.step_analysis.step == 0
    assert r.step_analysis.started_at == T0
    assert gating.holding_back(r, T0) is not None
    done = machine.promote(r, actor=BOB, now=T0, skip_analysis=True).rollout
    assert done.phase is Phase.COMPLETED and gating.holding_back(done, T0) is None


def test_promote_is_refused_while_the_analysis_does_not_pass_unless_told() -> None:
    """All of the traffic to a canary nothing measured as healthy: only on purpose, and
    the audit says what was skipped."""
    r = landed()
    with pytest.raises(Conflict) as refused:
        machine.promote(r, actor=BOB, now=T0 + timedelta(seconds=10))
    assert str(refused.value) == (
        "the canary analysis of llm-pool-version-2 does not pass: warming up: first run at "
        "12:01:30 UTC. Promote skips it only when told (`--skip-analysis`, "
        "audited), or wait for it to pass")
    done = machine.promote(r, actor=BOB, now=T0 + timedelta(seconds=10), skip_analysis=True)
    [promoted] = [e for e in done.events if e.action == "promoted"]
    assert promoted.detail == ("from 10%, skipping its canary analysis (warming up: first run "
                               "at 12:01:30 UTC)")


def test_promote_of_a_canary_whose_analysis_passed_needs_no_flag() -> None:
    r = landed()
    now = T0 + timedelta(seconds=130)
    run = judge(SETUP.spec, gating.subject_of(r), results(), at=now)
    passed = machine.analysed(r, run=run, measured=r.step_analysis, now=now).rollout
    assert gating.holding_back(passed, now) is None
    done = machine.promote(passed, actor=BOB, now=now)
    assert done.rollout.phase is Phase.COMPLETED
    [promoted] = [e for e in done.events if e.action == "promoted"]
    assert promoted.detail == "from 10%"


def test_the_end_of_the_bake_is_held_until_a_run_passes() -> None:
    r = landed()
    held = machine.tick(r, now=T0 + timedelta(seconds=120))
    assert held.rollout.phase is Phase.BAKING and held.rollout.next_due_at is None
    assert [e.action for e in held.events] == ["analysis_awaited"]
    with pytest.raises(Conflict, match="waits for the canary analysis"):
        machine.approve(held.rollout, actor=BOB, now=T0 + timedelta(seconds=121))
    now = T0 + timedelta(seconds=130)
    subject = gating.subject_of(held.rollout)
    assert subject.canary_share == pytest.approx(0.10)
    run = judge(SETUP.spec, subject, results(), at=now)
    moved = machine.analysed(held.rollout, run=run, measured=held.rollout.step_analysis,
                             now=now)
    assert moved.rollout.phase is Phase.AWAITING_APPROVAL
    assert [e.action for e in moved.events] == ["analysis_passed", "approval_requested"]


def test_a_run_measured_on_another_state_changes_nothing() -> None:
    r = landed()
    now = T0 + timedelta(seconds=90)
    run = judge(SETUP.spec, gating.subject_of(r), results(err=(0.5, 0.0)), at=now)
    resumed = machine.resume(machine.pause(r, actor=ALICE, now=now).rollout, actor=BOB,
                             now=now)
    assert machine.analysed(resumed.rollout, run=run, measured=r.step_analysis,
                            now=now).changed is False
