"""The canary analysis decides, as data: from query results to a run, from runs to a verdict.

A run judges every check once (pass, fail, or inconclusive with the reason) and verifies the
split. A step's analysis folds its runs: runs during the warm-up are skipped, failures are
counted against the limit, and inconclusive never passes; it waits, and past a configurable
time it pauses the rollout with the reason. The clock is the caller's: nothing here sleeps
or reads the time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum

from rollout.domain.analysis import (
    Analysis,
    AnalysisSpec,
    Check,
    Frozen,
    OnFailure,
    QueryResult,
    ResultKind,
    Side,
    SplitVerification,
    Subject,
    ask,
    queries_for,
)
from rollout.domain.wording import counted

_MISSING = QueryResult(kind=ResultKind.ERROR, reason="the query was not asked")


class Status(StrEnum):
    PASS = "pass"  # noqa: S105 (a verdict, not a secret)
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


class CheckResult(Frozen):
    """One check's verdict in one run, with what a person needs to judge it again."""

    name: str
    status: Status
    canary: float | None
    stable: float | None
    threshold: float | None
    bound: str  # the comparison in words: "at most 1.2 x stable"
    canary_samples: float | None = None
    stable_samples: float | None = None
    reason: str = ""


class SplitResult(Frozen):
    """The observed canary share against the written one (FAIL means a mismatch)."""

    status: Status
    expected: float
    observed: float | None
    requests: float | None
    tolerance: float
    reason: str


class Run(Frozen):
    """Every check judged once at ``at``."""

    at: datetime
    checks: tuple[CheckResult, ...]
    split: SplitResult | None = None

    @property
    def status(self) -> Status:
        statuses = {c.status for c in self.checks}
        if Status.FAIL in statuses:
            return Status.FAIL
        if Status.INCONCLUSIVE in statuses or not statuses:
            return Status.INCONCLUSIVE
        return Status.PASS

    @property
    def failing(self) -> CheckResult | None:
        return next((c for c in self.checks if c.status is Status.FAIL), None)

    @property
    def inconclusive(self) -> CheckResult | None:
        return next((c for c in self.checks if c.status is Status.INCONCLUSIVE), None)


def _count(results: Mapping[str, QueryResult], key: str) -> tuple[float | None, str]:
    """A request or sample count, or None with why: +Inf is no count (it would pass any
    minimum and make the observed split NaN)."""
    result = results.get(key, _MISSING)
    number = result.number
    if number is not None and not math.isfinite(number):
        return None, f"{number} is not a finite count"
    return number, result.reason or result.kind.value


def _no_threshold(stable: float | None) -> str:
    """Why a relative check has no threshold to hold the canary to."""
    if stable is None or math.isnan(stable):  # NaN is no data, as the adapter reads it
        return "no threshold (stable value missing)"
    if math.isinf(stable):
        return f"stable is {stable}, not a finite number: no threshold to compare with"
    return f"the threshold from stable {_fmt(stable)} is not a finite number"


def _short(side: Side, samples: float | None, minimum: int) -> str:
    return f"{side} had {_fmt(samples)} samples, fewer than {minimum}"


def _fails_whatever_comes(check: Check, canary: float | None, samples: float | None,
                          minimum: int, threshold: float | None) -> str:
    """Why a share of fewer than ``minimum`` samples already fails (empty when it may
    still pass, or is no share): the best the canary can reach by ``minimum`` samples,
    every missing one counted good, is past the threshold."""
    if (not check.share_of_samples or canary is None or threshold is None or not samples
            or not math.isfinite(canary)):
        return ""
    upper = check.pass_if.upper
    best = (canary * samples + (0 if upper else minimum - samples)) / minimum
    if check.pass_if.holds(best, threshold):
        return ""
    return (f"canary {_fmt(canary)} over {_fmt(samples)} samples is not "
            f"{check.pass_if.describe()} (threshold {_fmt(threshold)}) and cannot be: with "
            f"the next {_fmt(minimum - samples)} all good, "
            f"it would be {_fmt(best)} at {minimum}")


def _sides(check: Check, minimum: int, results: Mapping[str, QueryResult]
           ) -> tuple[dict[Side, float | None], dict[Side, float | None], list[str]]:
    """Each side's value and sample count, and why a side the check needs cannot be
    judged."""
    values: dict[Side, float | None] = {}
    samples: dict[Side, float | None] = {}
    problems: list[str] = []
    needed = (Side.CANARY, Side.STABLE) if check.pass_if.relative else (Side.CANARY,)
    for side in Side:
        value = results.get(f"{check.name}/{side}", _MISSING)
        values[side] = value.number
        count_key = f"{check.name}/{side}/samples" if check.samples else f"requests/{side}"
        samples[side], why = _count(results, count_key)
        if side not in needed:
            continue
        if value.number is None:
            problems.append(f"{side}: {value.reason or value.kind.value}")
        elif samples[side] is None:
            problems.append(f"{side} sample count: {why}")
        elif (samples[side] or 0) < minimum:
            problems.append(_short(side, samples[side], minimum))
    return values, samples, problems


def judge_check(check: Check, spec: AnalysisSpec,
                results: Mapping[str, QueryResult]) -> CheckResult:
    """Pass, fail or inconclusive for one check; never a pass without enough samples."""
    minimum = spec.min_samples if check.min_samples is None else check.min_samples
    values, samples, problems = _sides(check, minimum, results)
    threshold = check.pass_if.threshold(values[Side.STABLE])
    base = {"name": check.name, "canary": values[Side.CANARY], "stable": values[Side.STABLE],
            "threshold": threshold, "bound": check.pass_if.describe(),
            "canary_samples": samples[Side.CANARY], "stable_samples": samples[Side.STABLE]}
    canary = values[Side.CANARY]
    if problems == [_short(Side.CANARY, samples[Side.CANARY], minimum)]:  # and nothing else
        early = _fails_whatever_comes(check, canary, samples[Side.CANARY], minimum, threshold)
        if early:
            return CheckResult(status=Status.FAIL, **base, reason=early)
    if problems or canary is None or threshold is None:
        return CheckResult(status=Status.INCONCLUSIVE, reason="; ".join(problems)
                           or _no_threshold(values[Side.STABLE]), **base)
    holds = check.pass_if.holds(canary, threshold)
    if not math.isfinite(canary) and (holds or math.isnan(canary)):
        # -Inf under an upper bound (or +Inf over a lower one) is no measurement to pass on;
        # +Inf over an upper bound is clearly past it, and fails below.
        return CheckResult(status=Status.INCONCLUSIVE, **base,
                           reason=f"canary is {canary}, not a finite number: never a pass")
    if holds:
        return CheckResult(status=Status.PASS, **base)
    return CheckResult(status=Status.FAIL, **base, reason=(
        f"canary {_fmt(canary)} is not {check.pass_if.describe()} "
        f"(threshold {_fmt(threshold)}; stable {_fmt(values[Side.STABLE])})"))


def verify_split(split: SplitVerification, subject: Subject,
                 results: Mapping[str, QueryResult]) -> SplitResult:
    """Does the canary receive its written share, once enough requests were seen?"""
    canary, why_c = _count(results, f"requests/{Side.CANARY}")
    stable, why_s = _count(results, f"requests/{Side.STABLE}")
    base = {"expected": subject.canary_share, "tolerance": split.tolerance}
    if canary is None or stable is None:
        unknown = [f"{side} ({why})" for side, count, why in
                   ((Side.CANARY, canary, why_c), (Side.STABLE, stable, why_s)) if count is None]
        reason = f"request count unknown: {', '.join(unknown)}"
        return SplitResult(status=Status.INCONCLUSIVE, observed=None, requests=None,
                           reason=reason, **base)
    total = canary + stable
    if total < split.min_requests:
        return SplitResult(status=Status.INCONCLUSIVE, observed=None, requests=total, **base,
                           reason=f"{_fmt(total)} requests seen, fewer than "
                                  f"{split.min_requests}")
    observed = canary / total
    expected = subject.canary_share
    # Requests land on a pool by chance: allow three standard errors of a binomial share on
    # top of the tolerance, so that a small sample never reads as a broken gateway.
    allowed = split.tolerance + 3 * math.sqrt(expected * (1 - expected) / total)
    ok = abs(observed - expected) <= allowed
    return SplitResult(
        status=Status.PASS if ok else Status.FAIL, observed=observed, requests=total, **base,
        reason=(f"canary received {observed:.1%} of {_fmt(total)} requests; the route says "
                f"{expected:.1%} (allowed difference {allowed:.1%})"))


def judge(spec: AnalysisSpec, subject: Subject, results: Mapping[str, QueryResult], *,
          at: datetime) -> Run:
    """One run: every check that applies to this kind of rollout, and the split."""
    checks = tuple(judge_check(c, spec, results) for c in spec.checks_for(subject.kind))
    split = verify_split(spec.split, subject, results) if spec.split else None
    return Run(at=at, checks=checks, split=split)


# ---- a step's analysis over time -------------------------------------------------------


class Outcome(StrEnum):
    PENDING = "pending"  # warming up, or no run yet
    PASSED = "passed"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"
    SPLIT_MISMATCH = "split_mismatch"


class Action(StrEnum):
    """What the rollout should do now; only PROCEED lets a step-up or approval go ahead."""

    WAIT = "wait"
    PROCEED = "proceed"
    ROLLBACK = "rollback"
    PAUSE = "pause"


class Verdict(Frozen):
    outcome: Outcome
    action: Action
    reason: str
    failing: CheckResult | None = None
    split: SplitResult | None = None
    latest: Run | None = None


class StepAnalysis(Frozen):
    """The analysis of one step so far. Start one when the step's weights land."""

    step: int
    started_at: datetime
    failures: int = 0
    passes_in_row: int = 0
    #: the first inconclusive run of a stretch without a verdict; only a failed run or
    #: ``passes_required`` passing runs in a row end the stretch (a shorter run of passes
    #: does not), so that its ``inconclusive_timeout`` is reached however runs alternate
    inconclusive_since: datetime | None = None
    last_run_at: datetime | None = None
    latest: Run | None = None
    last_failure: Run | None = None
    mismatch: SplitResult | None = None

    def warm_until(self, spec: AnalysisSpec) -> datetime:
        return self.started_at + spec.warmup

    def next_due(self, spec: AnalysisSpec) -> datetime:
        """One interval after the warm-up, then every interval: each run has at least one
        interval of traffic to measure."""
        return max(self.last_run_at or self.warm_until(spec), self.warm_until(spec)) \
            + spec.interval

    def due(self, spec: AnalysisSpec, now: datetime) -> bool:
        return now >= self.next_due(spec)

    def window(self, spec: AnalysisSpec, now: datetime) -> timedelta:
        """What a run at ``now`` measures: since the warm-up ended, at most ``window``."""
        return max(min(spec.window, now - self.warm_until(spec)), timedelta(seconds=1))

    def record(self, spec: AnalysisSpec, run: Run) -> StepAnalysis:
        """Fold one run in; a run inside the warm-up counts for nothing."""
        if run.at < self.warm_until(spec):
            return self
        status = run.status
        update: dict[str, object] = {"last_run_at": run.at, "latest": run}
        if status is Status.FAIL:
            update.update(failures=self.failures + 1, passes_in_row=0, last_failure=run,
                          inconclusive_since=None)
        elif status is Status.PASS:
            passes = self.passes_in_row + 1
            update.update(passes_in_row=passes, inconclusive_since=self._stall_after_pass(
                spec, passes))
        else:
            update.update(passes_in_row=0,
                          inconclusive_since=self.inconclusive_since or run.at)
        if run.split is not None and run.split.status is Status.FAIL and self.mismatch is None:
            update["mismatch"] = run.split
        return self.model_copy(update=update)

    def _stall_after_pass(self, spec: AnalysisSpec, passes: int) -> datetime | None:
        """A pass ends an inconclusive streak only when it completes ``passes_required``:
        else runs that alternate pass and inconclusive would never pass and never time out,
        and the rollout would wait for ever without a pause."""
        return None if passes >= spec.passes_required else self.inconclusive_since

    def verdict(self, spec: AnalysisSpec, now: datetime) -> Verdict:
        """Where the step stands at ``now``. Precedence: failure past the limit, then a split
        mismatch, then a pass, then an inconclusive streak past its timeout, then waiting."""
        latest = self.latest
        if self.failures > spec.failure_limit:
            run = self.last_failure
            failing = run.failing if run else None
            action = Action.ROLLBACK if spec.on_failure is OnFailure.ROLLBACK else Action.PAUSE
            return Verdict(outcome=Outcome.FAILED, action=action, failing=failing,
                           latest=latest, split=latest.split if latest else None,
                           reason=f"check {failing.name if failing else '?'} failed "
                                  f"{counted(self.failures, 'time')}, more than the limit of "
                                  f"{spec.failure_limit}: {failing.reason if failing else ''}")
        if self.mismatch is not None:
            return Verdict(outcome=Outcome.SPLIT_MISMATCH, action=Action.PAUSE,
                           split=self.mismatch, latest=latest,
                           reason=f"split mismatch: {self.mismatch.reason}")
        split = latest.split if latest else None
        if self.passes_in_row >= spec.passes_required:
            return Verdict(outcome=Outcome.PASSED, action=Action.PROCEED, latest=latest,
                           split=split, reason=counted(self.passes_in_row, "passing run"))
        if latest is None:
            when = self.next_due(spec)
            return Verdict(outcome=Outcome.PENDING, action=Action.WAIT,
                           reason=f"warming up: first run at {when:%H:%M:%S} UTC")
        if self.inconclusive_since is not None:
            return self._stalled(spec, now, latest)
        failing = latest.failing
        if failing is not None:
            return Verdict(outcome=Outcome.PENDING, action=Action.WAIT, failing=failing,
                           latest=latest, split=split,
                           reason=f"check {failing.name} failed {counted(self.failures, 'time')} "
                                  f"(limit {spec.failure_limit}): {failing.reason}")
        return Verdict(outcome=Outcome.PENDING, action=Action.WAIT, latest=latest, split=split,
                       reason=f"{self.passes_in_row} of {spec.passes_required} passing runs")


    def _stalled(self, spec: AnalysisSpec, now: datetime, latest: Run) -> Verdict:
        """A stretch without a verdict, from its first inconclusive run: a pause once it
        lasts ``inconclusive_timeout``, whether its runs were all inconclusive or passes
        short of ``passes_required`` came between them."""
        assert self.inconclusive_since is not None
        reason, waited = self._stall_reason(spec, latest), now - self.inconclusive_since
        limit = spec.inconclusive_timeout
        if waited >= limit:
            return Verdict(outcome=Outcome.INCONCLUSIVE, action=Action.PAUSE, latest=latest,
                           split=latest.split, reason=f"inconclusive for {_span(waited)} "
                                                      f"(limit {_span(limit)}): {reason}")
        if latest.status is Status.PASS:
            return Verdict(outcome=Outcome.PENDING, action=Action.WAIT, latest=latest,
                           split=latest.split,
                           reason=f"{self.passes_in_row} of {spec.passes_required} passing "
                                  "runs, after inconclusive ones since "
                                  f"{self.inconclusive_since:%Y-%m-%d %H:%M:%S} UTC (a pause "
                                  f"after {_span(limit)} without a verdict)")
        return Verdict(outcome=Outcome.INCONCLUSIVE, action=Action.WAIT, latest=latest,
                       split=latest.split, reason=f"inconclusive, waiting: {reason}")

    def _stall_reason(self, spec: AnalysisSpec, latest: Run) -> str:
        """Why the streak has no verdict: the latest inconclusive check, or, when the latest
        run passed, that passes keep being broken by inconclusive runs."""
        why = latest.inconclusive
        if why is not None:
            return f"{why.name}: {why.reason}"
        if latest.status is Status.PASS:
            return (f"{self.passes_in_row} of {spec.passes_required} passing runs in a row: "
                    "inconclusive runs keep breaking the passes")
        return "inconclusive"


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 3600 == 0 and seconds:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0 and seconds:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def advance(spec: AnalysisSpec, subject: Subject, state: StepAnalysis, port: Analysis,
            now: datetime) -> tuple[StepAnalysis, Verdict]:
    """One scheduler sweep's worth of analysis: run it if due, fold it in, say where the step
    stands. The caller saves the state and acts on the verdict's action."""
    if state.due(spec, now):
        queries = queries_for(spec, subject, state.window(spec, now))
        state = state.record(spec, judge(spec, subject, ask(port, queries, now), at=now))
    return state, state.verdict(spec, now)
