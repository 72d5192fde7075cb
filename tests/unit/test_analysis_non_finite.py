"""Infinite and NaN numbers never make a canary pass.

A file's bound of .inf would pass every canary, so the file refuses it. Prometheus can
answer +Inf (a quantile beyond the last bucket) or -Inf: a stable value that is not finite
gives no threshold (inconclusive), and a canary value that is not finite may fail a bound it
is clearly past but never passes one.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from rollout.adapters.analysis_file import AnalysisFileError, parse_analyses
from rollout.domain.analysis import Comparison, QueryResult, ResultKind
from rollout.domain.clock import ManualClock
from rollout.domain.verdict import Action, Status, StepAnalysis, judge, judge_check
from tests.unit.analysis_builders import POOL, results, spec

INF = math.inf
S = spec()
ERROR_RATE, TTFT = S.checks  # at most 0.02; at most 1.2 x stable


def _at_least(bound: dict[str, Any]) -> Any:
    return spec(checks=[{"name": "throughput", "query": "tps", "pass_if": bound}]).checks[0]


def test_a_stable_of_plus_inf_gives_no_threshold_so_the_canary_cannot_pass() -> None:
    found = judge_check(TTFT, S, results(ttft=(5.0, INF)))
    assert found.status is Status.INCONCLUSIVE and found.threshold is None
    assert found.reason == "stable is inf, not a finite number: no threshold to compare with"


def test_both_sides_at_plus_inf_are_inconclusive_not_a_pass() -> None:
    assert judge_check(TTFT, S, results(ttft=(INF, INF))).status is Status.INCONCLUSIVE


def test_a_stable_of_minus_inf_does_not_fail_the_canary_either() -> None:
    found = judge_check(TTFT, S, results(ttft=(1.0, -INF)))
    assert found.status is Status.INCONCLUSIVE and "stable is -inf" in found.reason


def test_a_threshold_that_overflows_is_inconclusive() -> None:
    found = judge_check(TTFT, S, results(ttft=(1.0, 1.7e308)))
    assert found.status is Status.INCONCLUSIVE and found.threshold is None
    assert found.reason == "the threshold from stable 1.7e+308 is not a finite number"


def test_a_canary_of_plus_inf_fails_an_upper_bound_it_is_clearly_past() -> None:
    assert judge_check(ERROR_RATE, S, results(err=(INF, 0.0))).status is Status.FAIL
    assert judge_check(TTFT, S, results(ttft=(INF, 1.0))).status is Status.FAIL


def test_a_canary_of_minus_inf_never_passes_an_upper_bound() -> None:
    found = judge_check(ERROR_RATE, S, results(err=(-INF, 0.0)))
    assert found.status is Status.INCONCLUSIVE
    assert found.reason == "canary is -inf, not a finite number: never a pass"
    assert judge_check(TTFT, S, results(ttft=(-INF, 1.0))).status is Status.INCONCLUSIVE


@pytest.mark.parametrize("bound", [{"at_least": 10.0}, {"at_least_times_stable": 0.9}])
def test_a_lower_bound_is_failed_by_minus_inf_and_never_passed_by_plus_inf(
        bound: dict[str, Any]) -> None:
    check = _at_least(bound)
    s = spec(checks=[check.model_dump()])

    def side(canary: float) -> dict[str, QueryResult]:
        return results() | {"throughput/canary": QueryResult.of(canary),
                            "throughput/stable": QueryResult.of(20.0)}

    assert judge_check(check, s, side(INF)).status is Status.INCONCLUSIVE
    assert judge_check(check, s, side(-INF)).status is Status.FAIL


def test_a_canary_value_of_nan_never_passes_or_fails() -> None:
    data = results() | {"error-rate/canary": QueryResult(kind=ResultKind.VALUE, value=math.nan)}
    assert judge_check(ERROR_RATE, S, data).status is Status.INCONCLUSIVE


def test_an_infinite_sample_count_is_no_count() -> None:
    run = judge(S, POOL, results(requests=(INF, 900)), at=ManualClock().now())
    assert all(c.status is Status.INCONCLUSIVE for c in run.checks)
    assert "canary sample count: inf is not a finite count" in run.checks[0].reason
    assert run.split is not None and run.split.status is Status.INCONCLUSIVE
    assert run.split.reason == "request count unknown: canary (inf is not a finite count)"


def test_a_step_whose_stable_reads_plus_inf_never_proceeds() -> None:
    clock = ManualClock()
    state = StepAnalysis(step=1, started_at=clock.now())
    for _ in range(5):
        clock.advance(60)
        state = state.record(S, judge(S, POOL, results(ttft=(9.9, INF)), at=clock.now()))
        assert state.verdict(S, clock.now()).action is not Action.PROCEED


FILE = """\
default: a
analyses:
  a:
    requests: 'sum(req{{job="$target"}})'
    checks:
      - name: c
        query: 'q'
        pass_if: {{{bound}}}
"""


@pytest.mark.parametrize(("bound", "field", "shown"), [
    ("at_most: .inf", "at_most", "inf"),
    ("at_most: .nan", "at_most", "nan"),
    ("at_least: -.inf", "at_least", "-inf"),
    ("at_most_times_stable: .inf", "at_most_times_stable", "inf"),
    ("at_least_times_stable: .NaN", "at_least_times_stable", "nan"),
    ("at_most_times_stable: 1.2, margin: .inf", "margin", "inf"),
    ("at_most: inf", "at_most", "inf"),
])
def test_the_file_refuses_a_number_that_is_not_finite(bound: str, field: str,
                                                      shown: str) -> None:
    with pytest.raises(AnalysisFileError) as refused:
        parse_analyses(FILE.format(bound=bound), source="a.yaml")
    assert str(refused.value).splitlines()[1:] == [
        f"  a.yaml:8: analyses.a.checks.0.pass_if.{field}: {shown} is not a finite number: "
        "write a number such as 0.05 or 1.2"]


def test_a_split_tolerance_that_is_not_finite_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"split\.tolerance"):
        spec(split={"tolerance": math.nan, "min_requests": 200})


def test_finite_bounds_still_load_with_their_other_rules() -> None:
    assert Comparison(at_most_times_stable=1.5, margin=0.01).threshold(0.0) == 0.01
    with pytest.raises(ValidationError, match="greater than 0"):
        Comparison(at_most_times_stable=-1.0)
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        Comparison(at_most_times_stable=1.0, margin=-0.5)
