"""The analysis verdict at its edges: a missing stable figure, a sample count of zero, the
split at its thresholds, the warm-up window, and the reasons a person reads when a step's
record is incomplete."""

from __future__ import annotations

import math
from datetime import timedelta

from rollout.domain.analysis import QueryResult, ResultKind, SplitVerification
from rollout.domain.verdict import (
    Action,
    CheckResult,
    Outcome,
    Run,
    Status,
    StepAnalysis,
    Verdict,
    advance,
    judge,
    judge_check,
    verify_split,
)
from tests.unit.analysis_builders import POOL, results, spec
from tests.unit.builders import T0
from tests.unit.fakes import FakeAnalysis

S = spec()
ERROR_RATE, TTFT = S.checks
WARM = T0 + S.warmup


def test_an_absolute_check_failing_without_a_stable_figure_shows_the_stable_as_n_a() -> None:
    data = results(err=(0.5, 0.0))
    del data["error-rate/stable"]
    assert judge_check(ERROR_RATE, S, data) == CheckResult(
        name="error-rate", status=Status.FAIL, canary=0.5, stable=None, threshold=0.02,
        bound="at most 0.02", canary_samples=100, stable_samples=900,
        reason="canary 0.5 is not at most 0.02 (threshold 0.02; stable n/a)")


def test_zero_samples_are_fewer_than_a_minimum_of_one() -> None:
    found = judge_check(ERROR_RATE, spec(min_samples=1), results(requests=(0, 900)))
    assert found.status is Status.INCONCLUSIVE
    assert found.reason == "canary had 0 samples, fewer than 1"


def test_a_relative_check_missing_both_sides_lists_both_problems() -> None:
    data = {k: v for k, v in results().items() if not k.startswith("ttft-p95/")}
    found = judge_check(TTFT, S, data)
    assert found.status is Status.INCONCLUSIVE
    assert found.reason == ("canary: the query was not asked; "
                            "stable: the query was not asked")


def test_a_stable_figure_that_is_not_a_number_gives_no_threshold() -> None:
    data = results() | {"ttft-p95/stable": QueryResult(kind=ResultKind.VALUE, value=math.nan)}
    found = judge_check(TTFT, S, data)
    assert found.status is Status.INCONCLUSIVE
    assert found.threshold is None
    assert found.reason == "no threshold (stable value missing)"


def test_a_split_with_one_request_count_missing_is_inconclusive() -> None:
    """Only the side that is missing is named."""
    data = results()
    del data["requests/canary"]
    found = verify_split(SplitVerification(), POOL, data)
    assert found.status is Status.INCONCLUSIVE
    assert found.observed is None and found.requests is None
    assert found.reason == "request count unknown: canary (the query was not asked)"


def test_exactly_the_minimum_of_requests_is_enough_to_judge_the_split() -> None:
    found = verify_split(SplitVerification(min_requests=200), POOL,
                         results(requests=(20, 180)))
    assert found.status is Status.PASS
    assert found.requests == 200 and found.observed == 0.1


def test_a_split_off_by_exactly_the_allowed_difference_passes() -> None:
    at_zero = POOL.model_copy(update={"canary_share": 0.0})
    found = verify_split(SplitVerification(tolerance=0.25, min_requests=200), at_zero,
                         results(requests=(50, 150)))
    assert found.status is Status.PASS
    assert found.reason == ("canary received 25.0% of 200 requests; the route says 0.0% "
                            "(allowed difference 25.0%)")


def test_a_run_right_at_the_end_of_the_warm_up_measures_one_second() -> None:
    assert StepAnalysis(step=0, started_at=T0).window(S, WARM) == timedelta(seconds=1)


def test_a_recorded_run_sets_when_the_next_one_is_due() -> None:
    at = WARM + timedelta(seconds=45)
    state = StepAnalysis(step=0, started_at=T0).record(S, judge(S, POOL, results(), at=at))
    assert state.last_run_at == at
    assert not state.due(S, at)
    assert state.next_due(S) == at + S.interval


def test_a_failure_after_an_inconclusive_run_ends_the_inconclusive_streak() -> None:
    state = StepAnalysis(step=0, started_at=T0)
    first, second = WARM + timedelta(seconds=30), WARM + timedelta(seconds=60)
    state = state.record(S, judge(S, POOL, results(requests=(10, 90)), at=first))
    assert state.inconclusive_since == first
    state = state.record(S, judge(S, POOL, results(err=(0.5, 0.0)), at=second))
    assert state.inconclusive_since is None
    assert state.verdict(S, second).reason == (
        "check error-rate failed 1 time (limit 1): "
        "canary 0.5 is not at most 0.02 (threshold 0.02; stable 0)")


def test_failures_past_the_limit_without_the_failing_run_still_give_a_reason() -> None:
    state = StepAnalysis(step=0, started_at=T0, failures=2)
    assert state.verdict(S, WARM) == Verdict(
        outcome=Outcome.FAILED, action=Action.ROLLBACK, failing=None, latest=None, split=None,
        reason="check ? failed 2 times, more than the limit of 1: ")


def test_a_run_without_any_check_waits_as_plainly_inconclusive() -> None:
    at = WARM + timedelta(seconds=30)
    state = StepAnalysis(step=0, started_at=T0).record(S, Run(at=at, checks=()))
    found = state.verdict(S, at)
    assert found.action is Action.WAIT
    assert found.reason == "inconclusive, waiting: inconclusive"


def test_a_sweep_pauses_on_an_inconclusive_streak_past_its_timeout() -> None:
    at = WARM + timedelta(seconds=30)
    state = StepAnalysis(step=0, started_at=T0).record(S, Run(at=at, checks=()))
    state = state.model_copy(update={"last_run_at": at + S.inconclusive_timeout})
    _, found = advance(S, POOL, state, FakeAnalysis(), at + S.inconclusive_timeout)
    assert found.outcome is Outcome.INCONCLUSIVE and found.action is Action.PAUSE
    assert found.reason == "inconclusive for 10m (limit 10m): inconclusive"
