"""A step's analysis without a verdict reaches its inconclusive timeout, however its runs
alternate: the stretch starts at its first inconclusive run, and only a failed run or
``passes_required`` passing runs in a row end it, so passes that keep being broken by
inconclusive runs pause the rollout as an all-inconclusive streak does.

Time is a ManualClock the test moves; nothing sleeps.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from rollout.domain.analysis import AnalysisSpec, QueryResult, ResultKind
from rollout.domain.clock import ManualClock
from rollout.domain.verdict import Action, Outcome, StepAnalysis, Verdict, advance, judge
from tests.unit.analysis_builders import POOL, results, spec

S = spec(passes_required=2, inconclusive_timeout="10m", interval="1m", split=None)
RUNS = {
    "pass": results(),
    "fail": results(err=(0.5, 0.0)),
    "few": results(requests=(3, 900)),
}


def _fold(names: list[str], clock: ManualClock, s: AnalysisSpec = S,
          state: StepAnalysis | None = None) -> tuple[StepAnalysis, list[Verdict]]:
    """One run a minute after the warm-up, each named in RUNS; the verdict after each."""
    state = state or StepAnalysis(step=1, started_at=clock.now() - s.warmup)
    verdicts = []
    for name in names:
        clock.advance(60)
        state = state.record(s, judge(s, POOL, RUNS[name], at=clock.now()))
        verdicts.append(state.verdict(s, clock.now()))
    return state, verdicts


def test_passes_broken_by_inconclusive_runs_pause_after_the_timeout() -> None:
    clock = ManualClock()
    first_inconclusive = clock.now() + timedelta(minutes=1)
    state, verdicts = _fold(["few", "pass"] * 5 + ["few"], clock)
    assert state.inconclusive_since == first_inconclusive
    assert all(v.action is Action.WAIT for v in verdicts[:-1])  # 10 runs, 9 minutes
    last = verdicts[-1]
    assert (last.outcome, last.action) == (Outcome.INCONCLUSIVE, Action.PAUSE)
    assert last.reason.startswith("inconclusive for 10m (limit 10m): error-rate: canary had 3 "
                                  "samples, fewer than 50")


def test_the_timeout_is_reached_on_a_pass_short_of_passes_required_too() -> None:
    clock = ManualClock()
    state, verdicts = _fold(["pass"] + ["few", "pass"] * 5, clock)  # the last 9m into it
    assert all(v.action is Action.WAIT for v in verdicts)
    clock.advance(60)  # a run late by a minute (the scheduler was busy)
    last = state.verdict(S, clock.now())
    assert (last.outcome, last.action) == (Outcome.INCONCLUSIVE, Action.PAUSE)
    assert last.reason == ("inconclusive for 10m (limit 10m): 1 of 2 passing runs in a row: "
                           "inconclusive runs keep breaking the passes")


def test_a_pass_short_of_passes_required_says_the_clock_runs() -> None:
    clock = ManualClock()
    state, verdicts = _fold(["few", "pass"], clock)
    since = f"{clock.now() - timedelta(minutes=1):%Y-%m-%d %H:%M:%S} UTC"
    assert (verdicts[-1].outcome, verdicts[-1].action) == (Outcome.PENDING, Action.WAIT)
    assert verdicts[-1].reason == (f"1 of 2 passing runs, after inconclusive ones since "
                                   f"{since} (a pause after 10m without a verdict)")
    assert state.latest is not None and verdicts[-1].latest == state.latest
    assert verdicts[-1].split == state.latest.split  # the card shows the pass's split


def test_passes_required_in_a_row_end_the_stretch_and_a_later_one_starts_afresh() -> None:
    clock = ManualClock()
    state, verdicts = _fold(["few", "pass", "few", "pass", "pass"], clock)
    assert state.inconclusive_since is None and verdicts[-1].action is Action.PROCEED
    state, verdicts = _fold(["few"] + ["pass", "few"] * 4 + ["pass"], clock, state=state)
    assert all(v.action is Action.WAIT for v in verdicts)  # 9m 59s at most: no pause yet
    state, verdicts = _fold(["few"], clock, state=state)
    assert verdicts[-1].action is Action.PAUSE


def test_a_failure_ends_the_stretch() -> None:
    clock = ManualClock()
    s = spec(passes_required=2, inconclusive_timeout="10m", split=None, failure_limit=5)
    state, verdicts = _fold(["few", "pass"] * 4 + ["fail"] + ["few", "pass"] * 4, clock, s)
    assert all(v.action is Action.WAIT for v in verdicts)
    assert state.inconclusive_since == clock.now() - timedelta(minutes=7)


class _Flapping:
    """Prometheus answering every other run, healthy when it does answer."""

    def __init__(self) -> None:
        self.runs: list[datetime] = []

    def query(self, promql: str, at: datetime) -> QueryResult:
        if at not in self.runs:
            self.runs.append(at)
        if len(self.runs) % 2 == 0:
            return QueryResult(kind=ResultKind.UNAVAILABLE, reason="Prometheus is unreachable")
        if promql.startswith("err"):
            return QueryResult.of(0.01)
        if promql.startswith("ttft"):
            return QueryResult.of(1.0)
        return QueryResult.of(100 if "version-2" in promql else 900)


def test_a_flapping_prometheus_pauses_the_step_through_advance() -> None:
    clock, port = ManualClock(), _Flapping()
    state = StepAnalysis(step=1, started_at=clock.now())
    actions = []
    for _ in range(30):
        clock.advance(60)
        state, verdict = advance(S, POOL, state, port, clock.now())
        actions.append(verdict.action)
        if verdict.action is Action.PAUSE:
            break
    assert Action.PROCEED not in actions and actions[-1] is Action.PAUSE
    assert len(port.runs) == 12  # first unavailable run at run 2, ten minutes later: run 12
    assert "Prometheus is unreachable" in verdict.reason


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(sorted(RUNS)), st.integers(1, 120)), max_size=30))
def test_no_stretch_without_a_verdict_outlasts_the_timeout(
        sequence: list[tuple[str, int]]) -> None:
    """Modelled here on its own: the stretch starts at an inconclusive run and ends at a
    failure or at passes_required passes in a row; once it lasts the timeout, a pause."""
    s = spec(passes_required=3, inconclusive_timeout="5m", split=None, failure_limit=3)
    clock = ManualClock()
    state = StepAnalysis(step=1, started_at=clock.now() - s.warmup)
    since: datetime | None = None
    passes = failures = 0
    for name, wait in sequence:
        clock.advance(wait)
        state = state.record(s, judge(s, POOL, RUNS[name], at=clock.now()))
        passes = passes + 1 if name == "pass" else 0
        failures += name == "fail"
        if name == "fail" or passes >= s.passes_required:
            since = None
        elif name == "few":
            since = since or clock.now()
        verdict = state.verdict(s, clock.now())
        if failures > s.failure_limit:
            assert verdict.action is Action.ROLLBACK
        elif passes >= s.passes_required:
            assert verdict.action is Action.PROCEED
        elif since is not None and clock.now() - since >= s.inconclusive_timeout:
            assert (verdict.outcome, verdict.action) == (Outcome.INCONCLUSIVE, Action.PAUSE)
        else:
            assert verdict.action is Action.WAIT
