"""Builders for pure domain tests: no Redis, no cluster, an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime

from rollout.domain import machine
from rollout.domain.models import Actor, Baseline, Rollout, Target, TargetKind
from rollout.domain.plan import build_plan

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ALICE = Actor(id="U0ALICE", name="alice", via="slack", channel="C0ROLLOUT")
BOB = Actor(id="U0BOB", name="bob", via="slack", channel="C0ROLLOUT")
CAROL = Actor(id="U0CAROL", name="carol", via="slack", channel="C0ROLLOUT")
TARGET = Target(kind=TargetKind.ROUTE, namespace="default", name="routes-to-llm", rule=0)
BASELINE = Baseline(
    stable={"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "llm-pool",
            "weight": 100},
    canary={"group": "inference.networking.k8s.io", "kind": "InferencePool",
            "name": "llm-pool-version-2", "weight": 0},
    stable_weight=100, canary_weight=0,
)


def started(
    steps: tuple[int, ...] = (10, 25, 50, 100), *, interval: int = 0, auto: bool = False,
    approvals: int = 1, baseline: Baseline = BASELINE, **plan_options: int,
) -> Rollout:
    plan = build_plan(list(steps), interval_seconds=interval, auto=auto, approvals=approvals)
    if plan_options:
        plan = plan.model_copy(update=plan_options)
    decision = machine.start(
        rollout_id="r1", target=TARGET, stable="llm-pool", canary="llm-pool-version-2",
        plan=plan, baseline=baseline, actor=ALICE, now=T0,
    )
    return decision.rollout
