"""Plain-text rendering of command results, for the terminal."""

from __future__ import annotations

from rollout.models import AuditEvent, Rollout
from rollout.plan import describe_plan
from rollout.service import Status
from rollout.split import expected_pair


def rollout_line(r: Rollout) -> str:
    phase = r.phase.value.replace("_", " ")
    return (f"{r.id}  {r.target.describe()}  {r.stable} → {r.canary}  "
            f"{r.canary_percent}%  {phase}")


def rollout_detail(r: Rollout) -> list[str]:
    pair = expected_pair(r)
    steps = "  ".join(
        ("[" + f"{p}%" + "]") if i == r.step else f"{p}%" for i, p in enumerate(r.plan.percents)
    )
    lines = [
        f"rollout   {r.id} (version {r.version})",
        f"target    {r.target.describe()}",
        f"moving    {r.stable} (stable) → {r.canary} (canary)",
        f"phase     {r.phase.value.replace('_', ' ')}",
        f"split     {pair.describe()}  (canary {r.canary_percent}%)",
        f"plan      {describe_plan(r.plan)}",
        f"steps     {steps}",
        f"started   {r.created_at:%Y-%m-%d %H:%M:%S} UTC by {r.requester.label}",
    ]
    if r.next_due_at is not None:
        lines.append(f"next due  {r.next_due_at:%Y-%m-%d %H:%M:%S} UTC")
    if r.pause is not None:
        lines.append(f"paused    {r.pause.kind.value}: {r.pause.reason}")
    for approval in r.approvals:
        lines.append(f"approved  step {approval.step + 1} by {approval.actor.label} "
                     f"at {approval.at:%H:%M:%S}")
    return lines


def status_lines(status: Status) -> list[str]:
    if status.rollout is None:
        return [status.message] + ([f"note: {status.cluster_note}"] if status.cluster_note else [])
    lines = rollout_detail(status.rollout)
    if status.observed is not None:
        lines.append(f"cluster   {status.observed.pair.describe()} "
                     f"(resourceVersion {status.observed.resource_version})")
    if status.cluster_note:
        lines.append(f"note      {status.cluster_note}")
    return lines


def history_lines(events: list[AuditEvent]) -> list[str]:
    if not events:
        return ["no events recorded"]
    out = []
    for e in events:
        where = f" in {e.actor.channel}" if e.actor.channel else ""
        step = f" step {e.step + 1} ({e.percent}%)" if e.step is not None and e.step >= 0 else ""
        detail = f": {e.detail}" if e.detail else ""
        login = f" (login {e.actor.login})" if e.actor.login else ""
        out.append(f"{e.at:%Y-%m-%d %H:%M:%S}  {e.action}{step} by {e.actor.label}{login} "
                   f"via {e.actor.via}{where}{detail}")
    return out
