"""Canary analysis decisions: one run's checks, and a step's runs folded into a verdict.

Time is a ManualClock the test moves; nothing sleeps.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from rollout.domain.analysis import (
    AnalysisFile,
    QueryResult,
    ResultKind,
    Subject,
    SubjectKind,
    queries_for,
)
from rollout.domain.clock import ManualClock
from rollout.domain.errors import InvalidInput
from rollout.domain.verdict import Action, Outcome, Status, StepAnalysis, advance, judge
from tests.unit.analysis_builders import POOL, results, spec, v

# ---- one run ---------------------------------------------------------------------------


def test_a_healthy_canary_passes_every_check_and_the_split() -> None:
    run = judge(spec(), POOL, results(), at=ManualClock().now())
    assert run.status is Status.PASS
    assert [c.status for c in run.checks] == [Status.PASS, Status.PASS]
    assert run.split is not None and run.split.status is Status.PASS


def test_an_absolute_threshold_fails_with_the_canary_and_stable_values() -> None:
    run = judge(spec(), POOL, results(err=(0.2, 0.01)), at=ManualClock().now())
    failing = run.failing
    assert run.status is Status.FAIL and failing is not None
    assert (failing.name, failing.canary, failing.stable, failing.threshold) == \
        ("error-rate", 0.2, 0.01, 0.02)
    assert "0.2" in failing.reason and "at most 0.02" in failing.reason


def test_a_relative_threshold_is_a_factor_of_stable() -> None:
    slow = judge(spec(), POOL, results(ttft=(1.3, 1.0)), at=ManualClock().now()).failing
    assert slow is not None and slow.threshold == pytest.approx(1.2)
    assert "1.2 x stable" in slow.bound
    ok = judge(spec(), POOL, results(ttft=(1.15, 1.0)), at=ManualClock().now())
    assert ok.status is Status.PASS


def test_a_margin_keeps_a_stable_without_errors_from_failing_every_canary() -> None:
    relative = spec(checks=[{"name": "error-rate", "query": "err",
                             "pass_if": {"at_most_times_stable": 1.5, "margin": 0.01}}])
    run = judge(relative, POOL, results(err=(0.005, 0.0)), at=ManualClock().now())
    assert run.status is Status.PASS
    run = judge(relative, POOL, results(err=(0.05, 0.0)), at=ManualClock().now())
    assert run.status is Status.FAIL


def test_too_few_samples_is_inconclusive_whatever_the_value() -> None:
    run = judge(spec(), POOL, results(requests=(10, 900)), at=ManualClock().now())
    assert run.status is Status.INCONCLUSIVE
    assert all(c.status is Status.INCONCLUSIVE for c in run.checks)
    assert "canary had 10 samples, fewer than 50" in run.checks[0].reason


def test_a_relative_check_also_needs_stable_samples_an_absolute_one_does_not() -> None:
    run = judge(spec(), POOL, results(requests=(100, 5)), at=ManualClock().now())
    by_name = {c.name: c for c in run.checks}
    assert by_name["error-rate"].status is Status.PASS
    assert by_name["ttft-p95"].status is Status.INCONCLUSIVE
    assert "stable had 5 samples" in by_name["ttft-p95"].reason


def test_a_check_may_count_its_own_samples() -> None:
    own = spec(checks=[{"name": "ttft-p95", "query": "ttft", "samples": "ttft_count",
                        "min_samples": 20, "pass_if": {"at_most_times_stable": 1.2}}])
    data = results() | {"ttft-p95/canary/samples": v(19), "ttft-p95/stable/samples": v(500)}
    check = judge(own, POOL, data, at=ManualClock().now()).checks[0]
    assert check.status is Status.INCONCLUSIVE and "19 samples, fewer than 20" in check.reason
    data["ttft-p95/canary/samples"] = v(20)
    assert judge(own, POOL, data, at=ManualClock().now()).status is Status.PASS


@pytest.mark.parametrize("kind", [ResultKind.UNAVAILABLE, ResultKind.NO_DATA, ResultKind.ERROR])
def test_a_result_without_a_number_is_inconclusive_with_its_reason(kind: ResultKind) -> None:
    data = results()
    data["ttft-p95/canary"] = QueryResult(kind=kind, reason="Prometheus is unreachable")
    check = judge(spec(), POOL, data, at=ManualClock().now()).checks[1]
    assert check.status is Status.INCONCLUSIVE
    assert check.reason == "canary: Prometheus is unreachable"


def test_nan_is_no_data_not_a_number_that_passes() -> None:
    data = results()
    data["error-rate/canary"] = QueryResult.of(float("nan"))
    assert judge(spec(), POOL, data, at=ManualClock().now()).status is Status.INCONCLUSIVE


# ---- split verification ----------------------------------------------------------------


def test_the_observed_share_must_match_the_written_weight() -> None:
    run = judge(spec(), POOL, results(requests=(500, 500)), at=ManualClock().now())
    assert run.split is not None and run.split.status is Status.FAIL
    assert run.split.observed == pytest.approx(0.5) and run.split.expected == 0.1
    assert "50.0% of 1000 requests" in run.split.reason and "says 10.0%" in run.split.reason


def test_within_tolerance_the_split_holds() -> None:
    run = judge(spec(), POOL, results(requests=(140, 860)), at=ManualClock().now())
    assert run.split is not None and run.split.status is Status.PASS


def test_the_tolerance_widens_by_the_sampling_error_of_a_small_sample() -> None:
    # 10% expected: 3 standard errors are 5.2 points over 300 requests, 0.3 over 100000
    small = judge(spec(), POOL, results(requests=(60, 240)), at=ManualClock().now())
    assert small.split is not None and small.split.status is Status.PASS  # 20%: by chance
    large = judge(spec(), POOL, results(requests=(17000, 83000)), at=ManualClock().now())
    assert large.split is not None and large.split.status is Status.FAIL  # 17%: not chance


def test_the_split_is_not_judged_before_enough_requests() -> None:
    run = judge(spec(min_samples=5), POOL, results(requests=(100, 50)), at=ManualClock().now())
    assert run.split is not None and run.split.status is Status.INCONCLUSIVE
    assert "150 requests seen, fewer than 200" in run.split.reason
    assert run.status is Status.PASS  # too little traffic to verify is not a mismatch


def test_split_verification_can_be_switched_off() -> None:
    run = judge(spec(split=None), POOL, results(requests=(500, 500)), at=ManualClock().now())
    assert run.split is None and run.status is Status.PASS


# ---- a step over time ------------------------------------------------------------------


def step(clock: ManualClock) -> StepAnalysis:
    return StepAnalysis(step=1, started_at=clock.now())


def test_runs_during_the_warmup_are_skipped() -> None:
    clock, s = ManualClock(), spec()
    state = step(clock)
    assert not state.due(s, clock.now())
    clock.advance(30)
    bad = judge(s, POOL, results(err=(0.5, 0.0)), at=clock.now())
    assert state.record(s, bad) == state  # counted for nothing
    verdict = state.verdict(s, clock.now())
    assert (verdict.outcome, verdict.action) == (Outcome.PENDING, Action.WAIT)
    assert "warming up" in verdict.reason
    clock.advance(30)
    assert not state.due(s, clock.now())  # the warm-up is over: one interval to measure
    clock.advance(30)
    assert state.due(s, clock.now())


def test_runs_are_due_every_interval_after_the_warmup() -> None:
    clock, s = ManualClock(), spec()
    state = step(clock)
    clock.advance(60)
    state = state.record(s, judge(s, POOL, results(), at=clock.now()))
    assert not state.due(s, clock.now() + timedelta(seconds=29))
    assert state.due(s, clock.now() + timedelta(seconds=30))


def test_the_window_starts_after_the_warmup_and_is_capped() -> None:
    clock, s = ManualClock(), spec()
    state = step(clock)
    assert state.window(s, clock.now() + timedelta(seconds=90)) == timedelta(seconds=30)
    assert state.window(s, clock.now() + timedelta(hours=1)) == timedelta(minutes=5)


def test_a_passing_run_after_the_warmup_lets_the_step_proceed() -> None:
    clock, s = ManualClock(), spec()
    clock.advance(60)
    state = step(ManualClock()).record(s, judge(s, POOL, results(), at=clock.now()))
    verdict = state.verdict(s, clock.now())
    assert (verdict.outcome, verdict.action) == (Outcome.PASSED, Action.PROCEED)


def test_passes_required_counts_consecutive_passes() -> None:
    clock, s = ManualClock(), spec(passes_required=2, failure_limit=3)
    state = step(clock)
    for data, expected in [(results(), Action.WAIT), (results(err=(0.5, 0)), Action.WAIT),
                           (results(), Action.WAIT), (results(), Action.PROCEED)]:
        clock.advance(60)
        state = state.record(s, judge(s, POOL, data, at=clock.now()))
        assert state.verdict(s, clock.now()).action is expected


def test_failures_past_the_limit_roll_back_with_the_failing_check() -> None:
    clock, s = ManualClock(), spec(failure_limit=1)
    state = step(clock)
    clock.advance(60)
    state = state.record(s, judge(s, POOL, results(ttft=(2.0, 1.0)), at=clock.now()))
    first = state.verdict(s, clock.now())
    assert first.action is Action.WAIT and first.failing is not None  # within the limit
    assert "failed 1 time (limit 1)" in first.reason
    clock.advance(30)
    state = state.record(s, judge(s, POOL, results(ttft=(2.5, 1.0)), at=clock.now()))
    verdict = state.verdict(s, clock.now())
    assert (verdict.outcome, verdict.action) == (Outcome.FAILED, Action.ROLLBACK)
    assert verdict.failing is not None
    assert (verdict.failing.name, verdict.failing.canary, verdict.failing.stable) == \
        ("ttft-p95", 2.5, 1.0)
    assert verdict.failing.threshold == pytest.approx(1.2)
    assert "more than the limit of 1" in verdict.reason


def test_failures_need_not_be_consecutive() -> None:
    clock, s = ManualClock(), spec(failure_limit=1, passes_required=5)
    state = step(clock)
    for data in (results(err=(0.5, 0)), results(), results(err=(0.5, 0))):
        clock.advance(60)
        state = state.record(s, judge(s, POOL, data, at=clock.now()))
    assert state.verdict(s, clock.now()).outcome is Outcome.FAILED


def test_an_analysis_may_pause_instead_of_rolling_back() -> None:
    clock, s = ManualClock(), spec(failure_limit=0, on_failure="pause")
    clock.advance(60)
    state = step(ManualClock()).record(s, judge(s, POOL, results(err=(0.5, 0)),
                                               at=clock.now()))
    assert state.verdict(s, clock.now()).action is Action.PAUSE


def test_a_failure_past_the_limit_is_not_undone_by_later_passes() -> None:
    clock, s = ManualClock(), spec(failure_limit=0)
    state = step(clock)
    for data in (results(err=(0.5, 0)), results(), results()):
        clock.advance(60)
        state = state.record(s, judge(s, POOL, data, at=clock.now()))
    assert state.verdict(s, clock.now()).action is Action.ROLLBACK


def test_inconclusive_never_passes_and_pauses_after_its_timeout() -> None:
    clock, s = ManualClock(), spec(inconclusive_timeout="10m")
    state = step(clock)
    clock.advance(60)
    unreachable = results()
    for key in unreachable:
        unreachable[key] = QueryResult(kind=ResultKind.UNAVAILABLE,
                                       reason="Prometheus is unreachable")
    first_at = clock.now()
    while clock.now() - first_at < timedelta(minutes=10):
        state = state.record(s, judge(s, POOL, unreachable, at=clock.now()))
        verdict = state.verdict(s, clock.now())
        assert (verdict.outcome, verdict.action) == (Outcome.INCONCLUSIVE, Action.WAIT)
        clock.advance(30)
    verdict = state.verdict(s, clock.now())
    assert (verdict.outcome, verdict.action) == (Outcome.INCONCLUSIVE, Action.PAUSE)
    assert "inconclusive for 10m (limit 10m)" in verdict.reason
    assert "Prometheus is unreachable" in verdict.reason


@pytest.mark.parametrize(("conclusive", "passes_required"), [
    (results(err=(0.5, 0.0)), 3),  # a failure within the limit
    (results(), 1),  # a pass that completes passes_required
])
def test_a_conclusive_run_ends_an_inconclusive_streak(
        conclusive: dict[str, QueryResult], passes_required: int) -> None:
    clock = ManualClock()
    s = spec(inconclusive_timeout="2m", passes_required=passes_required)
    state = step(clock)
    clock.advance(60)
    state = state.record(s, judge(s, POOL, results(requests=(1, 1)), at=clock.now()))
    clock.advance(90)
    state = state.record(s, judge(s, POOL, conclusive, at=clock.now()))
    clock.advance(60)
    assert state.inconclusive_since is None
    assert state.verdict(s, clock.now()).action is not Action.PAUSE


def test_a_split_mismatch_pauses_the_step_and_sticks() -> None:
    clock, s = ManualClock(), spec()
    state = step(clock)
    clock.advance(60)
    state = state.record(s, judge(s, POOL, results(requests=(500, 500)), at=clock.now()))
    clock.advance(30)
    state = state.record(s, judge(s, POOL, results(), at=clock.now()))
    verdict = state.verdict(s, clock.now())
    assert (verdict.outcome, verdict.action) == (Outcome.SPLIT_MISMATCH, Action.PAUSE)
    assert verdict.split is not None and verdict.split.observed == pytest.approx(0.5)


# ---- queries and the file format -------------------------------------------------------


def test_queries_are_rendered_per_side_with_the_window() -> None:
    queries = {q.key: q.promql for q in queries_for(spec(), POOL, timedelta(seconds=90))}
    assert queries["requests/canary"] == \
        'sum(increase(req_total{job="llm-pool-version-2"}[90s]))'
    assert queries["ttft-p95/stable"] == 'ttft{job="llm-pool"}'


def test_adapter_rollouts_get_their_own_checks_and_request_count() -> None:
    s = spec(requests={"pool": 'req{job="$target-epp"}',
                       "adapter": 'req{job="$pool-epp",target_model_name="$target"}'},
             checks=[{"name": "pool-only", "query": "x", "applies_to": "pool",
                      "pass_if": {"at_most": 1}},
                     {"name": "ttft", "query": 'ttft{target_model_name="$target",m="$model"}',
                      "applies_to": ["adapter"], "pass_if": {"at_most_times_stable": 1.2}}])
    adapter = Subject(kind=SubjectKind.ADAPTER, namespace="default",
                      stable="small-segment-lora-v1", canary="small-segment-lora-v2",
                      pool="llm-pool", model="small-segment-lora", canary_share=0.25)
    queries = {q.key: q.promql for q in queries_for(s, adapter, timedelta(seconds=30))}
    assert set(queries) == {"requests/canary", "requests/stable", "ttft/canary", "ttft/stable"}
    assert queries["requests/canary"] == \
        'req{job="llm-pool-epp",target_model_name="small-segment-lora-v2"}'
    assert queries["ttft/stable"] == \
        'ttft{target_model_name="small-segment-lora-v1",m="small-segment-lora"}'


@pytest.mark.parametrize(("query", "message"), [
    ('up{job="$canry"}', "unknown placeholder(s) $canry"),
    ("cost > $5", "must start a placeholder"),
    ("  ", "the query is empty"),
])
def test_a_bad_template_is_refused(query: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("$", r"\$").replace("(", r"\(")
                       .replace(")", r"\)")):
        spec(checks=[{"name": "c", "query": query, "pass_if": {"at_most": 1}}])


@pytest.mark.parametrize(("pass_if", "message"), [
    ({}, "exactly one of"),
    ({"at_most": 1, "at_least_times_stable": 0.9}, "exactly one of"),
    ({"at_most": 1, "margin": 0.1}, "margin only applies"),
])
def test_a_comparison_needs_exactly_one_bound(pass_if: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        spec(checks=[{"name": "c", "query": "x", "pass_if": pass_if}])


def test_select_picks_the_default_or_the_named_analysis() -> None:
    file = AnalysisFile(default="a", analyses={"a": spec(), "b": spec(failure_limit=3)})
    assert file.select(None, SubjectKind.POOL)[0] == "a"
    assert file.select("b", SubjectKind.POOL)[1].failure_limit == 3
    with pytest.raises(InvalidInput, match="no analysis 'c': choose one of a, b"):
        file.select("c", SubjectKind.POOL)


def test_an_analysis_without_checks_for_the_kind_is_not_selected_for_it() -> None:
    pools_only = spec(checks=[{"name": "c", "query": "x", "applies_to": "pool",
                               "pass_if": {"at_most": 1}}])
    file = AnalysisFile(default="p", analyses={"p": pools_only})
    with pytest.raises(InvalidInput, match="no request count or no checks for adapter"):
        file.select(None, SubjectKind.ADAPTER)


class TablePort:
    """An in-memory analysis port: answers by substring of the query, counts the questions."""

    def __init__(self, answers: dict[str, float]) -> None:
        self.answers = answers
        self.asked: list[str] = []
        self.instants: list[datetime] = []

    def query(self, promql: str, at: datetime) -> QueryResult:
        self.asked.append(promql)
        self.instants.append(at)
        for needle, value in self.answers.items():
            if needle in promql:
                return QueryResult.of(value)
        return QueryResult(kind=ResultKind.NO_DATA, reason="no series")


def test_advance_asks_only_when_due_and_says_where_the_step_stands() -> None:
    clock, s = ManualClock(), spec()
    port = TablePort({'req_total{job="llm-pool-version-2"}': 100,
                      'req_total{job="llm-pool"}': 900, "err": 0.0, "ttft": 1.0})
    state = step(clock)
    clock.advance(60)
    state, verdict = advance(s, POOL, state, port, clock.now())
    assert not port.asked and verdict.outcome is Outcome.PENDING
    clock.advance(30)
    state, verdict = advance(s, POOL, state, port, clock.now())
    assert len(port.asked) == 6 and "[30s]" in port.asked[0]
    assert verdict.action is Action.PROCEED


def test_every_query_of_a_run_is_evaluated_at_the_runs_instant() -> None:
    """One instant for the whole run: a scrape between two queries cannot make the canary's
    and the stable's figures describe different moments."""
    clock, s = ManualClock(), spec()
    port = TablePort({"req_total": 100, "err": 0.0, "ttft": 1.0})
    state = step(clock)
    clock.advance(90)
    advance(s, POOL, state, port, clock.now())
    assert len(port.instants) == 6 and set(port.instants) == {clock.now()}
