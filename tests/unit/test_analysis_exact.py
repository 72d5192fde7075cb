"""The analysis building blocks stated exactly: bounds in words and numbers, what a query is
given, the split's allowance and what a run asks; a person reads these to judge a verdict."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rollout.domain.analysis import (
    Comparison,
    QueryResult,
    ResultKind,
    Side,
    SplitVerification,
    queries_for,
)
from rollout.domain.verdict import SplitResult, Status, judge_check, verify_split
from tests.unit.analysis_builders import POOL, results, spec, v


def test_each_bound_in_words_and_as_a_threshold() -> None:
    cases = [
        (Comparison(at_most=0.02), "at most 0.02", 0.02),
        (Comparison(at_least=0.9), "at least 0.9", 0.9),
        (Comparison(at_most_times_stable=1.2), "at most 1.2 x stable", 2.4),
        (Comparison(at_most_times_stable=1.5, margin=0.25), "at most 1.5 x stable + 0.25", 3.25),
        (Comparison(at_least_times_stable=0.5), "at least 0.5 x stable", 1.0),
        (Comparison(at_least_times_stable=0.5, margin=0.25), "at least 0.5 x stable - 0.25",
         0.75),
    ]
    for bound, words, threshold in cases:
        assert bound.describe() == words
        assert bound.threshold(2.0) == pytest.approx(threshold)
    assert Comparison(at_most_times_stable=1.2).threshold(None) is None
    assert Comparison(at_least_times_stable=1.2).threshold(float("nan")) is None


def test_a_bound_holds_at_its_threshold_and_not_beyond() -> None:
    upper, lower = Comparison(at_most=1.0), Comparison(at_least=1.0)
    assert upper.holds(1.0, 1.0) and not upper.holds(1.01, 1.0) and upper.holds(0.5, 1.0)
    assert lower.holds(1.0, 1.0) and not lower.holds(0.99, 1.0) and lower.holds(2.0, 1.0)


def test_a_query_is_given_each_side_s_names_and_a_whole_window() -> None:
    assert POOL.values(Side.CANARY, timedelta(milliseconds=400)) == {
        "namespace": "default", "stable": "llm-pool", "canary": "llm-pool-version-2",
        "target": "llm-pool-version-2", "pool": "llm-pool-version-2", "model": "",
        "window": "1s"}
    assert POOL.values(Side.STABLE, timedelta(seconds=90))["target"] == "llm-pool"


def test_nan_is_no_data_with_a_reason() -> None:
    assert QueryResult.of(float("nan")) == QueryResult(
        kind=ResultKind.NO_DATA, reason="the query returned NaN (no traffic?)")
    assert QueryResult.of(0.5) == QueryResult(kind=ResultKind.VALUE, value=0.5)


def test_the_split_is_judged_with_its_allowance_in_words() -> None:
    split = SplitVerification(tolerance=0.05, min_requests=200)
    assert verify_split(split, POOL, results()) == SplitResult(
        status=Status.PASS, expected=0.1, observed=0.1, requests=1000.0, tolerance=0.05,
        reason="canary received 10.0% of 1000 requests; the route says 10.0% (allowed "
               "difference 7.8%)")
    assert verify_split(split, POOL, results(requests=(20, 180))).requests == 200.0
    assert verify_split(split, POOL, results(requests=(20, 170))) == SplitResult(
        status=Status.INCONCLUSIVE, expected=0.1, observed=None, requests=190.0,
        tolerance=0.05, reason="190 requests seen, fewer than 200")
    assert verify_split(split, POOL, {}) == SplitResult(
        status=Status.INCONCLUSIVE, expected=0.1, observed=None, requests=None,
        tolerance=0.05, reason="request count unknown: canary (the query was not asked), "
                               "stable (the query was not asked)")


def test_a_failing_check_says_its_numbers() -> None:
    s = spec()
    relative = s.checks[1]
    data = results(ttft=(1.5, 1.0))
    failed = judge_check(relative, s, data)
    assert (failed.status, failed.reason) == (
        Status.FAIL, "canary 1.5 is not at most 1.2 x stable (threshold 1.2; stable 1)")
    data.pop("ttft-p95/stable")
    missing = judge_check(relative, s, data)
    assert (missing.status, missing.reason) == (Status.INCONCLUSIVE,
                                                "stable: the query was not asked")
    absolute = judge_check(s.checks[0], s, {"error-rate/canary": v(0.01)})
    assert (absolute.status, absolute.reason) == (Status.INCONCLUSIVE,
                                                  "canary sample count: the query was not asked")


def test_a_run_asks_each_side_its_requests_and_checks() -> None:
    keys = [q.key for q in queries_for(spec(), POOL, timedelta(seconds=30))]
    assert keys == ["requests/canary", "error-rate/canary", "ttft-p95/canary",
                    "requests/stable", "error-rate/stable", "ttft-p95/stable"]
    counted = spec(checks=[{"name": "e", "query": "x", "samples": 'n{job="$target"}',
                            "pass_if": {"at_most": 1}}])
    queries = {q.key: q.promql for q in queries_for(counted, POOL, timedelta(seconds=30))}
    assert queries["e/stable/samples"] == 'n{job="llm-pool"}'
