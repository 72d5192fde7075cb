"""The canary analysis as people read it in Slack `status` and the CLI: headline, one line per
check with its values, and the split, pinned whole for each stage of a step's analysis."""

from __future__ import annotations

from typing import Any

from handlers.analysis_view import analysis_view, plain_lines
from rollout.domain.models import Rollout
from tests.unit.builders import BOB
from tests.unit.test_service_analysis import BAKE, CANARY, REF, STABLE, World

HEAD = "canary analysis `quick`"
ERR_OK = "  pass         error-rate: canary 0.01 · stable 0.01 · threshold 0.02 (at most 0.02)"
TTFT_OK = "  pass         ttft-p95: canary 1 · stable 1 · threshold 1.2 (at most 1.2 x stable)"
SPLIT_OK = ("  split pass: canary received 10.0% of 1000 requests; the route says 10.0% "
            "(allowed difference 7.8%)")


def _lines(r: Rollout) -> list[str]:
    return plain_lines(analysis_view(r, r.updated_at))


def _baking() -> World:
    w = World()
    w.start()
    w.service.approve(REF, actor=BOB)
    return w


def _with_latest(r: Rollout, **update: Any) -> Rollout:
    state = r.step_analysis
    assert state is not None and state.latest is not None
    latest = state.latest.model_copy(update=update)
    return r.model_copy(update={"step_analysis": state.model_copy(update={"latest": latest})})


def _failed() -> Rollout:
    w = _baking()
    w.metrics.values[("err", CANARY)] = 0.2
    w.at(90)
    failed: Rollout = w.at(BAKE)
    return failed


def test_before_the_first_step_the_analysis_waits_for_it() -> None:
    assert _lines(World().start()) == [f"{HEAD}: after step 1"]


def test_a_single_step_to_full_traffic_has_no_analysis() -> None:
    w = World()
    w.start(steps=(100,))
    w.service.approve(REF, actor=BOB)
    assert _lines(w.service.get(REF)) == [f"{HEAD}: none at 100%"]


def test_a_passed_analysis_shows_each_check_and_the_split() -> None:
    assert _lines(_baking().at(90)) == [
        f"{HEAD} of step 1: passed (1 passing run)", ERR_OK, TTFT_OK, SPLIT_OK]


def test_a_warming_analysis_shows_only_its_headline() -> None:
    assert _lines(_baking().at(1)) == [
        f"{HEAD} of step 1: pending (warming up: first run at 12:01:30 UTC)"]


def test_a_failed_check_shows_its_values_without_its_reason() -> None:
    assert _lines(_failed()) == [
        f"{HEAD} of step 1: failed (check error-rate failed 2 times, more than the limit "
        "of 1: canary 0.2 is not at most 0.02 (threshold 0.02; stable 0.01))",
        "  fail         error-rate: canary 0.2 · stable 0.01 · threshold 0.02 (at most 0.02)",
        TTFT_OK, SPLIT_OK]


def test_a_failed_analysis_shows_the_run_that_failed_not_a_later_one() -> None:
    passed = _baking().at(90).step_analysis
    assert passed is not None
    r = _failed()
    state = r.step_analysis
    assert state is not None
    r = r.model_copy(update={"step_analysis": state.model_copy(update={"latest": passed.latest})})
    assert _lines(r)[1] == \
        "  fail         error-rate: canary 0.2 · stable 0.01 · threshold 0.02 (at most 0.02)"


def test_an_inconclusive_check_says_why() -> None:
    w = _baking()
    del w.metrics.values[("err", CANARY)]
    assert _lines(w.at(90))[:2] == [
        f"{HEAD} of step 1: inconclusive (inconclusive, waiting: error-rate: canary: no "
        "series matched)",
        "  inconclusive error-rate: canary n/a · stable 0.01 · threshold 0.02 (at most 0.02): "
        "canary: no series matched"]


def test_a_split_mismatch_names_the_split_the_route_did_not_get() -> None:
    w = _baking()
    w.metrics.values[("req_total", CANARY)] = 500
    w.metrics.values[("req_total", STABLE)] = 500
    r = w.at(90)
    mismatch = ("  split fail: canary received 50.0% of 1000 requests; the route says 10.0% "
                "(allowed difference 7.8%)")
    assert _lines(r) == [
        f"{HEAD} of step 1: split mismatch (split mismatch: canary received 50.0% of 1000 "
        "requests; the route says 10.0% (allowed difference 7.8%))",
        ERR_OK, TTFT_OK, mismatch]
    assert _lines(_with_latest(r, split=None))[-1] == mismatch


def test_a_run_without_a_split_shows_no_split_line() -> None:
    assert _lines(_with_latest(_baking().at(90), split=None)) == [
        f"{HEAD} of step 1: passed (1 passing run)", ERR_OK, TTFT_OK]


def test_a_failure_within_the_limit_is_not_shown_once_a_later_run_passes() -> None:
    w = _baking()
    w.metrics.values[("err", CANARY)] = 0.2
    w.at(90)
    w.metrics.values[("err", CANARY)] = 0.01
    assert _lines(w.at(BAKE))[1:] == [ERR_OK, TTFT_OK, SPLIT_OK]
