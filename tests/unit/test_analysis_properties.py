"""Properties of a step's analysis over any sequence of runs (hypothesis): inconclusive never
passes, a failure past the limit is final, and only a passing latest run proceeds."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from rollout.domain.analysis import QueryResult, ResultKind
from rollout.domain.clock import ManualClock
from rollout.domain.verdict import Action, Status, StepAnalysis, judge
from tests.unit.analysis_builders import POOL, results, spec

SPEC = spec(failure_limit=1, passes_required=2, inconclusive_timeout="2m", split=None)

RUNS = {
    "pass": results(),
    "fail": results(err=(0.5, 0.0)),
    "few": results(requests=(3, 900)),
    "gone": {k: QueryResult(kind=ResultKind.UNAVAILABLE, reason="unreachable")
             for k in results()},
}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(sorted(RUNS)), st.integers(0, 90)), max_size=25))
def test_any_sequence_of_runs(sequence: list[tuple[str, int]]) -> None:
    clock = ManualClock()
    state = StepAnalysis(step=1, started_at=clock.now())
    failed_past_limit = False
    for name, wait in sequence:
        clock.advance(wait)
        run = judge(SPEC, POOL, RUNS[name], at=clock.now())
        state = state.record(SPEC, run)
        verdict = state.verdict(SPEC, clock.now())
        counted = clock.now() >= state.started_at + SPEC.warmup
        failed_past_limit |= counted and state.failures > SPEC.failure_limit
        if failed_past_limit:
            assert verdict.action is Action.ROLLBACK  # final, whatever passes follow
            assert verdict.failing is not None and verdict.failing.name == "error-rate"
            continue
        if verdict.action is Action.PROCEED:
            assert counted and name == "pass" and state.latest is not None
            assert state.latest.status is Status.PASS and state.passes_in_row >= 2
        if name in ("few", "gone") and counted:
            assert verdict.action in (Action.WAIT, Action.PAUSE)  # never a pass
        if verdict.action is Action.PAUSE:
            assert state.inconclusive_since is not None
            assert clock.now() - state.inconclusive_since >= timedelta(minutes=2)
            assert "inconclusive for" in verdict.reason
