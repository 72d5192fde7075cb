"""The canary analysis of a rollout as people read it: one headline and a line per check
with the canary's and the stable's latest values, the threshold and the verdict. The card,
`status` in Slack and the CLI all show these same lines."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rollout.domain import gating
from rollout.domain.models import Phase, Rollout
from rollout.domain.verdict import CheckResult, Run, SplitResult, Status

NO_ANALYSIS = ("no canary analysis: steps are not gated on metrics (set PROMETHEUS_URL for "
               "the bot to run one)")


@dataclass(frozen=True)
class CheckLine:
    name: str
    status: Status
    text: str  # "canary 0.31 · stable 0 · threshold 0.01 (at most 1.5 x stable + 0.01)"


@dataclass(frozen=True)
class AnalysisView:
    headline: str
    checks: tuple[CheckLine, ...] = ()
    split: str = ""


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def check_line(c: CheckResult) -> CheckLine:
    text = (f"canary {_fmt(c.canary)} · stable {_fmt(c.stable)} · threshold "
            f"{_fmt(c.threshold)} ({c.bound})")
    if c.status is Status.INCONCLUSIVE and c.reason:
        text += f": {c.reason}"
    return CheckLine(name=c.name, status=c.status, text=text)


def split_line(s: SplitResult) -> str:
    return f"split {s.status.value}: {s.reason}"


def analysis_view(r: Rollout, now: datetime) -> AnalysisView:
    """What the analysis of the step the rollout is at says now."""
    setup = r.analysis
    if setup is None:
        return AnalysisView(headline=NO_ANALYSIS)
    name = f"canary analysis `{setup.name}`"
    verdict = gating.verdict(r, now)
    if verdict is None:
        when = "after step 1" if r.step < 0 else "none at 100%"
        return AnalysisView(headline=f"{name}: {when}")
    head = f"{name} of step {r.step + 1}: {verdict.outcome.value.replace('_', ' ')}"
    running = r.active and r.phase is not Phase.PAUSED
    if running or verdict.latest is not None:  # a run came: its reason stands
        head += f" ({verdict.reason})"
    elif not r.active:  # "first run at …" would name a run that never comes
        head += f" (no run came before it was {r.phase.value.replace('_', ' ')})"
    else:
        head += " (no run while paused; resuming starts it over)"
    run: Run | None = verdict.latest
    state = r.step_analysis
    if verdict.failing is not None and state is not None and state.last_failure is not None:
        run = state.last_failure  # the run that failed, with its values
    if run is None:
        return AnalysisView(headline=head)
    split = run.split or verdict.split
    return AnalysisView(headline=head, checks=tuple(check_line(c) for c in run.checks),
                        split=split_line(split) if split is not None else "")


def plain_lines(view: AnalysisView) -> list[str]:
    """The view for a terminal or a plain chat reply."""
    lines = [view.headline]
    lines += [f"  {c.status.value:<12} {c.name}: {c.text}" for c in view.checks]
    if view.split:
        lines.append(f"  {view.split}")
    return lines
