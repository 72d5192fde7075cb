"""A share of too few samples (errors / requests) that fails whatever the missing samples
bring fails at once: a canary failing badly at low traffic used to wait, inconclusive, for
`min_samples` requests or for the inconclusive timeout (which pauses, not rolls back)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from rollout.adapters.analysis_file import load_default
from rollout.domain.clock import ManualClock
from rollout.domain.verdict import Action, Outcome, Status, StepAnalysis, judge
from tests.unit.analysis_builders import POOL, spec, v

NOW = ManualClock().now()


def _errors(*, share: bool = True, pass_if: dict[str, float] | None = None,
            **overrides: Any) -> Any:
    check = {"name": "error-rate", "query": 'err{job="$target"}', "share_of_samples": share,
             "pass_if": pass_if or {"at_most_times_stable": 1.5, "margin": 0.01}}
    return spec(checks=[check], split=None, **overrides)


def _run(s: Any, *, canary: float, samples: float, stable: float = 0.0,
         stable_samples: float = 900, at: datetime = NOW) -> Any:
    return judge(s, POOL, {"error-rate/canary": v(canary), "error-rate/stable": v(stable),
                           "requests/canary": v(samples),
                           "requests/stable": v(stable_samples)}, at=at)


def test_a_share_that_fails_with_every_missing_sample_good_fails_now() -> None:
    # 10 of 20 failed: with the next 30 of 50 all good it is 20%, past 1.5 x 0 + 1%
    (check,) = _run(_errors(), canary=0.5, samples=20).checks
    assert check.status is Status.FAIL
    assert check.reason == ("canary 0.5 over 20 samples is not at most 1.5 x stable + 0.01 "
                            "(threshold 0.01) and cannot be: with the next 30 all good, it "
                            "would be 0.2 at 50")


def test_one_error_in_the_first_request_is_already_past_a_tight_bound() -> None:
    # 1 of 1 failed: 2% at 50 with the next 49 good, past 1.5 x 0 + 1%
    assert _run(_errors(), canary=1.0, samples=1).status is Status.FAIL


def test_a_share_that_could_still_pass_waits() -> None:
    # 1 of 20 failed: 2% at 50 if the rest are good, under 1.5 x 2% + 1% = 4%
    (check,) = _run(_errors(), canary=0.05, samples=20, stable=0.02).checks
    assert check.status is Status.INCONCLUSIVE
    assert check.reason == "canary had 20 samples, fewer than 50"


def test_exactly_at_the_threshold_at_the_minimum_still_waits() -> None:
    # 1 of 10 failed: 2% at 50, exactly the absolute bound: it could pass
    (check,) = _run(_errors(pass_if={"at_most": 0.02}), canary=0.1, samples=10).checks
    assert check.status is Status.INCONCLUSIVE


def test_a_lower_bound_counts_the_missing_samples_as_successes() -> None:
    success = {"at_least": 0.9}
    # 5 of 20 succeeded: 35 of 50 at best, 70%: fails now
    assert _run(_errors(pass_if=success), canary=0.25, samples=20).status is Status.FAIL
    # 18 of 20 succeeded: 96% at best: waits
    assert _run(_errors(pass_if=success), canary=0.9,
                samples=20).status is Status.INCONCLUSIVE


def test_a_stable_that_gives_no_threshold_leaves_it_inconclusive() -> None:
    run = _run(_errors(), canary=0.5, samples=20, stable=float("inf"))
    (check,) = run.checks
    assert check.status is Status.INCONCLUSIVE and check.threshold is None


def test_a_check_not_marked_as_a_share_waits_for_its_samples() -> None:
    # a p95 latency over few requests says nothing of what more requests will bring
    assert _run(_errors(share=False), canary=0.5, samples=20).status is Status.INCONCLUSIVE


@pytest.mark.parametrize(("stable_samples", "samples", "canary"), [
    (10, 20, 0.5),      # the threshold rests on a stable with too few samples
    (900, 0, 0.5),      # no canary sample: no share at all
    (900, 20, float("nan")),
    (900, 20, float("inf")),
    (900, 0.5, 0.0),    # half a request (increase() extrapolates): no error to count
])
def test_without_a_threshold_to_trust_or_a_share_to_count_it_waits(
        stable_samples: float, samples: float, canary: float) -> None:
    run = _run(_errors(), canary=canary, samples=samples, stable_samples=stable_samples)
    assert run.status is Status.INCONCLUSIVE


def test_an_early_failure_counts_against_the_limit_like_any_other() -> None:
    s, clock = _errors(failure_limit=1), ManualClock()
    state = StepAnalysis(step=1, started_at=clock.now())
    clock.advance(60)  # the warm-up
    for samples in (10, 20):
        clock.advance(60)
        state = state.record(s, _run(s, canary=0.5, samples=samples, at=clock.now()))
        assert state.latest is not None and state.latest.status is Status.FAIL
    verdict = state.verdict(s, clock.now())
    assert (verdict.outcome, verdict.action) == (Outcome.FAILED, Action.ROLLBACK)


def test_the_default_analysis_marks_its_error_and_abort_shares() -> None:
    default = load_default().analyses["llm-serving"]
    shares = sorted(c.name for c in default.checks if c.share_of_samples)
    assert shares == ["abort-rate", "adapter-error-rate", "error-rate"]
