"""The verbs people use, as one request type and one dispatcher shared by Slack and the CLI.

Both edges parse their own syntax into a CommandRequest; `run_command` turns it into exactly
one service call, so `/rollout X approve` and `rollout-bot approve X` cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from rollout.domain.errors import InvalidInput
from rollout.domain.models import Actor, AuditEvent, Rollout
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
    STATUS = "status"
    LIST = "list"
    HISTORY = "history"
    HELP = "help"


POOL_VERBS = frozenset(Verb) - {Verb.LIST, Verb.HELP}
#: verbs that change a rollout; the others only read
CHANGING_VERBS = frozenset({Verb.START, Verb.APPROVE, Verb.APPROVE_PLAN, Verb.PAUSE,
                            Verb.RESUME, Verb.ROLLBACK, Verb.PROMOTE})


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
    analysis: str | None = None
    reason: str = ""
    request_id: str | None = None

    @property
    def ref(self) -> Ref:
        return Ref(namespace=self.namespace, canary=self.pool)


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
                                rewrite=req.rewrite, analysis=req.analysis)
            return CommandResult(req, outcome=out)
        case Verb.APPROVE:
            return CommandResult(req, outcome=service.approve(ref, actor=actor, request_id=rid))
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
            return CommandResult(req, outcome=service.promote(ref, actor=actor, request_id=rid))
        case Verb.STATUS:
            return CommandResult(req, status=service.status(ref))
        case Verb.LIST:
            return CommandResult(req, rollouts=service.list_rollouts())
        case Verb.HISTORY:
            return CommandResult(req, history=service.history(ref))
        case Verb.HELP:
            return CommandResult(req)
