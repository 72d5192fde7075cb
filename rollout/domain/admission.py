"""What the service asks the preflight gates before a start and before each step-up.

A start is refused on any finding (nothing is written). Before a step, a finding that only
waits (capacity for the share the step gives the canary) holds the step where it is and says
why; any other finding pauses the rollout with the itemised reason. Pure: the service reads
the facts and the freeze, this module decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from rollout.domain.facts import POOL_GROUP, ClusterFacts
from rollout.domain.findings import Finding, Outcome, Verdict
from rollout.domain.models import Baseline, Rollout, Target, TargetKind
from rollout.domain.preflight import (
    CapacityPolicy,
    PreflightRequest,
    check_rollback,
    preflight,
    ready_endpoints,
)


@dataclass(frozen=True)
class Hold:
    """A step-up that may not go ahead now: `pause` it (a person must fix something), or
    keep the rollout as it is and retry at the next tick or click."""

    reason: str
    pause: bool = False
    noted: bool = True  # kept on the rollout for its card; a freeze is shown from its record


def route_of(target: Target) -> str | None:
    """The route whose ownership the GitOps gate reads (a rewrite carries its own)."""
    return target.name if target.kind is TargetKind.ROUTE else None


def rewrite_of(target: Target) -> str | None:
    """The rewrite an adapter rollout writes (None for a route)."""
    return target.name if target.kind is TargetKind.REWRITE else None


def request_for(*, target: Target, stable: str, canary: str, baseline: Baseline,
                share_percent: int | None, allow_gitops: bool) -> PreflightRequest:
    """The gates that apply to a rollout of `canary` on `target`; `share_percent` None is a
    start (capacity then needs only the minimum)."""
    if target.kind is TargetKind.REWRITE:
        return PreflightRequest(stable=stable, canary=canary, rewrite=target.name,
                                rule=target.rule, rewrite_group=target.api_group,
                                share_percent=share_percent, allow_gitops=allow_gitops)
    group = str(baseline.stable.get("group") or POOL_GROUP)
    canary_group = str(baseline.canary.get("group") or POOL_GROUP) if baseline.canary else None
    return PreflightRequest(stable=stable, canary=canary, pool_group=group,
                            canary_group=canary_group if canary_group != group else None,
                            canary_in_rule=baseline.canary is not None,
                            share_percent=share_percent, allow_gitops=allow_gitops)


def stable_ready(facts: ClusterFacts, request: PreflightRequest) -> int | None:
    """The stable pool's Ready endpoints now (at start: what a rollback will need back);
    None for an adapter rollout, whose two adapters share one pool."""
    pool = facts.pool(request.stable, request.pool_group)
    if request.rewrite is not None or pool is None:
        return None
    return ready_endpoints(facts, pool)


def step_hold(facts: ClusterFacts, r: Rollout, *, percent: int,
              policy: CapacityPolicy) -> Hold | None:
    """Before the step that gives the canary `percent`: None when it may go ahead."""
    request = request_for(target=r.target, stable=r.stable, canary=r.canary,
                          baseline=r.baseline, share_percent=percent,
                          allow_gitops=r.allow_gitops)
    verdict = preflight(facts, request, policy)
    verdict = Verdict(findings=verdict.findings + rollback_findings(facts, r, policy=policy))
    if verdict.outcome is Outcome.PROCEED:
        return None
    if verdict.outcome is Outcome.WAIT:
        return Hold(reason=f"step to {percent}% waits:\n{verdict.explain()}")
    return Hold(reason=f"preflight before the step to {percent}% failed:\n"
                       f"{verdict.explain()}", pause=True)


def rollback_findings(facts: ClusterFacts, r: Rollout, *,
                      policy: CapacityPolicy) -> tuple[Finding, ...]:
    """Why the stable pool could not take all the traffic back now (nothing when it could);
    only a pool rollout that recorded the stable pool's Ready endpoints at start is checked."""
    if r.stable_ready is None or r.target.kind is not TargetKind.ROUTE:
        return ()
    group = str(r.baseline.stable.get("group") or POOL_GROUP)
    return check_rollback(facts, stable=r.stable, group=group, had=r.stable_ready,
                          policy=policy)


def rollback_hold(facts: ClusterFacts, r: Rollout, *, policy: CapacityPolicy) -> Hold | None:
    """The scheduler's sweep and `resume`: a pause (with the numbers) when a rollback could
    no longer count on the stable pool; None when it still can."""
    found = rollback_findings(facts, r, policy=policy)
    if not found:
        return None
    return Hold(reason=f"{r.stable} could not take the traffic back:\n"
                       f"{Verdict(findings=found).explain()}", pause=True)


def rollback_warning(facts: ClusterFacts, r: Rollout, *, policy: CapacityPolicy) -> str:
    """The warning a rollback answer starts with when the stable pool is short of the Ready
    endpoints it had at start: the rollback still goes ahead (a person asked for it)."""
    found = rollback_findings(facts, r, policy=policy)
    return "".join(f"Warning: {f.problem}; rolling back anyway.\n" for f in found)
