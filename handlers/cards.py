"""The rollout card: one Block Kit message per rollout, re-rendered from state on every change.

Pure functions of (rollout, now), so the card can never show something the state does not
say, and every replica renders the same card. Buttons carry what they act on (the rollout,
the step, the epoch for Approve, the pause for Resume); the service checks it under the lock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rollout.errors import InvalidInput
from rollout.models import ACTIVE_PHASES, Actor, AuditEvent, Click, Gate, Phase, Rollout
from rollout.plan import describe_plan, format_seconds
from rollout.split import expected_pair

APPROVE, PAUSE, RESUME, ROLLBACK = (
    "rollout_approve", "rollout_pause", "rollout_resume", "rollout_rollback",
)
APPROVE_PLAN = "rollout_approve_plan"
ACTION_IDS = (APPROVE, APPROVE_PLAN, PAUSE, RESUME, ROLLBACK)
BAR_WIDTH = 10

Block = dict[str, Any]

_PHASE_LABEL = {
    Phase.AWAITING_APPROVAL: ":raised_hand: awaiting approval",
    Phase.BAKING: ":hourglass_flowing_sand: baking",
    Phase.PAUSED: ":double_vertical_bar: paused",
    Phase.COMPLETED: ":white_check_mark: completed",
    Phase.ROLLED_BACK: ":rewind: rolled back",
    Phase.FAILED: ":x: failed",
}


@dataclass(frozen=True)
class ButtonValue:
    """What a button remembers: the rollout, the step it was drawn at, the epoch (checked
    for Approve) and, on Resume, the pause it ends (the epoch that pause began)."""

    rollout_id: str
    step: int
    epoch: int | None = 0
    pause: int | None = None

    def encode(self) -> str:
        data: dict[str, object] = {"r": self.rollout_id, "s": self.step}
        if self.epoch is not None:
            data["e"] = self.epoch
        if self.pause is not None:
            data["p"] = self.pause
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> ButtonValue:
        """A card drawn before epochs existed carries none: its step is still checked."""
        try:
            data = json.loads(text)
            epoch, pause = data.get("e"), data.get("p")
            return cls(rollout_id=str(data["r"]), step=int(data["s"]),
                       epoch=None if epoch is None else int(epoch),
                       pause=None if pause is None else int(pause))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise InvalidInput("this button is not one of the bot's; use `/rollout`") from exc

    def click(self, action_id: str) -> Click:
        """What the service checks for this button: the epoch for the approvals, the pause
        for Resume, the rollout id alone for Pause and Roll back."""
        approving = action_id in (APPROVE, APPROVE_PLAN)
        return Click(rollout_id=self.rollout_id, step=self.step,
                     epoch=self.epoch if approving else None,
                     pause=self.pause if action_id == RESUME else None)


@dataclass(frozen=True)
class CardMessage:
    text: str
    blocks: list[Block]


def progress_bar(percent: int, width: int = BAR_WIDTH) -> str:
    """`▓▓▓░░░░░░░ 30%`: a bar that reads the same on every client."""
    percent = max(0, min(100, percent))
    filled = (percent * width + 50) // 100
    if percent and not filled:
        filled = 1
    return "▓" * filled + "░" * (width - filled) + f" {percent}%"


def approvable_step(r: Rollout, now: datetime) -> int | None:
    """The step an Approve button may offer now: awaiting approval, or a bake that is over."""
    pending = r.pending_step
    if pending is None or r.plan.steps[pending].gate is not Gate.APPROVAL:
        return None
    if r.needs_plan_approval:
        return None
    if r.phase is Phase.AWAITING_APPROVAL:
        return pending
    if r.phase is Phase.BAKING and r.next_due_at is not None and r.next_due_at <= now:
        return pending
    return None


def render_card(r: Rollout, *, now: datetime) -> CardMessage:
    pair = expected_pair(r)
    header = f"Rollout {r.stable} → {r.canary}"
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": header[:150]}},
        _fields(
            ("Target", r.target.describe()),
            ("Phase", _phase_text(r)),
            ("Stable → canary", f"`{r.stable}` → `{r.canary}`"),
            ("Weights", _weights_text(r, pair.stable, pair.canary)),
        ),
        _section(f"*Split* `{progress_bar(r.canary_percent)}` to `{r.canary}`"),
        _section(f"*Plan* {_plan_line(r, now)}\n{describe_plan(r.plan)}"),
    ]
    if r.plan.automatic:
        blocks.append(_section(_plan_approval_text(r)))
    blocks.append(_context(_people(r)))
    due = _next_line(r, now)
    if due:
        blocks.append(_context(due))
    buttons = _buttons(r, now)
    if buttons:
        blocks.append({"type": "actions", "block_id": "rollout_actions", "elements": buttons})
    blocks.append(_context(f"id `{r.id}` · version {r.version}"))
    text = f"{header}: {r.canary_percent}%, {r.phase.value.replace('_', ' ')}"
    return CardMessage(text=text, blocks=blocks)


def _weights_text(r: Rollout, stable: int, canary: int | None) -> str:
    """The weights as they are: after drift, what the cluster showed, not what the bot set."""
    pause = r.pause
    if r.phase is Phase.PAUSED and pause is not None and pause.seen_stable is not None:
        seen = "absent" if pause.seen_canary is None else str(pause.seen_canary)
        return (f"{pause.seen_stable} / {seen} in the cluster "
                f"(the plan's: {stable} / {canary if canary is not None else 0})")
    return f"{stable} / {canary if canary is not None else 0}"


def _plan_approval_text(r: Rollout) -> str:
    if r.plan_approval is not None:
        return f":white_check_mark: Automatic plan approved by {_who(r.plan_approval.actor)}"
    return (f":raised_hand: Steps apply without per-step approvals, so the plan itself needs "
            f"an approver other than {_who(r.requester)} (*Approve plan*) before step 1")


def _phase_text(r: Rollout) -> str:
    label = _PHASE_LABEL[r.phase]
    if r.phase is Phase.PAUSED and r.pause is not None:
        label += f" ({r.pause.kind.value}): {r.pause.reason}"
    return label


def _plan_line(r: Rollout, now: datetime) -> str:
    marks = []
    approvable = approvable_step(r, now)
    for i, step in enumerate(r.plan.steps):
        if i <= r.step:
            marks.append(f"~{step.percent}%~ :white_check_mark:" if i < r.step
                         else f"*{step.percent}%* :round_pushpin:")
        elif i == approvable:
            marks.append(f"{step.percent}% :raised_hand:")
        else:
            marks.append(f"{step.percent}%")
    return " → ".join(marks)


def _who(actor: Actor) -> str:
    return f"<@{actor.id}>" if actor.via == "slack" else actor.label


def _people(r: Rollout) -> str:
    parts = [f"Started by {_who(r.requester)} at {r.created_at:%Y-%m-%d %H:%M} UTC"]
    for i, step in enumerate(r.plan.steps):
        approvers = r.approvers_of(i)
        if approvers:
            names = ", ".join(_who(a) for a in approvers)
            count = f" ({len(approvers)}/{step.approvals})" if step.approvals > 1 else ""
            parts.append(f"step {i + 1} ({step.percent}%) approved by {names}{count}")
    return " · ".join(parts)


def _next_line(r: Rollout, now: datetime) -> str:
    pending = r.pending_step
    if r.phase not in ACTIVE_PHASES or pending is None:
        if r.finished_at is not None:
            return f"Finished at {r.finished_at:%Y-%m-%d %H:%M:%S} UTC"
        return ""
    step = r.plan.steps[pending]
    label = f"step {pending + 1} ({step.percent}%)"
    if r.phase is Phase.PAUSED:
        return f"Next: {label} once resumed"
    if r.needs_plan_approval:
        return f"Next: {label} once an approver approves the plan"
    if approvable_step(r, now) is not None:
        need = f"{len(r.approvers_of(pending))}/{step.approvals} approvals"
        return f"Next: {label} waits for approval ({need})"
    if r.next_due_at is not None:
        left = max(0.0, (r.next_due_at - now).total_seconds())
        how = "applies automatically" if step.gate is Gate.AUTO else "opens for approval"
        return (f"Next: {label} {how} at {r.next_due_at:%H:%M:%S} UTC "
                f"(in {format_seconds(left)})")
    return f"Next: {label}"


def _buttons(r: Rollout, now: datetime) -> list[Block]:
    step = r.pending_step if r.pending_step is not None else r.step
    value = ButtonValue(rollout_id=r.id, step=step, epoch=r.epoch).encode()
    out: list[Block] = []
    approvable = approvable_step(r, now)
    if approvable is not None:
        percent = r.plan.steps[approvable].percent
        out.append(_button(APPROVE, f"Approve step {approvable + 1}: {percent}%", value,
                           style="primary"))
    if r.needs_plan_approval and r.phase in (Phase.AWAITING_APPROVAL, Phase.BAKING):
        out.append(_button(APPROVE_PLAN, "Approve plan", value, style="primary"))
    if r.phase in (Phase.AWAITING_APPROVAL, Phase.BAKING):
        out.append(_button(PAUSE, "Pause", value))
    if r.phase is Phase.PAUSED:
        resume = ButtonValue(rollout_id=r.id, step=step, epoch=r.epoch, pause=r.epoch)
        out.append(_button(RESUME, "Resume", resume.encode()))
    if r.active or r.phase is Phase.COMPLETED:
        rollback = _button(ROLLBACK, "Roll back", value, style="danger")
        rollback["confirm"] = {
            "title": {"type": "plain_text", "text": "Roll back?"},
            "text": {"type": "mrkdwn",
                     "text": f"All traffic of the pair goes back to `{r.stable}` as before "
                             f"the rollout started."},
            "confirm": {"type": "plain_text", "text": "Roll back"},
            "deny": {"type": "plain_text", "text": "Cancel"},
            "style": "danger",
        }
        out.append(rollback)
    return out


def _button(action_id: str, label: str, value: str, *, style: str | None = None) -> Block:
    button: Block = {"type": "button", "action_id": action_id,
                     "text": {"type": "plain_text", "text": label}, "value": value}
    if style:
        button["style"] = style
    return button


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _fields(*pairs: tuple[str, str]) -> Block:
    return {"type": "section",
            "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in pairs]}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


_EVENT_ICON = {
    "started": ":rocket:", "approved": ":thumbsup:", "step_applied": ":arrow_up:",
    "completed": ":white_check_mark:", "paused": ":double_vertical_bar:",
    "resumed": ":arrow_forward:", "rolled_back": ":rewind:", "promoted": ":fast_forward:",
    "approval_requested": ":raised_hand:", "reminder": ":bell:", "failed": ":x:",
    "recovered": ":wrench:", "plan_approved": ":thumbsup:",
}


def event_line(e: AuditEvent) -> str:
    """One audit event as a line for the card's thread or the history."""
    icon = _EVENT_ICON.get(e.action, ":small_blue_diamond:")
    step = f" step {e.step + 1}" if e.step is not None and e.step >= 0 else ""
    percent = f" ({e.percent}%)" if e.percent is not None else ""
    detail = f": {e.detail}" if e.detail else ""
    action = e.action.replace("_", " ")
    return f"{icon} {action}{step}{percent} by {_who(e.actor)}{detail}"
