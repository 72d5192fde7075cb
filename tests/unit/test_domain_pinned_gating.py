"""The analysis gate at its edges: the last step needs none, a missing analysis holds the
step with a reason, a paused rollout is not measured, a rolled-back canary is written no
share, and the recovery record names the analysis to run again."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rollout.domain import gating, machine
from rollout.domain.analysis import SubjectKind
from rollout.domain.canary import AnalysisSetup
from rollout.domain.errors import Conflict
from rollout.domain.models import Baseline, Phase, RecoveryRecord, Rollout
from tests.unit.analysis_builders import spec
from tests.unit.builders import ALICE, BASELINE, BOB, T0, started

SETUP = AnalysisSetup(name="quick", spec=spec(), kind=SubjectKind.ADAPTER, pool="llm-pool",
                      model="small-segment-lora")
LATER = T0 + timedelta(hours=1)


def landed(baseline: Baseline | None = None) -> Rollout:
    """Step 1 (10%) applied at T0, with a 120s bake and an analysis."""
    r = started((10, 50, 100), interval=120, baseline=baseline or BASELINE)
    return machine.approve(r.model_copy(update={"analysis": SETUP}), actor=BOB,
                           now=T0).rollout


def test_no_analysis_starts_at_the_last_step() -> None:
    at_last = landed().model_copy(update={"step": 2})
    assert gating.started(at_last, T0) is None


def test_a_step_whose_analysis_never_started_is_held_with_that_reason() -> None:
    unmeasured = landed().model_copy(update={"step_analysis": None})
    assert gating.holding_back(unmeasured, LATER) == "its canary analysis has not started"
    with pytest.raises(Conflict) as refused:
        machine.approve(unmeasured, actor=BOB, now=LATER)
    assert str(refused.value) == ("step 2 (50%) waits for the canary analysis of step 1 "
                                  "(10%): its canary analysis has not started")


def test_a_paused_rollout_is_not_measured() -> None:
    r = landed()
    assert gating.due(r, LATER)
    paused = machine.pause(r, actor=ALICE, now=T0).rollout
    assert paused.phase is Phase.PAUSED and paused.step_analysis is not None
    assert not gating.due(paused, LATER)


@pytest.mark.parametrize("stable_weight", [100, 0])
def test_a_rolled_back_canary_that_had_no_entry_is_written_no_share(stable_weight: int) -> None:
    baseline = Baseline(stable={"name": "small-segment-lora-v1", "weight": stable_weight},
                        canary=None, stable_weight=stable_weight)
    rolled_back = machine.rollback(landed(baseline), actor=ALICE, now=T0).rollout
    assert rolled_back.phase is Phase.ROLLED_BACK
    assert gating.subject_of(rolled_back).canary_share == 0.0


def test_the_recovery_record_names_the_analysis_by_name_pool_and_model() -> None:
    r = landed()
    assert RecoveryRecord.of(r).analysis == {
        "name": "quick", "pool": "llm-pool", "model": "small-segment-lora"}
    assert RecoveryRecord.of(r.model_copy(update={"analysis": None})).analysis is None
