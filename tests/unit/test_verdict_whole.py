"""A step's verdict stated whole: outcome, action, the failing check, the latest run, the
split it measured and the reason, for each place the precedence can land."""

from __future__ import annotations

from datetime import timedelta

from rollout.domain.analysis import AnalysisSpec, QueryResult
from rollout.domain.clock import ManualClock
from rollout.domain.verdict import Action, Outcome, StepAnalysis, Verdict, judge
from tests.unit.analysis_builders import POOL, results, spec

ERR = "canary 0.5 is not at most 0.02 (threshold 0.02; stable 0)"


def _after(s: AnalysisSpec, *runs: dict[str, QueryResult]) -> tuple[StepAnalysis, ManualClock]:
    clock = ManualClock()
    state = StepAnalysis(step=1, started_at=clock.now())
    for data in runs:
        clock.advance(60)
        state = state.record(s, judge(s, POOL, data, at=clock.now()))
    return state, clock


def test_a_failure_past_the_limit_names_the_check_and_the_split_of_the_latest_run() -> None:
    s = spec(failure_limit=0)
    state, clock = _after(s, results(err=(0.5, 0.0)))
    latest = state.latest
    assert latest is not None and latest.failing is not None
    assert state.verdict(s, clock.now()) == Verdict(
        outcome=Outcome.FAILED, action=Action.ROLLBACK, failing=latest.failing, latest=latest,
        split=latest.split,
        reason=f"check error-rate failed 1 time, more than the limit of 0: {ERR}")


def test_a_failure_within_the_limit_waits_and_says_how_many() -> None:
    s = spec(failure_limit=2)
    state, clock = _after(s, results(err=(0.5, 0.0)))
    latest = state.latest
    assert latest is not None
    assert state.verdict(s, clock.now()) == Verdict(
        outcome=Outcome.PENDING, action=Action.WAIT, failing=latest.failing, latest=latest,
        split=latest.split, reason=f"check error-rate failed 1 time (limit 2): {ERR}")


def test_a_split_mismatch_keeps_the_split_that_was_wrong() -> None:
    s = spec()
    state, clock = _after(s, results(requests=(500, 500)), results())
    assert state.mismatch is not None
    assert state.verdict(s, clock.now()) == Verdict(
        outcome=Outcome.SPLIT_MISMATCH, action=Action.PAUSE, split=state.mismatch,
        latest=state.latest,
        reason="split mismatch: canary received 50.0% of 1000 requests; the route says 10.0% "
               "(allowed difference 7.8%)")


def test_a_pass_and_a_partial_pass() -> None:
    passed, clock = _after(spec(), results())
    latest = passed.latest
    assert latest is not None
    assert passed.verdict(spec(), clock.now()) == Verdict(
        outcome=Outcome.PASSED, action=Action.PROCEED, latest=latest, split=latest.split,
        reason="1 passing run")
    three = spec(passes_required=3)
    partial, clock = _after(three, results())
    assert partial.verdict(three, clock.now()) == Verdict(
        outcome=Outcome.PENDING, action=Action.WAIT, latest=partial.latest,
        split=latest.split, reason="1 of 3 passing runs")


def test_before_the_first_run_it_says_when_that_is() -> None:
    state, clock = _after(spec())
    assert state.verdict(spec(), clock.now()) == Verdict(
        outcome=Outcome.PENDING, action=Action.WAIT,
        reason="warming up: first run at 12:01:30 UTC")


def test_an_inconclusive_streak_waits_then_pauses_with_the_reason() -> None:
    s = spec(inconclusive_timeout="2m")
    state, clock = _after(s, results(requests=(1, 1)))
    latest = state.latest
    assert latest is not None
    why = "error-rate: canary had 1 samples, fewer than 50"
    assert state.verdict(s, clock.now()) == Verdict(
        outcome=Outcome.INCONCLUSIVE, action=Action.WAIT, latest=latest, split=latest.split,
        reason=f"inconclusive, waiting: {why}")
    assert state.verdict(s, clock.now() + timedelta(minutes=2)) == Verdict(
        outcome=Outcome.INCONCLUSIVE, action=Action.PAUSE, latest=latest, split=latest.split,
        reason=f"inconclusive for 2m (limit 2m): {why}")
    hours = spec(inconclusive_timeout="1h")
    long, clock = _after(hours, results(requests=(1, 1)))
    assert long.verdict(hours, clock.now() + timedelta(hours=1)).reason.startswith(
        "inconclusive for 1h (limit 1h)")
    odd = long.verdict(hours, clock.now() + timedelta(seconds=61))
    assert odd.action is Action.WAIT
    assert long.verdict(hours, clock.now() + timedelta(hours=1, seconds=1)).reason.startswith(
        "inconclusive for 3601s (limit 1h)")
