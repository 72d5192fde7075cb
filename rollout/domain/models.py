"""The rollout's data: plan, target, state and audit events, as validated pydantic models.

Everything here is plain data with no I/O, so it serialises to Redis and to the route's
annotations unchanged, and the state machine can be tested as pure functions.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rollout.domain.canary import AnalysisSetup
from rollout.domain.verdict import StepAnalysis

MAX_STEPS = 20
MAX_INTERVAL_SECONDS = 7 * 24 * 3600


class Gate(StrEnum):
    """What lets a step proceed once the previous step has baked."""

    APPROVAL = "approval"
    AUTO = "auto"


class Step(BaseModel):
    model_config = ConfigDict(frozen=True)

    percent: int = Field(ge=1, le=100, description="canary share of the managed pair, in %")
    gate: Gate = Gate.APPROVAL
    approvals: int = Field(default=1, ge=1, le=10, description="distinct approvers needed")


class Plan(BaseModel):
    """The steps of a rollout and the bake time between them."""

    model_config = ConfigDict(frozen=True)

    steps: tuple[Step, ...]
    interval_seconds: int = Field(default=0, ge=0, le=MAX_INTERVAL_SECONDS)
    reminder_seconds: int | None = Field(default=None, ge=1, description="remind approvers every")
    approval_timeout_seconds: int | None = Field(
        default=None, ge=1, description="pause a step nobody approved within this time"
    )

    @field_validator("steps")
    @classmethod
    def _steps_increase_to_100(cls, steps: tuple[Step, ...]) -> tuple[Step, ...]:
        if not steps:
            raise ValueError("the step list is empty")
        if len(steps) > MAX_STEPS:
            raise ValueError(f"at most {MAX_STEPS} steps")
        percents = [s.percent for s in steps]
        for before, after in itertools.pairwise(percents):
            if after <= before:
                raise ValueError(f"steps must strictly increase ({before} then {after})")
        if percents[-1] != 100:
            raise ValueError(f"the last step must be 100, not {percents[-1]}")
        return steps

    @property
    def percents(self) -> list[int]:
        return [s.percent for s in self.steps]

    @property
    def last_index(self) -> int:
        return len(self.steps) - 1

    @property
    def automatic(self) -> bool:
        """Some step applies without a per-step approval: the plan itself needs one."""
        return any(s.gate is Gate.AUTO for s in self.steps)


class TargetKind(StrEnum):
    ROUTE = "httproute"
    REWRITE = "modelrewrite"


class Target(BaseModel):
    """The traffic target a rollout owns: one rule of an HTTPRoute or of a ModelRewrite."""

    model_config = ConfigDict(frozen=True)

    kind: TargetKind
    namespace: str
    name: str
    rule: int = Field(ge=0)
    api_group: str = Field(default="", description="the object's API group where a kind has "
                           "several (a rewrite in llm-d.ai or the legacy group); not in `key`")
    #: what tells the rule apart from the others besides its index (`rule`), which shifts when
    #: someone inserts a rule before it: its name, else a digest of its matches, read at start
    #: (the bot writes neither); a write refuses a rule at the index that shows another. ''
    #: in states from before it was kept (the index alone). Not in `key`.
    fingerprint: str = ""

    @property
    def key(self) -> str:
        """Identifies the rule: at most one active rollout per key."""
        return f"{self.kind.value}/{self.namespace}/{self.name}/{self.rule}"

    @property
    def object_key(self) -> str:
        """Identifies the Kubernetes object: locks and fencing tokens are per object."""
        return f"{self.kind.value}/{self.namespace}/{self.name}"

    def describe(self) -> str:
        kind = "HTTPRoute" if self.kind is TargetKind.ROUTE else "InferenceModelRewrite"
        return f"{kind} {self.namespace}/{self.name} rule {self.rule}"


class Via(StrEnum):
    """Where a person (or the scheduler) acted from; the audit and the card say it."""

    SLACK = "slack"
    CLI = "cli"
    SCHEDULER = "scheduler"


class Actor(BaseModel):
    """Who asked, and from where: a Slack user in a channel, a CLI user, or the scheduler."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1, max_length=200)
    name: str | None = None
    via: Via = Via.CLI
    channel: str | None = None
    login: str | None = Field(default=None, description="the operating-system login of a CLI "
                              "user, recorded beside the name they gave with --as")

    @property
    def label(self) -> str:
        return self.name or self.id

    @classmethod
    def scheduler(cls) -> Actor:
        return cls(id="scheduler", name="scheduler", via=Via.SCHEDULER)


class Baseline(BaseModel):
    """The managed entries exactly as they were before start, kept for rollback.

    For a route these are backendRefs; for a rewrite, rule targets. `canary` is None when the
    canary was not referenced before (a node update adds it, a rollback removes it again).
    """

    model_config = ConfigDict(frozen=True)

    stable: dict[str, Any]
    canary: dict[str, Any] | None = None
    stable_weight: int = Field(ge=0)
    canary_weight: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _no_weight_without_a_canary(self) -> Baseline:
        """A canary that was not on the rule had no weight: a rollback restores exactly these
        entries, and a weight without its entry would be lost from the split's total."""
        if self.canary is None and self.canary_weight:
            raise ValueError(f"canary_weight is {self.canary_weight} for a canary that was "
                             "not on the rule (canary is null); it must be 0")
        return self

    @property
    def total(self) -> int:
        """The weight sum the bot splits: the pair's own, or 100 where that is too coarse."""
        pair = self.stable_weight + self.canary_weight
        return pair if pair >= 100 else 100


class Phase(StrEnum):
    AWAITING_APPROVAL = "awaiting_approval"
    BAKING = "baking"
    PAUSED = "paused"
    COMPLETED = "completed"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"


ACTIVE_PHASES = frozenset({Phase.AWAITING_APPROVAL, Phase.BAKING, Phase.PAUSED})


class PauseKind(StrEnum):
    MANUAL = "manual"
    DRIFT = "drift"
    FAILURE = "failure"
    TIMEOUT = "timeout"
    PREFLIGHT = "preflight"  # a gate found the cluster unfit for the next step
    ANALYSIS = "analysis"  # failed, inconclusive too long, or the split did not match
    ROLLBACK = "rollback readiness"  # the stable pool could no longer take the traffic back


class Pause(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: PauseKind
    reason: str
    by: Actor
    at: datetime
    resume_phase: Phase
    bake_left_seconds: float = 0.0
    seen_stable: int | None = Field(default=None, description="drift: the stable weight the "
                                    "cluster showed")
    seen_canary: int | None = Field(default=None, description="drift: the canary weight the "
                                    "cluster showed (None: absent)")


class Approval(BaseModel):
    model_config = ConfigDict(frozen=True)

    step: int
    actor: Actor
    at: datetime


class Click(BaseModel):
    """What a button was drawn for. The service checks it under the target lock: Approve
    with `step` and `epoch`, Resume with `pause` (the epoch its pause began), the others
    with the rollout id alone."""

    model_config = ConfigDict(frozen=True)

    rollout_id: str
    step: int
    epoch: int | None = None
    pause: int | None = None


class Card(BaseModel):
    """Where the rollout's card lives in chat, so every replica updates the same message."""

    model_config = ConfigDict(frozen=True)

    channel: str
    ts: str


class Rollout(BaseModel):
    """A rollout's whole state. `step` is the index of the last applied step (-1: none)."""

    model_config = ConfigDict(frozen=True)

    id: str
    target: Target
    stable: str
    canary: str
    plan: Plan
    baseline: Baseline
    phase: Phase
    step: int = -1
    version: int = 0
    epoch: int = Field(default=0, description="moves only on pause, resume, drift and gateway "
                       "pauses: what an Approve button is checked against")
    requester: Actor
    created_at: datetime
    updated_at: datetime
    approvals: tuple[Approval, ...] = ()
    plan_approval: Approval | None = None
    next_due_at: datetime | None = None
    awaiting_since: datetime | None = None
    last_reminder_at: datetime | None = None
    approval_held_at: datetime | None = Field(default=None, description="since when a run "
                                              "that does not pass holds an open approval: "
                                              "its reminders and timeout stop until then")
    pause: Pause | None = None
    finished_at: datetime | None = None
    card: Card | None = None
    allow_gitops: bool = Field(default=False, description="started with --allow-gitops: "
                               "another manager owning the weights does not refuse a step")
    held: str = Field(default="", description="why the pending step waits (capacity, a "
                      "freeze); cleared when a step applies or the rollout pauses")
    stable_ready: int | None = Field(default=None, description="the stable pool's Ready "
                                     "endpoints at start: what a rollback needs back")
    keep_seconds: int = Field(default=0, ge=0, description="how long the stable pool stays "
                              "in the rule at weight 0 after completion (`--keep`)")
    keep_until: datetime | None = Field(default=None, description="the end of the keep "
                                        "period, set at completion")
    retired_at: datetime | None = Field(default=None, description="when `retire` removed "
                                        "the stable pool from the rule: no rollback since")
    retired_by: Actor | None = None
    keep_reminded: bool = Field(default=False, description="the approvers were told that the "
                                "keep period is over")
    accepted_weights: tuple[int, int | None] | None = Field(
        default=None, description="the stable and canary weights changed by hand that a person "
        "resumed over after a drift pause: they agree with the state until the next step "
        "writes the plan's (canary None: absent)")
    completed_by: Actor | None = Field(default=None, description="who applied the last "
                                       "step: not the one to retire (two-person rule)")
    rolled_back_by: Actor | None = Field(default=None, description="who rolled the rollout "
                                         "back (None: found applied after a crash)")
    rollback_reason: str = Field(default="", description="why, as the rollback gave it "
                                 "(`--reason`, the dialog, or the failed analysis)")
    #: the canary analysis gating each step (None: steps are not gated on metrics)
    analysis: AnalysisSetup | None = None
    #: the analysis of the current step so far (runs, failures, the latest values)
    step_analysis: StepAnalysis | None = None

    @model_validator(mode="after")
    def _step_in_range(self) -> Rollout:
        if not -1 <= self.step <= self.plan.last_index:
            raise ValueError(f"step {self.step} is outside the plan")
        return self

    @property
    def active(self) -> bool:
        return self.phase in ACTIVE_PHASES

    @property
    def done_at(self) -> datetime | None:
        """From when nothing more is asked of it, so that its record may go after the install's
        retention: a rollback or a failed start at once, a retire when it came, a completion at
        the end of its keep period (a rollback is still possible until then). None while active."""
        if self.active:
            return None
        if self.phase is Phase.COMPLETED and self.retired_at is None:
            return self.keep_until or self.finished_at or self.updated_at
        return self.retired_at or self.finished_at or self.updated_at

    @property
    def keep_reminder_at(self) -> datetime | None:
        """When the approvers are to be told that the keep period is over; None when no such
        reminder is to come (not completed, retired, told already, or nothing kept). The
        store indexes rollouts by it, so the reminder reads only the ones that fell due."""
        if self.phase is not Phase.COMPLETED or self.retired_at is not None or self.keep_reminded:
            return None
        return self.keep_until

    @property
    def standing_pause(self) -> Pause | None:
        """The pause while it stands: a finished rollout is paused no more, though states
        saved before rollbacks ended their pause still carry one."""
        return self.pause if self.active else None

    @property
    def pending_step(self) -> int | None:
        """The index of the next step to apply, or None when the plan is done."""
        nxt = self.step + 1
        return nxt if nxt <= self.plan.last_index else None

    @property
    def needs_plan_approval(self) -> bool:
        """An automatic plan nobody has approved yet: no step may apply."""
        return self.plan.automatic and self.plan_approval is None

    @property
    def canary_percent(self) -> int:
        """The canary's share as the rollout left it: after a rollback, the baseline's."""
        if self.phase is Phase.ROLLED_BACK:
            b = self.baseline
            pair = b.stable_weight + b.canary_weight
            return (b.canary_weight * 100 + pair // 2) // pair if pair else 0
        return self.plan.steps[self.step].percent if self.step >= 0 else 0

    def approvers_of(self, step: int) -> list[Actor]:
        return [a.actor for a in self.approvals if a.step == step]


class RecoveryRecord(BaseModel):
    """What the bot leaves on the rule a rollout takes, so that an operator can rebuild the
    rollout (paused) if Redis loses it: everything `recover` cannot read off the cluster."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1)
    stable: str = Field(min_length=1)
    canary: str = Field(min_length=1)
    plan: Plan
    baseline: Baseline
    requester: Actor
    created_at: datetime
    #: the canary analysis by name, pool and model (its rules are the analysis file's, read
    #: again on recover)
    analysis: dict[str, str] | None = None
    #: how long the old pool stays in the rule after completion (`--keep`); None in records
    #: written before it was kept here (recover then takes the install's ROLLOUT_KEEP)
    keep_seconds: int | None = Field(default=None, ge=0)
    #: the rule's fingerprint (Target.fingerprint) when the record was written: a recover
    #: refuses the rule at the record's index when it shows another ('' in older records)
    fingerprint: str = ""

    @classmethod
    def of(cls, rollout: Rollout) -> RecoveryRecord:
        analysis = None if rollout.analysis is None else {
            "name": rollout.analysis.name, "pool": rollout.analysis.pool,
            "model": rollout.analysis.model}
        return cls(id=rollout.id, stable=rollout.stable, canary=rollout.canary,
                   plan=rollout.plan, baseline=rollout.baseline, requester=rollout.requester,
                   created_at=rollout.created_at, analysis=analysis,
                   keep_seconds=rollout.keep_seconds, fingerprint=rollout.target.fingerprint)


class AuditAction(StrEnum):
    """What an audit event records; the values are the strings stored audit streams hold."""

    STARTED = "started"
    APPROVED = "approved"
    PLAN_APPROVED = "plan_approved"
    STEP_APPLIED = "step_applied"
    COMPLETED = "completed"
    PAUSED = "paused"
    RESUMED = "resumed"
    ROLLED_BACK = "rolled_back"
    PROMOTED = "promoted"
    RETIRED = "retired"  # the old pool's entry left the rule; no rollback since
    KEEP_ENDED = "keep_ended"  # the keep period is over: the approvers are asked to retire
    APPROVAL_REQUESTED = "approval_requested"
    REMINDER = "reminder"
    FAILED = "failed"
    RECOVERED = "recovered"
    RELEASED = "released"
    DENIED = "denied"
    STEP_HELD = "step_held"  # a step-up waits for capacity or a freeze
    FROZEN = "frozen"
    UNFROZEN = "unfrozen"
    ANALYSIS_PASSED = "analysis_passed"
    ANALYSIS_AWAITED = "analysis_awaited"  # the bake is over; the analysis has not passed yet
    ANALYSIS_FAILED = "analysis_failed"
    ANALYSIS_INCONCLUSIVE = "analysis_inconclusive"
    ANALYSIS_SPLIT_MISMATCH = "analysis_split_mismatch"


DENIED_PREFIX = "denied:"


class AuditEvent(BaseModel):
    """One decision: who did what to which rollout, when, and from where. A refusal is
    `DENIED` with the refused verb in `refused` (records written as `denied:<verb>` load so)."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    rollout_id: str
    target: str
    action: AuditAction
    actor: Actor
    step: int | None = None
    percent: int | None = None
    detail: str = ""
    refused: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _split_denied(cls, data: Any) -> Any:
        """The one-string form older records use for a refusal: `denied:<verb>`."""
        if isinstance(data, dict):
            action = data.get("action")
            if isinstance(action, str) and action.startswith(DENIED_PREFIX):
                return {**data, "action": AuditAction.DENIED,
                        "refused": action.removeprefix(DENIED_PREFIX)}
        return data

    @model_validator(mode="after")
    def _denial_names_its_verb(self) -> AuditEvent:
        if (self.action is AuditAction.DENIED) != bool(self.refused):
            raise ValueError("a refusal, and only a refusal, names the refused verb")
        return self
