"""Plain-text rendering of command results, for the terminal. Every time says UTC: a bare
`04:12:05` on an operator's terminal reads as local time."""

from __future__ import annotations

from datetime import datetime, timedelta

from handlers.analysis_view import analysis_view, plain_lines
from handlers.sentences import event_sentence, throttle_hold_sentence
from rollout.domain.machine import pause_summary
from rollout.domain.models import AuditEvent, Gate, Phase, Rollout, Via
from rollout.domain.plan import describe_plan
from rollout.domain.split import share_percent, standing_pair
from rollout.service import Status


def rollout_line(r: Rollout) -> str:
    phase = r.phase.value.replace("_", " ")
    return (f"{r.id}  {r.target.describe()}  {r.stable} → {r.canary}  "
            f"{r.canary_percent}%  {phase}")


def rollout_detail(r: Rollout, now: datetime | None = None) -> list[str]:
    pair = standing_pair(r)
    percent = share_percent(pair) if r.accepted_weights is not None else r.canary_percent
    steps = "  ".join(
        ("[" + f"{p}%" + "]") if i == r.step else f"{p}%" for i, p in enumerate(r.plan.percents)
    )
    lines = [
        f"rollout   {r.id}",
        f"target    {r.target.describe()}",
        f"moving    {r.stable} (stable) → {r.canary} (canary)",
        f"phase     {r.phase.value.replace('_', ' ')}",
        f"split     {pair.describe()}  (canary {percent}%"
        + (", set by hand: the next step writes the plan's)" if r.accepted_weights else ")"),
        f"plan      {describe_plan(r.plan)}",
        f"steps     {steps}",
        f"started   {r.created_at:%Y-%m-%d %H:%M:%S} UTC by {r.requester.label}",
    ]
    if r.next_due_at is not None:
        lines.append(f"next due  {r.next_due_at:%Y-%m-%d %H:%M:%S} UTC{_what_is_due(r)}")
    first, *rest = plain_lines(analysis_view(r, now or r.updated_at))
    lines += [f"analysis  {first}", *(f"        {line}" for line in rest)]
    if r.standing_pause is not None:
        lines.append(f"paused    {pause_summary(r.standing_pause).removeprefix('paused ')}")
    if r.phase is Phase.ROLLED_BACK and r.rolled_back_by is not None:
        why = f": {r.rollback_reason}" if r.rollback_reason else ""
        lines.append(f"rolled back by {r.rolled_back_by.label}{why}")
    for approval in r.approvals:
        lines.append(f"approved  step {approval.step + 1} by {approval.actor.label} "
                     f"at {approval.at:%Y-%m-%d %H:%M:%S} UTC")
    return lines


def _what_is_due(r: Rollout) -> str:
    """What the scheduler does at the due time: a bare time reads, while a step awaits
    approval, as the step's own (it is the reminder's, or the approval's timeout)."""
    pending = r.pending_step
    if pending is None or r.next_due_at is None:
        return ""
    label = f"step {pending + 1} ({r.plan.steps[pending].percent}%)"
    if r.phase is Phase.BAKING:
        how = "applies" if r.plan.steps[pending].gate is Gate.AUTO else "opens for approval"
        return f" (step {r.step + 1}'s bake ends; then {label} {how})"
    if r.phase is not Phase.AWAITING_APPROVAL or r.awaiting_since is None:
        return ""
    timeout = r.plan.approval_timeout_seconds
    if timeout and r.next_due_at >= r.awaiting_since + timedelta(seconds=timeout):
        return f" (unless approved, {label} times out and the rollout pauses)"
    return f" (unless approved, the approvers are reminded of {label})"


def status_lines(status: Status) -> list[str]:
    frozen = [f"frozen    rollouts are {status.freeze.describe()}"] if status.freeze else []
    if status.rollout is None:
        return [status.message] + ([f"note: {status.cluster_note}"] if status.cluster_note
                                   else []) + frozen
    lines = rollout_detail(status.rollout, now=status.read_at) + frozen
    if status.rollout.held and status.rollout.active:
        lines.append(f"held      {status.rollout.held}")
    if status.ticks_held_until is not None and status.rollout.active:
        lines.append(f"throttled {throttle_hold_sentence(status.ticks_held_until)}")
    if status.observed is not None:
        lines.append(f"cluster   {status.observed.pair.describe()} "
                     f"(resourceVersion {status.observed.resource_version})")
    if status.cluster_note:
        lines.append(f"note      {status.cluster_note}")
    return lines


def history_lines(events: list[AuditEvent]) -> list[str]:
    """The rollout's story in sentences, as the card's thread tells it (`--output json` for
    the raw events)."""
    if not events:
        return ["no events recorded"]
    return [f"{e.at:%Y-%m-%d %H:%M:%S} UTC  {event_sentence(e)}{_login(e)}{_where(e)}"
            for e in events]


def _login(e: AuditEvent) -> str:
    """The operating-system login behind a CLI actor, where `--as` named someone else."""
    return f" (login {e.actor.login})" if e.actor.login else ""


def _where(e: AuditEvent) -> str:
    """From Slack (and which channel) where that is not obvious from the name."""
    if e.actor.via is not Via.SLACK:
        return ""
    return f" (in Slack, {e.actor.channel})" if e.actor.channel else " (in Slack)"


def watch_line(status: Status, now: datetime) -> str:
    """One line per change while `status --watch` follows a rollout."""
    r = status.rollout
    if r is None:
        return f"{now:%H:%M:%S} UTC  {status.message}"
    parts = [status.message]
    if r.standing_pause is not None:
        parts.append(pause_summary(r.standing_pause))
    elif r.phase is Phase.BAKING and r.next_due_at is not None and r.pending_step is not None:
        # awaiting approval, the due time is the next reminder's (or the approval timeout's)
        step = r.plan.steps[r.pending_step]
        parts.append(f"step {r.pending_step + 1} ({step.percent}%) due {r.next_due_at:%H:%M:%S} "
                     "UTC")
    if status.observed is not None:
        parts.append(f"cluster {status.observed.pair.describe()}")
    if status.cluster_note:
        parts.append(status.cluster_note)
    return f"{now:%H:%M:%S} UTC  " + " · ".join(parts)
