"""The canary analysis as a gate of the rollout: what a step's analysis measures, whether it
is due, and whether it holds the next step back (DESIGN invariant 11).

Pure: the state machine asks these, and the service asks `run_analysis` to put the queries
to the port outside the target lock, so a slow Prometheus never holds a lock.
"""

from __future__ import annotations

from datetime import datetime

from rollout.domain.analysis import Analysis, Subject, SubjectKind, ask, queries_for
from rollout.domain.canary import AnalysisSetup
from rollout.domain.models import Phase, Rollout
from rollout.domain.split import standing_pair
from rollout.domain.verdict import Action, Run, StepAnalysis, Verdict, judge

#: phases in which the canary serves its step's share and the analysis runs
MEASURED_PHASES = frozenset({Phase.BAKING, Phase.AWAITING_APPROVAL})


def gated(r: Rollout) -> bool:
    """A step the analysis must pass: the rollout has one and the canary takes traffic."""
    return r.analysis is not None and r.step >= 0


def started(r: Rollout, now: datetime) -> StepAnalysis | None:
    """A fresh analysis of the current step (after it lands, or on resume); None without one.
    The last step needs none: at 100% there is no stable traffic to compare with."""
    if not gated(r) or r.step >= r.plan.last_index:
        return None
    return StepAnalysis(step=r.step, started_at=now)


def subject_of(r: Rollout) -> Subject:
    """The canary and stable as the queries name them, with the share the weights give the
    canary now (after a resume over weights changed by hand, those weights')."""
    setup = r.analysis
    assert setup is not None
    pair = standing_pair(r)
    canary = pair.canary or 0
    share = canary / (pair.stable + canary) if pair.stable + canary else 0.0
    return subject_for(setup, namespace=r.target.namespace, stable=r.stable,
                       canary=r.canary, share=share)


def subject_for(setup: AnalysisSetup, *, namespace: str, stable: str, canary: str,
                share: float) -> Subject:
    """The subject of an analysis setup, for a rollout or for one about to start."""
    pool = setup.pool if setup.kind is SubjectKind.ADAPTER else ""
    return Subject(kind=setup.kind, namespace=namespace, stable=stable, canary=canary,
                   pool=pool, model=setup.model, canary_share=share)


def current(r: Rollout) -> StepAnalysis | None:
    """The analysis of the step the rollout is at, if one runs."""
    state = r.step_analysis
    if not gated(r) or state is None or state.step != r.step:
        return None
    return state


def verdict(r: Rollout, now: datetime) -> Verdict | None:
    """Where the current step's analysis stands; None where no analysis gates the step."""
    state = current(r)
    if state is None or r.analysis is None:
        return None
    return state.verdict(r.analysis.spec, now)


def holding_back(r: Rollout, now: datetime) -> str | None:
    """Why the next step may not be requested or applied yet; None when nothing holds it.
    Inconclusive never passes: only a verdict that says proceed lets the step go."""
    if not gated(r) or r.step >= r.plan.last_index:
        return None
    found = verdict(r, now)
    if found is None:
        return "its canary analysis has not started"
    return None if found.action is Action.PROCEED else found.reason


def due(r: Rollout, now: datetime) -> bool:
    """Is a run of the current step's analysis due (a cheap look, before any lock)?"""
    state = current(r)
    if state is None or r.analysis is None or not r.active or r.phase not in MEASURED_PHASES:
        return False
    return state.due(r.analysis.spec, now)


def run_analysis(r: Rollout, port: Analysis, now: datetime) -> Run:
    """Ask every query of one run of the current step's analysis and judge it."""
    state = current(r)
    assert state is not None and r.analysis is not None
    spec, subject = r.analysis.spec, subject_of(r)
    queries = queries_for(spec, subject, state.window(spec, now))
    return judge(spec, subject, ask(port, queries, now), at=now)
