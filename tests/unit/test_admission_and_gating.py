"""The small pure pieces the service asks before a step: which gates apply to a target, and
what the analysis of a step measures; stated whole, field by field."""

from __future__ import annotations

from rollout.domain import gating
from rollout.domain.admission import request_for, rewrite_of, route_of
from rollout.domain.analysis import SubjectKind
from rollout.domain.canary import AnalysisSetup
from rollout.domain.models import Phase, Target, TargetKind
from rollout.domain.preflight import PreflightRequest
from tests.unit.analysis_builders import spec
from tests.unit.builders import BASELINE, T0, TARGET, started

REWRITE = Target(kind=TargetKind.REWRITE, namespace="default", name="food-review", rule=2,
                 api_group="llm-d.ai")


def test_a_pool_rollout_is_gated_on_its_pools_in_the_routes_group() -> None:
    assert route_of(TARGET) == "routes-to-llm" and rewrite_of(TARGET) is None
    assert request_for(target=TARGET, stable="s", canary="c", baseline=BASELINE,
                       share_percent=25, allow_gitops=True) == PreflightRequest(
        stable="s", canary="c", pool_group="inference.networking.k8s.io", share_percent=25,
        allow_gitops=True)


def test_an_adapter_rollout_is_gated_on_its_rewrite_and_rule() -> None:
    assert route_of(REWRITE) is None and rewrite_of(REWRITE) == "food-review"
    assert request_for(target=REWRITE, stable="a1", canary="a2", baseline=BASELINE,
                       share_percent=None, allow_gitops=False) == PreflightRequest(
        stable="a1", canary="a2", rewrite="food-review", rule=2, rewrite_group="llm-d.ai",
        share_percent=None, allow_gitops=False)


def _analysed(kind: SubjectKind, steps: tuple[int, ...] = (10, 50, 100), step: int = 0):  # type: ignore[no-untyped-def]
    setup = AnalysisSetup(name="quick", spec=spec(), kind=kind, pool="pool-a", model="m")
    r = started(steps).model_copy(update={"analysis": setup, "step": step,
                                          "phase": Phase.BAKING})
    return r


def test_the_subject_of_a_pool_step_is_its_pools_and_the_written_share() -> None:
    subject = gating.subject_of(_analysed(SubjectKind.POOL, step=1))
    assert (subject.kind, subject.namespace, subject.stable, subject.canary, subject.pool,
            subject.model, subject.canary_share) == (
        SubjectKind.POOL, "default", "llm-pool", "llm-pool-version-2", "", "m", 0.5)


def test_the_subject_of_an_adapter_step_names_the_pool_serving_both() -> None:
    subject = gating.subject_of(_analysed(SubjectKind.ADAPTER, step=0))
    assert (subject.pool, subject.canary_share) == ("pool-a", 0.1)


def test_no_analysis_runs_for_a_step_it_did_not_start_on() -> None:
    r = _analysed(SubjectKind.POOL)
    assert gating.current(r) is None and gating.verdict(r, T0) is None
    assert not gating.due(r, T0)
    state = gating.started(r, T0)
    assert state is not None
    measuring = r.model_copy(update={"step_analysis": state})
    assert gating.current(measuring) == state
    assert gating.current(measuring.model_copy(update={"step": 1})) is None
    assert not gating.due(measuring.model_copy(update={"phase": Phase.PAUSED}), T0)
    assert not gating.due(measuring.model_copy(update={"analysis": None}), T0)
