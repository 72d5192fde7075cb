"""The verbs people use, as one request type and one dispatcher shared by Slack and the CLI.

Both edges parse their own syntax into a CommandRequest; `run_command` turns it into exactly
one service call, so `/rollout X approve` and `rollout-bot approve X` cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from rollout.domain import names
from rollout.domain.errors import InvalidInput
from rollout.domain.models import Actor, AuditEvent, Click, Rollout
from rollout.domain.plan import DEFAULT_INTERVAL_SECONDS, DEFAULT_STEPS, build_plan
from rollout.service import Outcome, Ref, RolloutService, Status


class Verb(StrEnum):
    START = "start"
    APPROVE = "approve"
    APPROVE_PLAN = "approve-plan"
    PAUSE = "pause"
    RESUME = "resume"
    ROLLBACK = "rollback"
    PROMOTE = "promote"
    RETIRE = "retire"
    STATUS = "status"
    LIST = "list"
    HISTORY = "history"
    HELP = "help"
    FREEZE = "freeze"
    UNFREEZE = "unfreeze"


#: verbs about the whole install, not one pool
INSTALL_VERBS = frozenset({Verb.LIST, Verb.HELP, Verb.FREEZE, Verb.UNFREEZE})
POOL_VERBS = frozenset(Verb) - INSTALL_VERBS
#: verbs that change a rollout (or, for the freeze, every rollout); the others only read
CHANGING_VERBS = frozenset({Verb.START, Verb.APPROVE, Verb.APPROVE_PLAN, Verb.PAUSE,
                            Verb.RESUME, Verb.ROLLBACK, Verb.PROMOTE, Verb.RETIRE, Verb.FREEZE,
                            Verb.UNFREEZE})


@dataclass(frozen=True)
class CommandRequest:
    verb: Verb
    pool: str | None = None
    namespace: str = "default"
    route: str | None = None
    stable: str | None = None
    steps: tuple[int, ...] | None = None
    interval_seconds: int | None = None
    auto: bool = False
    approvals: int | None = None
    rewrite: str | None = None
    allow_gitops: bool = False
    analysis: str | None = None
    #: how long the old pool stays in the rule after completion (None: ROLLOUT_KEEP)
    keep_seconds: int | None = None
    reason: str = ""
    request_id: str | None = None
    #: the step an approval approves, as people count (1 is the first); None: the pending one
    step: int | None = None
    #: promote although the canary analysis does not pass (audited)
    skip_analysis: bool = False
    #: the verb `help` is asked about (None: all of them)
    topic: Verb | None = None

    @property
    def ref(self) -> Ref:
        return Ref(namespace=self.namespace, canary=self.pool)

    def check(self) -> None:
        """What Slack and the CLI both check once the whole request is read, before any
        request: the names, and options that do not go together."""
        self.check_names()
        if self.auto and self.approvals is not None and self.approvals > 1:
            # an automatic plan's steps apply on the scheduler's tick after one approve-plan:
            # the N was dropped without a word, and promote and approve then each pointed
            # at the other
            raise InvalidInput(
                f"`--approvals {self.approvals}` does not go with `--auto`: an automatic plan "
                "is approved once, with `approve-plan`, and its steps then apply on their own "
                f"after each bake; for {self.approvals} approvers at every step, leave out "
                "`--auto`")

    def check_names(self) -> None:
        """The Kubernetes naming rules, before any request: a start's names by kind, a
        lookup's pool as any adapter or pool name could be."""
        names.namespace_name(self.namespace)
        if self.verb is Verb.START and self.pool is not None:
            names.rollout_names(namespace=self.namespace, canary=self.pool, route=self.route,
                                stable=self.stable, rewrite=self.rewrite)
        elif self.pool is not None:
            names.model_name("pool", self.pool)


@dataclass(frozen=True)
class CommandResult:
    """What a command produced, for the edge to render in its own way."""

    request: CommandRequest
    outcome: Outcome | None = None
    status: Status | None = None
    rollouts: list[Rollout] = field(default_factory=list)
    history: list[AuditEvent] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.outcome.ok if self.outcome is not None else True


def _approved_step(service: RolloutService, req: CommandRequest) -> Click | None:
    """An approval names the step it approves: the one given, or the one pending when the
    command read the rollout. A retry after an unclear answer then finds that step applied
    ("nothing to do") instead of approving the next one, which nobody saw."""
    rollout = service.get(req.ref)
    step = req.step - 1 if req.step is not None else rollout.pending_step
    return Click(rollout_id=rollout.id, step=step) if step is not None else None


def run_command(  # noqa: C901 - one branch per verb, read as a table
    service: RolloutService, req: CommandRequest, actor: Actor,
) -> CommandResult:
    """Exactly one service call per request; errors propagate for the edge to phrase."""
    if req.verb in POOL_VERBS and not req.pool:
        raise InvalidInput(f"`{req.verb.value}` needs a pool (or adapter) name")
    ref, rid = req.ref, req.request_id
    match req.verb:
        case Verb.START:
            assert req.pool is not None
            plan = build_plan(
                req.steps or DEFAULT_STEPS,
                interval_seconds=DEFAULT_INTERVAL_SECONDS if req.interval_seconds is None
                else req.interval_seconds,
                auto=req.auto, approvals=req.approvals or 1,
            )
            out = service.start(namespace=req.namespace, canary=req.pool, plan=plan,
                                actor=actor, route=req.route, stable=req.stable,
                                rewrite=req.rewrite, allow_gitops=req.allow_gitops,
                                analysis=req.analysis, keep_seconds=req.keep_seconds)
            return CommandResult(req, outcome=out)
        case Verb.APPROVE:
            return CommandResult(req, outcome=service.approve(
                ref, actor=actor, click=_approved_step(service, req), request_id=rid))
        case Verb.APPROVE_PLAN:
            return CommandResult(req, outcome=service.approve_plan(ref, actor=actor,
                                                                   request_id=rid))
        case Verb.PAUSE:
            return CommandResult(req, outcome=service.pause(ref, actor=actor, reason=req.reason,
                                                            request_id=rid))
        case Verb.RESUME:
            return CommandResult(req, outcome=service.resume(ref, actor=actor, request_id=rid))
        case Verb.ROLLBACK:
            return CommandResult(req, outcome=service.rollback(ref, actor=actor,
                                                               reason=req.reason,
                                                               request_id=rid))
        case Verb.PROMOTE:
            return CommandResult(req, outcome=service.promote(
                ref, actor=actor, request_id=rid, skip_analysis=req.skip_analysis))
        case Verb.RETIRE:
            return CommandResult(req, outcome=service.retire(ref, actor=actor, request_id=rid))
        case Verb.STATUS:
            return CommandResult(req, status=service.status(ref))
        case Verb.LIST:
            return CommandResult(req, rollouts=service.list_rollouts())
        case Verb.HISTORY:
            return CommandResult(req, history=service.history(ref))
        case Verb.FREEZE:
            return CommandResult(req, outcome=service.freeze(actor=actor, reason=req.reason))
        case Verb.UNFREEZE:
            return CommandResult(req, outcome=service.unfreeze(actor=actor))
        case Verb.HELP:
            return CommandResult(req)
