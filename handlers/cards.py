"""The rollout card: one Block Kit message per rollout, re-rendered from state on every change.

Pure functions of (rollout, now), so the card can never show something the state does not
say, and every replica renders the same card. Buttons carry what they act on (the rollout,
the step, the epoch for Approve, the pause for Resume); the service checks it under the lock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from slack_sdk.models.blocks import (
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from handlers.analysis_view import analysis_view
from handlers.mentions import literal, slack_date, unmarked
from handlers.sentences import event_sentence
from rollout.domain import gating
from rollout.domain.errors import InvalidInput
from rollout.domain.freeze import Freeze
from rollout.domain.models import (
    ACTIVE_PHASES,
    Actor,
    AuditEvent,
    Click,
    Gate,
    PauseKind,
    Phase,
    Rollout,
    Via,
)
from rollout.domain.plan import format_seconds
from rollout.domain.split import expected_pair, share_percent, standing_pair
from rollout.domain.verdict import Status

APPROVE, PAUSE, RESUME, ROLLBACK = (
    "rollout_approve", "rollout_pause", "rollout_resume", "rollout_rollback",
)
APPROVE_PLAN = "rollout_approve_plan"
ACTION_IDS = (APPROVE, APPROVE_PLAN, PAUSE, RESUME, ROLLBACK)
BAR_WIDTH = 10
#: Slack's Block Kit limits, in characters: a card over one is refused by chat.update, and
#: the card would stop following the rollout for good
MAX_HEADER, MAX_SECTION, MAX_FIELD, MAX_CONTEXT = 150, 3000, 2000, 2000
ELLIPSIS = "…"

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


def clip(text: str, limit: int, more: str = "") -> str:
    """`text` within `limit` characters: when longer, cut with an ellipsis and `more` (where
    the whole of it is), never inside Slack's markup (`<@U…>`, `<!date^…>`, `&lt;`)."""
    if len(text) <= limit:
        return text
    tail = ELLIPSIS + more if len(ELLIPSIS + more) < limit // 2 else ELLIPSIS
    keep = text[:limit - len(tail)]
    opened = keep.rfind("<")
    if opened > keep.rfind(">"):
        keep = keep[:opened]
    entity = keep.rfind("&")
    if entity >= len(keep) - 5 and ";" not in keep[entity:]:
        keep = keep[:entity]
    return keep.rstrip() + tail


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
    if gating.holding_back(r, now) is not None:  # a run since the approval opened: wait
        return None
    if r.phase is Phase.AWAITING_APPROVAL:
        return pending
    if r.phase is Phase.BAKING and r.next_due_at is not None and r.next_due_at <= now:
        return pending
    return None


def render_card(r: Rollout, *, now: datetime, freeze: Freeze | None = None) -> CardMessage:
    """The card as it stands; `freeze` is the install's, shown on every card it holds."""
    header = f"Rollout {r.stable} → {r.canary}"
    percent, stable_weight, canary = _split(r)
    reached = r.plan.steps[r.step].percent if r.step >= 0 else 0
    undone = "" if r.phase is not Phase.ROLLED_BACK else (
        f" · rolled back from {reached}%" if r.step >= 0 else " · rolled back before step 1")
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": clip(header, MAX_HEADER)}},
        _fields(
            ("Target", r.target.describe()),
            ("Phase", _phase_field(r)),
        ),
        _section(f"*Split* `{progress_bar(percent)}` to `{r.canary}` "
                 f"(weights {r.stable} {stable_weight} / {r.canary} {canary}){undone}"
                 f"{_drift_note(r)}"),
        _section(f"*Plan:* {_plan_line(r, now)}\n{_plan_terms(r)}"),
    ]
    if r.plan.automatic:
        blocks.append(_section(_plan_approval_text(r)))
    blocks.append(_analysis_block(r, now))
    blocks.append(_context(_people(r)))
    due = next_line(r, now)
    if due:
        blocks.append(_context(due))
    blocks += [_section(line) for line in _holds(r, freeze)]
    buttons = _buttons(r, now)
    if buttons:
        blocks.append({"type": "actions", "block_id": "rollout_actions", "elements": buttons})
    blocks.append(_context(f"rollout `{short_id(r)}` · details: "
                           f"`/rollout {r.canary} status`"))
    text = f"{header}: {percent}%, {r.phase.value.replace('_', ' ')}"
    return CardMessage(text=text, blocks=blocks)


def _holds(r: Rollout, freeze: Freeze | None) -> list[str]:
    """What keeps the next step from going ahead: the freeze, a capacity wait."""
    if not r.active:
        return []
    lines = []
    if freeze is not None:
        lines.append(f":snowflake: *Rollouts are {unmarked(freeze.describe())}.* Step-ups "
                     "wait until an approver runs `/rollout unfreeze`; rollback and pause "
                     "still work.")
    if r.held and r.phase is not Phase.PAUSED and freeze is None:
        lines.append(f":hourglass: *Held:* {unmarked(r.held)}")
    return lines


def _split(r: Rollout) -> tuple[int, int, int]:
    """The canary's share and the pair's weights as they are now: a rollback put the
    weights from before the start back; a resume over weights changed by hand keeps those
    until the next step."""
    if r.phase is Phase.ROLLED_BACK:
        return 0, r.baseline.stable_weight, r.baseline.canary_weight
    pair = standing_pair(r)
    percent = share_percent(pair) if r.accepted_weights is not None else r.canary_percent
    return percent, pair.stable, pair.canary if pair.canary is not None else 0


def short_id(r: Rollout) -> str:
    """The id's random tail (`787a60`): enough to tell two rollouts of a pool apart on a card;
    `status` shows the whole id."""
    if r.id.startswith(f"{r.canary}-"):
        return r.id.rsplit("-", 1)[-1]
    return r.id


def _drift_note(r: Rollout) -> str:
    """After drift, what the cluster showed: the weights above are the plan's, not these."""
    pause = r.pause
    if r.phase is Phase.PAUSED and pause is not None and pause.seen_stable is not None:
        seen = "absent" if pause.seen_canary is None else str(pause.seen_canary)
        return f"\n:warning: the cluster shows {pause.seen_stable} / {seen} (changed by hand)"
    if r.accepted_weights is not None and r.active:
        plan = expected_pair(r)
        return (f"\n:warning: weights set by hand, kept since the resume; the next step writes "
                f"the plan's (this step's: {plan.stable} / {plan.canary or 0})")
    return ""


_VERDICT_ICON = {Status.PASS: ":white_check_mark:", Status.FAIL: ":x:",
                 Status.INCONCLUSIVE: ":grey_question:"}


def _analysis_lines(r: Rollout, now: datetime) -> tuple[str, list[str], list[str]]:
    """The headline, a line per check, and the split's line (if any)."""
    view = analysis_view(r, now)  # Prometheus' own words among it: shown as text
    headline = unmarked(view.headline[0].upper() + view.headline[1:])
    if r.analysis is None:
        return headline, [], []
    checks = [f"{_VERDICT_ICON[c.status]} `{c.name}` {unmarked(c.text)}" for c in view.checks]
    split = [f":twisted_rightwards_arrows: {unmarked(view.split)}"] if view.split else []
    return f":bar_chart: *{headline}*", checks, split


def analysis_markdown(r: Rollout, now: datetime) -> str:
    """Each check's latest canary and stable values and verdict, under one headline (the
    Slack `status` reply shows them all; the card as many as fit)."""
    headline, checks, split = _analysis_lines(r, now)
    return "\n".join([headline, *checks, *split])


def _analysis_block(r: Rollout, now: datetime) -> Block:
    headline, checks, split = _analysis_lines(r, now)
    if r.analysis is None:
        return _context(headline)
    shown = len(checks)
    while True:  # as many checks as fit, then how many more and where they all are
        left = len(checks) - shown
        more = [f"{ELLIPSIS} {left} more check{'s' if left > 1 else ''}: "
                f"`/rollout {r.canary} status` shows them all"] if left else []
        text = "\n".join([headline, *checks[:shown], *more, *split])
        if len(text) <= MAX_SECTION or not shown:
            return _section(text)
        shown -= 1


def _plan_approval_text(r: Rollout) -> str:
    if r.plan_approval is not None:
        return f":white_check_mark: Automatic plan approved by {_who(r.plan_approval.actor)}"
    return (f":raised_hand: Steps apply without per-step approvals, so the plan itself needs "
            f"an approver other than {_who(r.requester)} (*Approve plan*) before step 1")


def _phase_field(r: Rollout) -> str:
    """The phase, within a field's limit: a long pause reason is cut, saying where it is."""
    more = (f" (the whole reason: `/rollout {r.canary} status`)"
            if r.phase is Phase.PAUSED else "")
    return clip(_phase_text(r), MAX_FIELD - len("*Phase*\n"), more)


def _phase_text(r: Rollout) -> str:
    label = _PHASE_LABEL[r.phase] + _kept_text(r)
    if r.phase is Phase.PAUSED and r.pause is not None:
        info = r.pause
        by = _who(info.by)
        kind = "" if info.kind is PauseKind.MANUAL else f" ({info.kind.value})"
        why = "" if info.reason == f"paused by {info.by.label}" else f": {unmarked(info.reason)}"
        label += f" by {by}{kind}{why}"
    if r.phase is Phase.ROLLED_BACK and r.rolled_back_by is not None:
        done = r.rolled_back_by
        label += " by " + _who(done)  # the scheduler, a Slack mention, or a CLI name
        label += f": {unmarked(r.rollback_reason)}" if r.rollback_reason else ""
    return label


def _kept_text(r: Rollout) -> str:
    """After completion: until when the old pool stays for a rollback, or that it is gone."""
    if r.phase is not Phase.COMPLETED:
        return ""
    if r.retired_at is not None:
        by = f" by {_who(r.retired_by)}" if r.retired_by is not None else ""
        return (f"; {r.stable} retired{by} at {r.retired_at:%Y-%m-%d %H:%M} UTC "
                "(no rollback)")
    if r.keep_until is None:
        return ""
    return (f"; {r.stable} kept for rollback until {r.keep_until:%Y-%m-%d %H:%M} UTC, then "
            "an approver retires it (`retire`)")


def _plan_line(r: Rollout, now: datetime) -> str:
    """The plan once, each step marked: done, here, open for approval, to come."""
    marks = []
    approvable = approvable_step(r, now)
    for i, step in enumerate(r.plan.steps):
        if r.phase is Phase.ROLLED_BACK:
            marks.append(f"~{step.percent}%~" if i <= r.step else f"{step.percent}%")
        elif i < r.step:
            marks.append(f"~{step.percent}%~ :white_check_mark:")
        elif i == r.step:
            marks.append(f"*{step.percent}%* :round_pushpin:")
        elif i == approvable:
            marks.append(f"{step.percent}% :raised_hand:")
        else:
            marks.append(f"{step.percent}%")
    return " → ".join(marks)


def _plan_terms(r: Rollout) -> str:
    bake = format_seconds(r.plan.interval_seconds)
    if r.plan.steps[0].gate is Gate.AUTO:
        return f"bake {bake} between steps, each step applies on its own"
    need = r.plan.steps[0].approvals
    who = "an approval" if need == 1 else f"{need} approvals"
    return f"bake {bake} between steps, {who} for each step"


def _who(actor: Actor) -> str:
    if actor.via is Via.SCHEDULER:
        return "the scheduler"
    return f"<@{actor.id}>" if actor.via is Via.SLACK else literal(actor.label)


def _people(r: Rollout) -> str:
    """Who started and who approved each step; when that is too long for the card, the
    latest steps' approvers, and where the earlier ones are."""
    when = slack_date(r.created_at, "{date_short_pretty} at {time}")
    started = [f"Started by {_who(r.requester)}", when]
    approved: list[tuple[int, str]] = []
    for i, step in enumerate(r.plan.steps):
        approvers = r.approvers_of(i)
        if approvers:
            names = ", ".join(_who(a) for a in approvers)
            count = f" ({len(approvers)}/{step.approvals})" if step.approvals > 1 else ""
            approved.append((i, f"step {i + 1} ({step.percent}%) approved by {names}{count}"))
    for left_out in range(len(approved) + 1):
        earlier = []
        if left_out:
            upto = approved[left_out - 1][0] + 1
            steps = "step 1" if upto == 1 else f"steps 1 to {upto}"
            earlier = [f"approvals of {steps}: `/rollout {r.canary} history`"]
        text = " · ".join([*started, *earlier, *(line for _, line in approved[left_out:])])
        if len(text) <= MAX_CONTEXT:
            break
    return text


def next_line(r: Rollout, now: datetime) -> str:
    """What comes next and when, as the card and Slack's `status` say it; "" for nothing."""
    pending = r.pending_step
    if r.phase not in ACTIVE_PHASES or pending is None:
        if r.finished_at is not None:
            when = slack_date(r.finished_at, "{date_short_pretty} at {time}",
                              "%Y-%m-%d %H:%M:%S UTC")
            return f"Finished: {when}"
        return ""
    step = r.plan.steps[pending]
    label = f"step {pending + 1} ({step.percent}%)"
    if r.phase is Phase.PAUSED:
        return f"Next: {label} once resumed"
    if r.needs_plan_approval:
        return f"Next: {label} once an approver approves the plan"
    if approvable_step(r, now) is not None:
        need = f"{len(r.approvers_of(pending))}/{step.approvals} approvals"
        return f"Next: {label} waits for approval ({need}){_times_out(r)}"
    how = "applies automatically" if step.gate is Gate.AUTO else "opens for approval"
    held = gating.holding_back(r, now) is not None
    analysed = f"once the canary analysis of step {r.step + 1} has passed"
    if r.next_due_at is not None:
        when = slack_date(r.next_due_at, "{time} ({ago})", "%H:%M:%S UTC")
        return f"Next: {label} {how} at {when}" + (f", {analysed}" if held else "")
    if held:
        return f"Next: {label} {how} {analysed}"
    return f"Next: {label}"


def _times_out(r: Rollout) -> str:
    """When an open approval's timeout pauses the rollout, for the reviewers to see before
    it does (the card said nothing of it until the pause). Only while Approve is offered:
    an approval the analysis holds has its clock stopped, and shows no Approve."""
    timeout = r.plan.approval_timeout_seconds
    if not timeout or r.awaiting_since is None:
        return ""
    at = r.awaiting_since + timedelta(seconds=timeout)
    return f"; unless approved by {slack_date(at, '{time}', '%H:%M:%S UTC')}, it pauses"


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
    if r.active or (r.phase is Phase.COMPLETED and r.retired_at is None):
        # the click opens a modal (`rollback_modal`) that confirms and takes a reason
        rollback = _button(ROLLBACK, "Roll back", value, style="danger")
        out.append(rollback)
    return out


def _button(action_id: str, label: str, value: str, *, style: str | None = None) -> Block:
    button: Block = {"type": "button", "action_id": action_id,
                     "text": {"type": "plain_text", "text": label}, "value": value}
    if style:
        button["style"] = style
    return button


ROLLBACK_MODAL = "rollout_rollback_modal"
REASON_BLOCK, REASON_ACTION = "rollback_reason", "reason"
MAX_REASON = 300


def rollback_modal(r: Rollout, *, metadata: str) -> View:
    """The Roll back button's confirmation: what will happen, and an optional reason for the
    audit, the card and its thread (as `rollback --reason` takes one)."""
    return View(
        type="modal", callback_id=ROLLBACK_MODAL, private_metadata=metadata,
        title=PlainTextObject(text="Roll back?"),
        submit=PlainTextObject(text="Roll back"), close=PlainTextObject(text="Cancel"),
        blocks=[
            SectionBlock(text=MarkdownTextObject(
                text=f"All traffic of the pair goes back to `{r.stable}` as before the rollout "
                     f"started; `{r.canary}` now has {r.canary_percent}%.")),
            InputBlock(
                block_id=REASON_BLOCK, optional=True,
                label=PlainTextObject(text="Reason (for the audit and the card)"),
                element=PlainTextInputElement(
                    action_id=REASON_ACTION, max_length=MAX_REASON,
                    placeholder=PlainTextObject(text="e.g. p99 latency up 40%")),
            ),
        ],
    )


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, MAX_SECTION)}}


def _fields(*pairs: tuple[str, str]) -> Block:
    return {"type": "section",
            "fields": [{"type": "mrkdwn", "text": clip(f"*{k}*\n{v}", MAX_FIELD)}
                       for k, v in pairs]}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, MAX_CONTEXT)}]}


_EVENT_ICON = {
    "started": ":rocket:", "approved": ":thumbsup:", "step_applied": ":arrow_up:",
    "completed": ":white_check_mark:", "paused": ":double_vertical_bar:",
    "resumed": ":arrow_forward:", "rolled_back": ":rewind:", "promoted": ":fast_forward:",
    "retired": ":wastebasket:", "keep_ended": ":alarm_clock:",
    "approval_requested": ":raised_hand:", "reminder": ":bell:", "failed": ":x:",
    "recovered": ":wrench:", "plan_approved": ":thumbsup:", "denied": ":no_entry:",
    "analysis_passed": ":bar_chart:", "analysis_awaited": ":hourglass:",
    "analysis_failed": ":x:", "analysis_inconclusive": ":grey_question:",
    "analysis_split_mismatch": ":twisted_rightwards_arrows:",
    "released": ":unlock:", "step_held": ":hourglass_flowing_sand:", "frozen": ":snowflake:",
    "unfrozen": ":sunny:",
}


def event_line(e: AuditEvent) -> str:
    """One audit event as a line of the card's thread: an icon and the sentence."""
    icon = _EVENT_ICON[e.action]  # one for every action (a unit test holds the map whole)
    return f"{icon} {event_sentence(e, _who, unmarked)}"  # the cluster's text too
