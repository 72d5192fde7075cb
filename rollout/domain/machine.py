"""Pure transitions: (rollout, command, now) -> Decision. No I/O, no clock of its own.

A Decision carries the next state as it will be once its effect has landed, the one effect
the service must apply to the cluster (if any), the audit events, and the answer for the
person who asked. When the effect fails, the service asks `effect_failed` for the state to
save instead, so a failed write never leaves the rollout claiming a step it did not take.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, NoReturn

from rollout.domain import gating
from rollout.domain.canary import AnalysisSetup
from rollout.domain.errors import Conflict, NotYet, Outdated, Unauthorized
from rollout.domain.models import (
    Actor,
    Approval,
    AuditAction,
    AuditEvent,
    Baseline,
    Click,
    Gate,
    Pause,
    PauseKind,
    Phase,
    Plan,
    Rollout,
    Target,
    TargetKind,
    Via,
)
from rollout.domain.plan import format_seconds
from rollout.domain.split import (
    MarkerState,
    Observed,
    Pair,
    acceptable_pairs,
    baseline_pair,
    expected_pair,
)
from rollout.domain.verdict import Action, Run, StepAnalysis


@dataclass(frozen=True)
class Prepare:
    """Mark the target as owned by the rollout; add the canary at weight 0 if absent."""


@dataclass(frozen=True)
class ApplyStep:
    """Write the weights of plan step `step` (canary at `percent`)."""

    step: int
    percent: int


@dataclass(frozen=True)
class Restore:
    """Put the managed entries back exactly as they were before start."""


@dataclass(frozen=True)
class Retire:
    """Remove the stable entry (an old pool's backendRef, an old adapter's target) from the
    rule of a completed rollout; nothing else on the object changes."""


Effect = Prepare | ApplyStep | Restore | Retire


@dataclass(frozen=True)
class Decision:
    rollout: Rollout
    message: str
    effect: Effect | None = None
    events: tuple[AuditEvent, ...] = ()
    changed: bool = True
    #: what still stands when the effect cannot be written, when that is more than the state
    #: before the decision (a failed analysis that could not roll back is still a failure)
    unwritten: Decision | None = None


def _event(
    r: Rollout, action: AuditAction, actor: Actor, now: datetime, detail: str = "",
    step: int | None = None,
) -> AuditEvent:
    percent = r.plan.steps[step].percent if step is not None and step >= 0 else None
    return AuditEvent(
        at=now, rollout_id=r.id, target=r.target.key, action=action, actor=actor,
        step=step, percent=percent, detail=detail,
    )


def _update(r: Rollout, now: datetime, **changes: Any) -> Rollout:
    return r.model_copy(update={"updated_at": now, **changes})


def _awaiting_due(plan: Plan, since: datetime, last_reminder: datetime | None) -> datetime | None:
    """When the scheduler should next look at a step waiting for approval."""
    candidates: list[datetime] = []
    if plan.reminder_seconds:
        candidates.append((last_reminder or since) + timedelta(seconds=plan.reminder_seconds))
    if plan.approval_timeout_seconds:
        candidates.append(since + timedelta(seconds=plan.approval_timeout_seconds))
    return min(candidates) if candidates else None


def _await_approval(r: Rollout, now: datetime) -> Rollout:
    return _update(
        r, now, phase=Phase.AWAITING_APPROVAL, awaiting_since=now, last_reminder_at=None,
        next_due_at=_awaiting_due(r.plan, now, None), pause=None, approval_held_at=None,
    )


def _approval_released(r: Rollout, now: datetime) -> Rollout:
    """An open approval the analysis held, free again: its reminder and timeout clocks
    resume where they stopped (moved on by the time held), so neither counts the hold, and a
    flapping analysis neither pings the approvers at each pass nor keeps the timeout off."""
    held_at = r.approval_held_at
    if held_at is None:
        return r
    held = now - held_at
    since = (r.awaiting_since or held_at) + held
    last = r.last_reminder_at + held if r.last_reminder_at is not None else None
    return _update(r, now, awaiting_since=since, last_reminder_at=last, approval_held_at=None,
                   next_due_at=_awaiting_due(r.plan, since, last))


def _after_apply(r: Rollout, step: int, now: datetime) -> Rollout:
    """The state once `step` has landed: completed at 100%, else baking the next bake time."""
    if step == r.plan.last_index:
        return _update(
            r, now, step=step, phase=Phase.COMPLETED, next_due_at=None, awaiting_since=None,
            finished_at=now, pause=None, held="", accepted_weights=None,
            keep_until=now + timedelta(seconds=r.keep_seconds),
        )
    landed = _update(
        r, now, step=step, phase=Phase.BAKING, awaiting_since=None, last_reminder_at=None,
        next_due_at=now + timedelta(seconds=r.plan.interval_seconds), pause=None, held="",
        accepted_weights=None, approval_held_at=None,
    )
    return _update(landed, now, step_analysis=gating.started(landed, now))


def _waits_for_people(r: Rollout, step: int) -> bool:
    """A step people must approve: its own gate, or an automatic plan not yet approved."""
    return r.plan.steps[step].gate is Gate.APPROVAL or r.needs_plan_approval


def _ready_for_next(r: Rollout, now: datetime) -> Rollout:
    """Where a rollout stands once its bake is over: awaiting approval, or due to auto-step."""
    nxt = r.pending_step
    if nxt is None:
        return r
    if gating.holding_back(r, now) is not None:  # the analysis moves it on once it passes
        return _update(r, now, phase=Phase.BAKING, next_due_at=None, pause=None)
    if _waits_for_people(r, nxt):
        return _await_approval(r, now)
    return _update(r, now, phase=Phase.BAKING, next_due_at=now, pause=None)


def _bake_over(r: Rollout, now: datetime) -> Rollout:
    """A bake whose time has passed opens the approval, even before the scheduler noticed."""
    if (
        r.phase is Phase.BAKING
        and r.next_due_at is not None
        and r.next_due_at <= now
        and r.pending_step is not None
        and _waits_for_people(r, r.pending_step)
        and gating.holding_back(r, now) is None
    ):
        return _await_approval(r, r.next_due_at)
    return r


def _step_label(r: Rollout, step: int) -> str:
    return f"step {step + 1} ({r.plan.steps[step].percent}%)"


def _require_active(r: Rollout, action: str) -> None:
    if not r.active:
        raise Conflict(
            f"rollout {r.id} of {r.canary} is {r.phase.value.replace('_', ' ')}: "
            f"nothing to {action}"
        )


def start(
    *, rollout_id: str, target: Target, stable: str, canary: str, plan: Plan,
    baseline: Baseline, actor: Actor, now: datetime, allow_gitops: bool = False,
    analysis: AnalysisSetup | None = None, keep_seconds: int = 0,
) -> Decision:
    """A new rollout: the target is prepared, then the first step awaits its gate. With an
    `analysis`, every step after the first waits for the previous one's analysis to pass."""
    r = Rollout(
        id=rollout_id, target=target, stable=stable, canary=canary, plan=plan,
        baseline=baseline, phase=Phase.BAKING, requester=actor, created_at=now, updated_at=now,
        next_due_at=now, allow_gitops=allow_gitops, analysis=analysis,
        keep_seconds=keep_seconds,
    )
    r = _ready_for_next(r, now)
    first = _step_label(r, 0)
    gate = "awaits approval" if r.phase is Phase.AWAITING_APPROVAL else "applies automatically"
    if plan.automatic:
        gate = (f"waits until an approver other than {actor.label} approves the plan "
                "(`approve-plan`), because later steps apply without a per-step approval")
    return Decision(
        rollout=r, effect=Prepare(),
        events=(_event(r, AuditAction.STARTED, actor, now,
                       f"{stable} → {canary} on {target.describe()}"),),
        message=f"Rollout {r.id} started: {stable} → {canary}; {first} {gate}. "
                f"{analysis_note(r)}",
    )


def analysis_note(r: Rollout) -> str:
    """What gates the steps besides people and time, in one sentence."""
    if r.analysis is None:
        return ("No canary analysis: steps are not gated on metrics (the bot has no "
                "PROMETHEUS_URL).")
    return (f"Canary analysis `{r.analysis.name}` must pass after each step before the next "
            "is requested or applied.")


def approve(
    r: Rollout, *, actor: Actor, now: datetime, click: Click | None = None,
    self_approval: bool = False,
) -> Decision:
    """Record an approval of the pending step; the last one needed applies the step.

    A click is refused only for what a reviewer cares about: the step already applied, the
    rollout finished or paused, another step pending, or the epoch moved (a pause, resume or
    drift since the card was drawn). Reminders and other approvals never refuse it."""
    if click is not None and click.step <= r.step and r.phase is not Phase.ROLLED_BACK:
        return Decision(  # rolled back, the step is applied no more: refused below, saying so
            rollout=r, changed=False,
            message=f"{_step_label(r, click.step)} of {r.canary} is already applied; "
                    "nothing to do.",
        )
    _require_active(r, "approve")
    _refuse_paused(r)
    r = _bake_over(r, now)
    pending = r.pending_step
    if pending is None:
        raise Conflict(f"{r.canary} has no pending step to approve")
    if click is not None and click.step != pending:
        raise Outdated(f"step {click.step + 1} is not the pending step; "
                       f"{_step_label(r, pending)} is")
    if click is not None and click.epoch is not None and click.epoch != r.epoch:
        raise Outdated(f"{r.canary} was paused or resumed since this card was drawn; look at "
                       f"the card again: {_step_label(r, pending)} is pending")
    if r.needs_plan_approval:
        raise Conflict(f"the plan of {r.canary} applies steps automatically and is not "
                       "approved yet: an approver other than its author approves it with "
                       "`approve-plan` (the card's Approve plan button)")
    if r.phase is Phase.BAKING:
        _refuse_baking(r, pending, now)
    _refuse_author(r, actor, self_approval, "approve its steps")
    already = r.approvers_of(pending)
    if any(a.id == actor.id for a in already):
        return Decision(
            rollout=r, changed=False,
            message=f"{actor.label} already approved {_step_label(r, pending)}; "
            f"{len(already)}/{r.plan.steps[pending].approvals} approvals.",
        )
    hold = gating.holding_back(r, now)
    if hold is not None:  # a run since the approval opened no longer passes
        raise NotYet(f"{_step_label(r, pending)} waits for the canary analysis of "
                     f"{_step_label(r, r.step)} to pass again: {hold}")
    approvals = (*r.approvals, Approval(step=pending, actor=actor, at=now))
    r = _update(r, now, approvals=approvals)
    have, need = len(already) + 1, r.plan.steps[pending].approvals
    approved = _event(r, AuditAction.APPROVED, actor, now, f"{have}/{need}", step=pending)
    if have < need:
        return Decision(
            rollout=r, events=(approved,),
            message=f"{actor.label} approved {_step_label(r, pending)}: {have}/{need} approvals.",
        )
    return _apply(r, pending, actor, now, (approved,))


def _refuse_baking(r: Rollout, pending: int, now: datetime) -> NoReturn:
    """Why a step cannot be approved while the previous one bakes (or is analysed)."""
    hold = gating.holding_back(r, now)
    bake_over = r.next_due_at is None or r.next_due_at <= now
    if r.plan.steps[pending].gate is Gate.AUTO:
        if hold is not None and bake_over:
            raise NotYet(f"{_step_label(r, pending)} is automatic; it applies once the canary "
                         f"analysis of {_step_label(r, r.step)} passes ({hold}); promote "
                         f"skips ahead")
        raise NotYet(
            f"{_step_label(r, pending)} is automatic; it applies when the bake ends"
            + (f" at {r.next_due_at:%H:%M:%S} UTC" if r.next_due_at else "")
            + " (promote skips ahead)"
        )
    if hold is not None and bake_over:
        raise NotYet(f"{_step_label(r, pending)} waits for the canary analysis of "
                     f"{_step_label(r, r.step)}: {hold}")
    assert r.next_due_at is not None
    left = (r.next_due_at - now).total_seconds()
    raise NotYet(
        f"{_step_label(r, r.step)} is still baking for {format_seconds(left)}; "
        f"approval of {_step_label(r, pending)} opens at {r.next_due_at:%H:%M:%S} UTC"
    )


def approve_plan(
    r: Rollout, *, actor: Actor, now: datetime, click: Click | None = None,
    self_approval: bool = False, frozen: str = "",
) -> Decision:
    """Approve a plan whose steps apply without per-step approvals (DESIGN invariant 10).
    Where an automatic step was waiting for it, the step is due now: the scheduler applies
    it, as it applies every automatic step. `frozen`: the install's freeze, described, which
    holds that step until it is lifted."""
    _require_active(r, "approve")
    if not r.plan.automatic:
        raise Conflict(f"the plan of {r.canary} has no automatic steps: each step is "
                       "approved on its own (`approve`)")
    if r.plan_approval is not None:
        return Decision(rollout=r, changed=False,
                        message=f"the plan of {r.canary} is already approved by "
                                f"{r.plan_approval.actor.label}.")
    _refuse_paused(r)
    if click is not None and click.epoch is not None and click.epoch != r.epoch:
        raise Outdated(f"{r.canary} was paused or resumed since this card was drawn; look at "
                       "the card again")
    _refuse_author(r, actor, self_approval, "approve its plan")
    r = _update(r, now, plan_approval=Approval(step=-1, actor=actor, at=now))
    pending = r.pending_step
    if r.phase is Phase.AWAITING_APPROVAL and pending is not None:
        r = _ready_for_next(r, now)
    event = _event(r, AuditAction.PLAN_APPROVED, actor, now, "automatic steps may apply")
    due = ""
    if r.phase is Phase.BAKING and pending is not None:
        hold = gating.holding_back(r, now)
        due = (f"; {_step_label(r, pending)} waits for the canary analysis of "
               f"{_step_label(r, r.step)}: {hold}" if hold is not None else
               f"; {_step_label(r, pending)} applies once the freeze is lifted (rollouts are "
               f"{frozen})" if frozen else f"; {_step_label(r, pending)} applies now")
    return Decision(rollout=r, events=(event,),
                    message=f"{actor.label} approved the plan of {r.canary}{due}.")


def _refuse_paused(r: Rollout) -> None:
    if r.phase is Phase.PAUSED:
        assert r.pause is not None
        raise Conflict(f"{r.canary} is paused: {r.pause.reason}. Resume it first")


def _refuse_author(r: Rollout, actor: Actor, self_approval: bool, what: str) -> None:
    if actor.id == r.requester.id and not self_approval:
        raise Unauthorized(
            f"{actor.label} started this rollout and cannot {what} "
            "(two-person rule): ask another approver"
        )


def _apply(
    r: Rollout, step: int, actor: Actor, now: datetime, before: tuple[AuditEvent, ...] = (),
) -> Decision:
    nxt = _after_apply(r, step, now)
    applied = _event(nxt, AuditAction.STEP_APPLIED, actor, now, expected_pair(nxt).describe(),
                     step=step)
    events = (*before, applied)
    message = f"{r.canary} now at {r.plan.steps[step].percent}% ({_step_label(r, step)})."
    if nxt.phase is Phase.COMPLETED:
        nxt = _update(nxt, now, completed_by=actor)
        events = (*events, _event(nxt, AuditAction.COMPLETED, actor, now, step=step))
        message += (f" Rollout completed; {r.stable} takes no traffic and is kept for "
                    f"rollback until {nxt.keep_until:%Y-%m-%d %H:%M} UTC; then an approver "
                    f"retires it (`retire`).")
    return Decision(
        rollout=nxt, effect=ApplyStep(step=step, percent=r.plan.steps[step].percent),
        events=events, message=message,
    )


def pause(
    r: Rollout, *, actor: Actor, now: datetime, reason: str = "",
    kind: PauseKind = PauseKind.MANUAL, seen: Pair | None = None,
) -> Decision:
    """Stop the clock and the steps. Moves the epoch, so Approve buttons drawn before it
    are outdated; `seen` is what the cluster showed, for a drift pause."""
    _require_active(r, "pause")
    if r.phase is Phase.PAUSED:
        assert r.pause is not None
        return Decision(rollout=r, changed=False,
                        message=f"{r.canary} is already paused ({r.pause.reason}).")
    bake_left = 0.0
    if r.phase is Phase.BAKING and r.next_due_at is not None:
        bake_left = max(0.0, (r.next_due_at - now).total_seconds())
    why = reason or f"paused by {actor.label}"
    info = Pause(kind=kind, reason=why, by=actor, at=now, resume_phase=r.phase,
                 bake_left_seconds=bake_left,
                 seen_stable=seen.stable if seen is not None else None,
                 seen_canary=seen.canary if seen is not None else None)
    nxt = _update(r, now, phase=Phase.PAUSED, pause=info, next_due_at=None, epoch=r.epoch + 1,
                  held="")
    return Decision(
        rollout=nxt, events=(_event(nxt, AuditAction.PAUSED, actor, now, why, step=r.step),),
        message=f"{r.canary} paused at {r.canary_percent}%: {why}.",
    )


def resume(r: Rollout, *, actor: Actor, now: datetime, click: Click | None = None) -> Decision:
    """End the pause. A Resume button ends only the pause it was drawn for."""
    _require_active(r, "resume")
    if r.phase is not Phase.PAUSED or r.pause is None:
        raise Conflict(f"{r.canary} is not paused; nothing to resume")
    info = r.pause
    if click is not None and click.pause is not None and click.pause != r.epoch:
        raise Outdated(f"{r.canary} was paused again since this card was drawn "
                       f"({info.reason}); look at the card again")
    fresh = gating.started(r, now)  # a person looked: the step's analysis starts over
    if info.resume_phase is Phase.BAKING and info.bake_left_seconds > 0:
        nxt = _update(r, now, phase=Phase.BAKING, pause=None, epoch=r.epoch + 1,
                      next_due_at=now + timedelta(seconds=info.bake_left_seconds),
                      step_analysis=fresh)
    else:
        nxt = _ready_for_next(_update(r, now, pause=None, epoch=r.epoch + 1,
                                      step_analysis=fresh), now)
    detail = pause_summary(info)
    message = f"{r.canary} resumed at {r.canary_percent}%."
    if info.kind is PauseKind.DRIFT:
        message += " The next step writes the plan's weights over the manual change."
        if info.seen_stable is not None:  # until then they are the person's to keep
            nxt = _update(nxt, now, accepted_weights=(info.seen_stable, info.seen_canary))
    return Decision(
        rollout=nxt, events=(_event(nxt, AuditAction.RESUMED, actor, now, detail, step=r.step),),
        message=message,
    )


def pause_summary(info: Pause) -> str:
    """`paused by carol: p99 latency`, `paused by the scheduler (drift): ...`: who, why."""
    by = "the scheduler" if info.by.via is Via.SCHEDULER else info.by.label
    kind = "" if info.kind is PauseKind.MANUAL else f" ({info.kind.value})"
    why = "" if info.reason == f"paused by {info.by.label}" else f": {info.reason}"
    return f"paused by {by}{kind}{why}"


def _rolled_back(r: Rollout, now: datetime) -> Rollout:
    """The state a rollback ends in, recorded at once or found on the route after a crash:
    nothing due or awaited, and a pause it ends is over (status, the CLI and the card read
    `pause` as "paused now")."""
    return _update(r, now, phase=Phase.ROLLED_BACK, next_due_at=None, awaiting_since=None,
                   finished_at=now, pause=None, accepted_weights=None)


def rollback(
    r: Rollout, *, actor: Actor, now: datetime, reason: str = "", owner: str | None = None,
) -> Decision:
    """Back to the baseline from any phase but an earlier rollback. `owner` is the rollout
    the rule belongs to now: a finished rollout never rolls back a newer one's rule."""
    if r.phase is Phase.ROLLED_BACK:
        return Decision(rollout=r, changed=False, message=f"{r.canary} is already rolled back.")
    if r.retired_at is not None:
        raise Conflict(
            f"rollout {r.id} was retired: {r.stable} is no longer in {r.target.describe()}, "
            f"so there is nothing to roll back to. To go back, start a rollout of {r.stable} "
            f"(it must be Ready again first)"
        )
    if not r.active and owner is not None and owner != r.id:
        raise Conflict(
            f"rollout {r.id} is {r.phase.value.replace('_', ' ')} and "
            f"{r.target.describe()} now belongs to rollout {owner}: rolling back this one "
            f"would undo that one. Roll back {owner} instead"
        )
    nxt = _update(_rolled_back(r, now), now, rolled_back_by=actor, rollback_reason=reason)
    why = reason or f"requested by {actor.label}"
    return Decision(
        rollout=nxt, effect=Restore(),
        events=(_event(nxt, AuditAction.ROLLED_BACK, actor, now, why, step=r.step),),
        message=f"{r.canary} rolled back: {baseline_pair(r.baseline).describe()} restored.",
    )


def retire(r: Rollout, *, actor: Actor, now: datetime, self_approval: bool = False,
           owner: str | None = None) -> Decision:
    """Let the old pool (or adapter) go: its entry leaves the rule, and with it any rollback.
    Only a completed rollout, by someone other than who started or completed it; before the
    keep period is over, the retire itself is the approval to end it early. `owner` is the
    rollout the rule belongs to now, as for `rollback`: a later one's marker is not
    overwritten."""
    if r.retired_at is not None:
        return Decision(rollout=r, changed=False,
                        message=f"{r.stable} was already retired from {r.target.describe()}.")
    if r.phase is not Phase.COMPLETED:
        raise Conflict(
            f"rollout {r.id} of {r.canary} is {r.phase.value.replace('_', ' ')}: only a "
            f"completed rollout retires its old {_entry_kind(r)}"
        )
    if owner is not None and owner != r.id:
        raise Conflict(
            f"{r.target.describe()} now belongs to rollout {owner}: retiring this one would "
            f"write over that one's record on the rule. Nothing was changed; remove "
            f"{r.stable}'s entry from the rule by hand if it is still there"
        )
    _refuse_author(r, actor, self_approval, "retire its old pool")
    done_by = r.completed_by
    if done_by is not None and done_by.id == actor.id and not self_approval:
        raise Unauthorized(f"{actor.label} completed this rollout and cannot retire its old "
                           f"{_entry_kind(r)} (two-person rule): ask another approver")
    early = ""
    if r.keep_until is not None and now < r.keep_until:
        early = f" (before the keep period ended at {r.keep_until:%Y-%m-%d %H:%M} UTC)"
    nxt = _update(r, now, retired_at=now, retired_by=actor, next_due_at=None)
    return Decision(
        rollout=nxt, effect=Retire(),
        events=(_event(nxt, AuditAction.RETIRED, actor, now,
                       f"{r.stable} removed from {r.target.describe()}{early}", step=r.step),),
        message=f"{r.stable} retired{early}: {retired_sentence(r)}",
    )


def keep_due(r: Rollout, now: datetime) -> bool:
    """A completed rollout whose keep period is over and whose approvers were not told yet."""
    at = r.keep_reminder_at
    return at is not None and at <= now


def keep_over(r: Rollout, *, now: datetime) -> Decision:
    """Tell the approvers, once, that the old pool may now be retired."""
    if not keep_due(r, now):
        return Decision(rollout=r, changed=False, message="")
    nxt = _update(r, now, keep_reminded=True)
    detail = f"{r.stable} was kept for rollback until {r.keep_until:%Y-%m-%d %H:%M} UTC"
    return Decision(
        rollout=nxt, events=(_event(nxt, AuditAction.KEEP_ENDED, Actor.scheduler(), now,
                                    detail, step=r.step),),
        message=f"The keep period of {r.stable} is over: an approver may retire it "
                f"(`retire`), or roll back while it is still in the route.")


def _entry_kind(r: Rollout) -> str:
    return "pool" if r.target.kind is TargetKind.ROUTE else "adapter"


def retired_sentence(r: Rollout) -> str:
    """What retire removed and what the team may now delete by hand (the bot deletes none)."""
    if r.target.kind is TargetKind.ROUTE:
        return (f"its backendRef is removed from {r.target.describe()} and nothing else "
                f"changed; a rollback is no longer possible. The bot deletes nothing: the team "
                f"may now delete InferencePool {r.stable}, its endpoint picker, and the model "
                f"server Deployment (and its nodes) that serve it.")
    return (f"its target already left {r.target.describe()} at 100% (a rewrite weight cannot "
            f"be 0) and nothing else changed; a rollback, which would put it back, is no "
            f"longer possible. The bot deletes nothing: the team may now unload adapter "
            f"{r.stable} from the model servers (the pool itself still serves {r.canary}).")


def promote(
    r: Rollout, *, actor: Actor, now: datetime, self_approval: bool = False,
    skip_analysis: bool = False,
) -> Decision:
    """Skip the remaining steps: the canary takes all of the pair's traffic now. It applies
    steps nobody approved, so it is an approval too: never by the rollout's author alone.
    Nor while the canary analysis does not pass (failing, inconclusive, not run yet), unless
    the person says `skip_analysis`: all of the traffic would go to a canary nothing
    measured as healthy, by a command that means "it is fine"; the audit says it was
    skipped, and why it did not pass."""
    _require_active(r, "promote")
    _refuse_paused(r)
    _refuse_author(r, actor, self_approval, "promote it")
    last = r.plan.last_index
    need = max((s.approvals for s in r.plan.steps[r.step + 1:]), default=1)
    if need > 1:  # one person may not stand in for the approvers the plan asks for
        raise Conflict(f"the plan of {r.canary} needs {need} approvers for a step, and "
                       "promote would apply the remaining steps on one: approve them step "
                       "by step (or roll back)")
    detail = f"from {r.canary_percent}%"
    held = gating.holding_back(r, now)
    if held is not None and not skip_analysis:
        raise Conflict(f"the canary analysis of {r.canary} does not pass: {held}. Promote "
                       "skips it only when told (`--skip-analysis`, audited), or wait for it "
                       "to pass")
    if held is not None:
        detail += f", skipping its canary analysis ({held})"
    promoted = _event(r, AuditAction.PROMOTED, actor, now, detail, step=last)
    return _apply(r, last, actor, now, (promoted,))


def tick(r: Rollout, *, now: datetime) -> Decision:
    """What time alone does: end a bake, apply an automatic step, remind, time out."""
    idle = Decision(rollout=r, changed=False, message="nothing due")
    if r.phase not in (Phase.BAKING, Phase.AWAITING_APPROVAL):
        return idle
    if r.phase is Phase.BAKING:
        if r.next_due_at is None or r.next_due_at > now or r.pending_step is None:
            return idle
        pending = r.pending_step
        hold = gating.holding_back(r, now)
        if hold is not None:
            return _held(r, pending, hold, now)
        if not _waits_for_people(r, pending):
            return _apply(r, pending, Actor.scheduler(), now)
        nxt = _await_approval(r, now)
        event = _event(nxt, AuditAction.APPROVAL_REQUESTED, Actor.scheduler(), now, step=pending)
        return Decision(rollout=nxt, events=(event,),
                        message=f"{_step_label(r, pending)} of {r.canary} awaits approval.")
    return _tick_awaiting(r, now, idle)


def _held(r: Rollout, pending: int, hold: str, now: datetime) -> Decision:
    """The bake is over and the analysis has not passed: no approval request, no step-up.
    The next due time goes; the analysis run that passes moves the rollout on."""
    nxt = _update(r, now, next_due_at=None)
    detail = f"{_step_label(r, pending)} waits for it: {hold}"
    event = _event(nxt, AuditAction.ANALYSIS_AWAITED, Actor.scheduler(), now, detail, step=r.step)
    return Decision(rollout=nxt, events=(event,),
                    message=f"The bake of {_step_label(r, r.step)} of {r.canary} is over; "
                            f"{detail}.")


def analysed(r: Rollout, *, run: Run | None, measured: StepAnalysis | None,
             now: datetime) -> Decision:
    """Fold one analysis run (taken from the state `measured`) into the current step and act
    on the verdict: roll back or pause on failure, pause on a split mismatch or on a long
    inconclusive streak, and once it passes do what the end of the bake was waiting for."""
    state, setup = gating.current(r), r.analysis
    idle = Decision(rollout=r, changed=False, message="no analysis due")
    if (state is None or setup is None or state != measured or not r.active
            or r.phase not in gating.MEASURED_PHASES):
        return idle  # the step moved, was paused, or another run came first
    spec, system, label = setup.spec, Actor.scheduler(), _step_label(r, r.step)
    before = state.verdict(spec, now).action
    state = state.record(spec, run) if run is not None else state
    found = state.verdict(spec, now)
    nxt = _update(r, now, step_analysis=state)
    why = f"canary analysis `{setup.name}` of {label}: {found.reason}"
    if found.action in (Action.ROLLBACK, Action.PAUSE):
        failed = _event(nxt, AuditAction(f"analysis_{found.outcome.value}"), system, now,
                        found.reason, step=r.step)
        if found.action is Action.PAUSE:
            paused = pause(nxt, actor=system, now=now, reason=why, kind=PauseKind.ANALYSIS)
            return replace(paused, events=(failed, *paused.events))
        acted = rollback(nxt, actor=system, now=now, reason=why)
        return replace(acted, events=(failed, *acted.events), message=f"{acted.message} {why}",
                       unwritten=Decision(rollout=nxt, events=(failed,),
                                          message=f"{why}; rolling back"))
    if found.action is not Action.PROCEED:
        if (before is Action.PROCEED and nxt.phase is Phase.AWAITING_APPROVAL
                and nxt.approval_held_at is None):
            # the approval waits for the analysis again: its clocks stop meanwhile
            nxt = _update(nxt, now, approval_held_at=now, next_due_at=None)
        return Decision(rollout=nxt, message=why)
    events: tuple[AuditEvent, ...] = ()
    if before is not Action.PROCEED:
        events = (_event(nxt, AuditAction.ANALYSIS_PASSED, system, now, found.reason, step=r.step),)
        if nxt.phase is Phase.AWAITING_APPROVAL:
            nxt = _approval_released(nxt, now)
    if nxt.phase is Phase.BAKING and nxt.next_due_at is None:  # the bake ended meanwhile
        due_now = _update(nxt, now, next_due_at=now)
        moved = tick(due_now, now=now)
        # a step-up that a freeze or a gate holds (or that fails) keeps the passed run, and
        # the step stays due for the next tick, rather than waiting for another run
        kept = (Decision(rollout=due_now, events=events,
                         message=f"{why}; stepping up to {_step_label(r, r.step + 1)}")
                if moved.effect is not None else None)
        return replace(moved, events=events + moved.events, message=f"{why}. {moved.message}",
                       unwritten=kept)
    return Decision(rollout=nxt, events=events, message=why)


def _tick_awaiting(r: Rollout, now: datetime, idle: Decision) -> Decision:
    since, pending, plan = r.awaiting_since, r.pending_step, r.plan
    if since is None or pending is None or r.approval_held_at is not None:
        return idle
    timeout = plan.approval_timeout_seconds
    if timeout and now >= since + timedelta(seconds=timeout):
        why = f"{_step_label(r, pending)} was not approved within {format_seconds(timeout)}"
        return pause(r, actor=Actor.scheduler(), now=now, reason=why, kind=PauseKind.TIMEOUT)
    every = plan.reminder_seconds
    if every and now >= (r.last_reminder_at or since) + timedelta(seconds=every):
        nxt = _update(r, now, last_reminder_at=now,
                      next_due_at=_awaiting_due(plan, since, now))
        waited = format_seconds((now - since).total_seconds())
        event = _event(nxt, AuditAction.REMINDER, Actor.scheduler(), now, f"waiting {waited}",
                       step=pending)
        return Decision(rollout=nxt, events=(event,),
                        message=f"{_step_label(r, pending)} of {r.canary} still awaits approval"
                                f" ({waited}).")
    return idle


def shows_landed(r: Rollout, effect: Effect, observed: Observed) -> bool:
    """Whether the cluster shows `effect` of rollout `r` (the state after it) as landed: the
    marker it writes, and the weights it meant. Used when a write's answer was lost."""
    marker = observed.marker
    if marker is None or marker.rollout_id != r.id:
        return False
    if isinstance(effect, Restore):
        return marker.state is MarkerState.ROLLED_BACK and \
            observed.pair == baseline_pair(r.baseline)
    if isinstance(effect, Prepare):
        return marker.step == -1 and marker.state is MarkerState.ACTIVE
    if isinstance(effect, Retire):
        return marker.state is MarkerState.RETIRED
    return marker.step == effect.step and observed.pair == expected_pair(r, effect.step)


def overtaken(r: Rollout, written: Observed, *, now: datetime) -> tuple[AuditEvent, ...]:
    """A rollback that preempted a step in flight: when the object it wrote over carried a
    later step of this rollout than the state knew, that step landed (and carried traffic)
    before the rollback undid it; the audit says so, so no landed step goes unrecorded."""
    seen = written.replaced
    if seen is None or seen.rollout_id != r.id or seen.state is MarkerState.ROLLED_BACK:
        return ()
    if not r.step < seen.step <= r.plan.last_index:
        return ()
    detail = (f"{_step_label(r, seen.step)} landed before the rollback took over and was not "
              "recorded; the rollback undid it")
    return (_event(r, AuditAction.RECOVERED, Actor.scheduler(), now, detail, step=seen.step),)


def effect_failed(r: Rollout, *, now: datetime, reason: str, actor: Actor,
                  unwritten: Decision | None = None) -> Decision:
    """The cluster write of a decision failed: keep the old step and pause with the reason,
    keeping what the decision had found beyond its effect (`Decision.unwritten`)."""
    if unwritten is not None:
        kept = effect_failed(unwritten.rollout, now=now, actor=actor,
                             reason=f"{unwritten.message}: {reason}")
        return replace(kept, events=unwritten.events + kept.events)
    if not r.active:
        return Decision(rollout=r, changed=False, message=reason)
    if r.phase is Phase.PAUSED:
        return Decision(rollout=r, changed=False, message=reason)
    return pause(r, actor=actor, now=now, reason=reason, kind=PauseKind.FAILURE)


def gate(r: Rollout, observed: Observed, *, now: datetime) -> Decision | None:
    """Pause a rollout whose gateway reports a problem with the route the bot wrote; the
    weights stay where they are for a person to look (and resume or roll back)."""
    if not observed.problem or not r.active or r.phase is Phase.PAUSED:
        return None
    return pause(r, actor=Actor.scheduler(), now=now, reason=observed.problem,
                 kind=PauseKind.FAILURE)


def fail(r: Rollout, *, now: datetime, reason: str, actor: Actor) -> Decision:
    """A start whose first write failed: the rollout ends and frees its target."""
    nxt = _update(r, now, phase=Phase.FAILED, next_due_at=None, finished_at=now)
    return Decision(rollout=nxt, events=(_event(nxt, AuditAction.FAILED, actor, now, reason),),
                    message=f"Rollout {r.id} failed: {reason}")


def recover(
    *, rollout_id: str, target: Target, stable: str, canary: str, plan: Plan,
    baseline: Baseline, requester: Actor, created_at: datetime, step: int,
    observed: Observed, actor: Actor, now: datetime, keep_seconds: int,
    analysis: AnalysisSetup | None = None,
) -> Decision:
    """Rebuild a rollout from the cluster's record after its state was lost. It comes back
    paused: a person checks it and resumes (or rolls back); nothing moves on its own. Its
    analysis, if the record names one, starts over on resume."""
    r = Rollout(
        id=rollout_id, target=target, stable=stable, canary=canary, plan=plan,
        baseline=baseline, phase=Phase.PAUSED, step=step, requester=requester,
        created_at=created_at, updated_at=now, analysis=analysis, keep_seconds=keep_seconds,
    )
    why = "rebuilt from the route's annotations after the state was lost; check and resume"
    kind, seen = PauseKind.MANUAL, None
    if observed.pair not in acceptable_pairs(r):
        why += (f" (the cluster shows {observed.pair.describe()}, the step expects "
                f"{expected_pair(r).describe()})")
        kind, seen = PauseKind.DRIFT, observed.pair
    r = r.model_copy(update={"pause": Pause(
        kind=kind, reason=why, by=actor, at=now, resume_phase=Phase.BAKING,
        seen_stable=seen.stable if seen is not None else None,
        seen_canary=seen.canary if seen is not None else None)})
    event = _event(r, AuditAction.RECOVERED, actor, now, why, step=step)
    return Decision(rollout=r, events=(event,),
                    message=f"Rollout {r.id} of {canary} recovered at {r.canary_percent}% "
                            f"and paused: check it, then resume or roll back.")


def reconcile(r: Rollout, observed: Observed, *, now: datetime) -> Decision | None:
    """Compare the cluster with the state: adopt a write that landed before a crash, pause on
    drift. None when they agree. Never guesses: anything unexplained pauses the rollout.
    A completed rollout is looked at for one thing only: a rollback of it that landed and was
    not recorded."""
    if not r.active and r.phase is not Phase.COMPLETED:
        return None
    marker, pair = observed.marker, observed.pair
    system = Actor.scheduler()
    ours = marker is not None and marker.rollout_id == r.id
    if ours and marker is not None and marker.state is MarkerState.ROLLED_BACK \
            and pair == baseline_pair(r.baseline):
        nxt = _rolled_back(r, now)
        event = _event(nxt, AuditAction.RECOVERED, system, now, "rollback found applied",
                       step=r.step)
        return Decision(rollout=nxt, events=(event,),
                        message=f"{r.canary} was rolled back before a crash; recorded.")
    if ours and marker is not None and marker.state is MarkerState.RETIRED \
            and r.retired_at is None:
        nxt = _update(r, now, retired_at=now, retired_by=system, next_due_at=None)
        event = _event(nxt, AuditAction.RECOVERED, system, now, "retire found applied",
                       step=r.step)
        return Decision(rollout=nxt, events=(event,),
                        message=f"{r.stable} was retired before a crash; recorded.")
    if not r.active:
        return None
    if ours and marker is not None:
        landed = marker.step
        if r.step < landed <= r.plan.last_index and pair == expected_pair(r, landed):
            nxt = _after_apply(r, landed, now)
            detail = f"{_step_label(r, landed)} found applied in the cluster; recorded once"
            events: tuple[AuditEvent, ...] = (
                _event(nxt, AuditAction.RECOVERED, system, now, detail, step=landed),)
            if nxt.phase is Phase.COMPLETED:  # the history says so, as after any last step
                nxt = _update(nxt, now, completed_by=marker.by)  # as the marker names
                events += (_event(nxt, AuditAction.COMPLETED, marker.by or system, now,
                                  step=landed),)
            return Decision(rollout=nxt, events=events, message=detail + ".")
    if pair in acceptable_pairs(r):
        return gate(r, observed, now=now)
    expected = expected_pair(r)
    if r.phase is Phase.PAUSED and r.pause is not None and r.pause.kind is PauseKind.DRIFT:
        return None
    by = f"; last written by {observed.writer}" if observed.writer else ""
    why = (f"weights changed outside the bot: the cluster has {pair.describe()}, "
           f"the rollout set {expected.describe()}{by}")
    return pause(r, actor=system, now=now, reason=why, kind=PauseKind.DRIFT, seen=pair)
