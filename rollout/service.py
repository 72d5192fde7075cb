"""RolloutService: the one writer of rollout state and the one caller of traffic writes.

Every command takes the target's lock (a fencing token) and loads the state in one Redis
round trip, reconciles it with the cluster, asks the state machine for a decision, applies
its effect under the fence, and saves with compare-and-set as it gives the lock back.
Handlers, the CLI and the scheduler all come through here.
"""

from __future__ import annotations

import difflib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import NoReturn

from rollout.domain import freeze as freezes
from rollout.domain import gating, machine, names
from rollout.domain.admission import (
    Hold,
    request_for,
    rewrite_of,
    rollback_hold,
    rollback_warning,
    route_of,
    stable_ready,
    step_hold,
)
from rollout.domain.analysis import (
    Analysis,
    AnalysisFile,
    AnalysisSpec,
    ResultKind,
    Side,
    SubjectKind,
    queries_for,
)
from rollout.domain.canary import AnalysisSetup, Unconfigured
from rollout.domain.clock import Clock
from rollout.domain.errors import (
    ClusterUnavailable,
    Conflict,
    DriftDetected,
    FenceBehind,
    InvalidInput,
    LockLapsed,
    NeedsOperator,
    NotFound,
    NotReady,
    NotYet,
    Refused,
    RolloutError,
    StaleView,
    StoreUnavailable,
    StoreUnknown,
    Superseded,
    TemporaryFailure,
    Throttled,
    Unreadable,
    Unrecorded,
    WriteUnknown,
)
from rollout.domain.facts import ClusterFacts
from rollout.domain.freeze import Action, Freeze
from rollout.domain.machine import ApplyStep, Decision, Effect, Restore
from rollout.domain.models import (
    Actor,
    AuditAction,
    AuditEvent,
    Card,
    Click,
    PauseKind,
    Phase,
    Plan,
    Rollout,
    Target,
    TargetKind,
    Via,
)
from rollout.domain.preflight import CapacityPolicy, preflight
from rollout.domain.split import (
    MarkerState,
    Observed,
    Pair,
    acceptable_pairs,
    require_shares_kept,
)
from rollout.lock_keeper import LockKeeper
from rollout.ports import (
    Changes,
    ClusterFactsReader,
    FreezeRecord,
    Located,
    Marked,
    Memo,
    Opening,
    RolloutStore,
    Saving,
    TickHolds,
    Traffic,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What a command did: the rollout as saved, the answer, and the events it recorded."""

    rollout: Rollout | None
    message: str
    changed: bool = True
    ok: bool = True
    events: tuple[AuditEvent, ...] = ()


@dataclass(frozen=True)
class Status:
    """A rollout as the store has it and the cluster shows it."""

    rollout: Rollout | None
    observed: Observed | None
    message: str
    cluster_note: str = ""
    freeze: Freeze | None = None
    #: the end of the Kubernetes API throttle's hold of every automatic step, while it lasts
    ticks_held_until: datetime | None = None
    #: when it was read: what depends on the time (an analysis's inconclusive stretch
    #: against its timeout) is told as of then, not as of the rollout's last save
    read_at: datetime | None = None


@dataclass(frozen=True)
class Ref:
    """How a command names a rollout: by canary pool (the latest rollout of it) or by id."""

    namespace: str = "default"
    canary: str | None = None
    rollout_id: str | None = None

    def describe(self) -> str:
        return self.rollout_id or f"{self.namespace}/{self.canary}"


Listener = Callable[[Outcome], None]

#: the most recent rollouts whose keep periods a new leader indexes (`index_kept`): those
#: completed before the keep index existed, which the reminder then found among these
RECENT_KEPT_INDEXED = 50
#: the machine's decision for a command: pure, given the reloaded rollout (None before a start)
Decide = Callable[[Rollout | None, datetime], Decision]


class _FrozenMeanwhile(Exception):
    """A freeze recorded after a step-up's opening, read just before its write: the step is
    held as one the opening found frozen would have been; nothing was written."""


class _Hold:
    """The target lock for one operation, from the opening that took it: cluster writes carry
    its token, and the operation's save waits here (`stage`) to be written with the lock's
    release, in the command's last round trip (`close`).

    With a `keeper`, the lock is renewed while the operation works (a write and its
    fence-off may take several Kubernetes timeouts, longer than the lock's TTL)."""

    def __init__(self, store: RolloutStore, opening: Opening, *,
                 keeper: LockKeeper | None = None) -> None:
        assert opening.lease is not None
        self.store = store
        self.opening = opening
        self.lease = opening.lease
        self._staged: tuple[Saving, bool] | None = None
        #: the command decides on the namespace cache's copy of its target (a tick); its
        #: write then says so, and a moved object sends it back to a fresh read
        self.recalled = False
        self._done = False
        #: stops the keeper's renewals of this lock
        self._let_go = partial(keeper.let_go, keeper.keep(self)) if keeper is not None \
            else None

    def renew(self) -> bool:
        """The keeper's renewal; whether to go on renewing: not once released or found lost
        (the save then finds out and says why). A renewal Redis did not answer (a blip, a
        failover) leaves the lock as it was, most likely still ours: the next period tries
        again, within the keeper's limit (given up, the lock lapsed under a slow command)."""
        if self._done:
            return False
        try:
            self.store.confirm(self.lease)
        except (Superseded, LockLapsed):
            return False
        except TemporaryFailure as exc:
            log.warning("could not renew the lock on %s (%s); trying again next period",
                        self.lease.key, exc)
        except RolloutError:
            return False
        return True

    def regrant(self, behind: FenceBehind) -> int:
        """The object carries a higher token while our lock is intact: Redis forgot its
        counter. Take a fresh token above it (or learn that the lock is lost)."""
        self.lease = self.store.regrant(self.lease, floor=behind.seen)
        log.warning("fence counter of %s was behind the cluster (%d); raised it",
                    self.lease.key, behind.seen)
        return self.lease.token

    def stage(self, saving: Saving, *, landed: bool) -> Rollout:
        """Keep the operation's save for `close`; `landed`: its effect is in the cluster
        already, so a save that fails must not be answered as "nothing changed"."""
        assert self._staged is None, "an operation saves once"
        self._staged = (saving, landed)
        return saving.saved

    def close(self, memo: Memo | None = None) -> None:
        """Save what was staged, keep the request's answer and give the lock back, in one
        round trip. The lock is given back (or, Redis gone, lapses by itself) whatever the
        save's answer; a save's failure is raised, saying whether the change landed."""
        self._done = True
        if self._let_go is not None:
            self._let_go()
        staged, self._staged = self._staged, None
        try:
            self.store.close(self.lease, saving=staged[0] if staged else None, memo=memo)
        except StoreUnavailable as exc:
            if staged is None:
                log.warning("could not release the lock on %s; it expires by itself",
                            self.lease.key)
                return
            if staged[1]:
                raise _unrecorded(exc) from exc
            raise
        except (Superseded, LockLapsed) as exc:
            if staged is not None and staged[1]:
                raise _unrecorded(exc) from exc
            raise


def _unrecorded(exc: StoreUnavailable | Superseded | LockLapsed) -> RolloutError:
    """A save that failed after its change landed: the answer must not say that nothing
    changed; the cluster has it, and the next read records it."""
    if isinstance(exc, StoreUnknown):
        return Unrecorded(
            f"the change landed in the cluster, and Redis did not answer whether it was "
            f"recorded ({exc.__cause__ or exc}). If it was not, the next command or the "
            "scheduler's sweep finds it on the route and records it; repeating this is safe",
            retry_after=exc.retry_after)
    if isinstance(exc, StoreUnavailable):
        return Unrecorded(
            f"the change landed in the cluster but could not be recorded: Redis is "
            f"unavailable ({exc.__cause__ or exc}). The next command or the scheduler's "
            "sweep finds it on the route and records it; repeating this is safe",
            retry_after=exc.retry_after)
    if isinstance(exc, Superseded):
        return Superseded(
            "the change landed in the cluster, then a rollback took over this target "
            "before it was recorded; the rollback puts the weights back as they were "
            "before the rollout", landed=True)
    return Unrecorded(
        "the change landed in the cluster but could not be recorded: this command's "
        "lock lapsed before the save. The next command or the scheduler's sweep finds "
        "it on the route and records it; repeating this is safe",
        retry_after=exc.retry_after)


@dataclass(frozen=True)
class Gates:
    """What a start and every step-up ask first: the cluster as the preflight gates read
    it, the install-wide freeze, and how many Ready endpoints the canary needs."""

    facts: ClusterFactsReader
    freezes: FreezeRecord
    capacity: CapacityPolicy = field(default_factory=CapacityPolicy)


@dataclass
class ServiceOptions:
    self_approval: bool = False
    reminder_seconds: int | None = None
    approval_timeout_seconds: int | None = None
    #: how long a completed rollout keeps its old pool in the rule (ROLLOUT_KEEP)
    keep_seconds: int = 24 * 3600
    idempotency_ttl_seconds: int = 24 * 3600
    #: renews a command's target lock while it works (every third of its TTL)
    lock_keeper: LockKeeper | None = None
    listeners: list[Listener] = field(default_factory=list)
    #: the analyses a rollout may choose (`--analysis`) and the port that measures them;
    #: without a port (no PROMETHEUS_URL) rollouts start without canary analysis
    analyses: AnalysisFile | None = None
    analysis: Analysis | None = None
    #: where the scheduler records a throttle's hold of every automatic step, for `status`
    tick_holds: TickHolds | None = None


class RolloutService:
    def __init__(
        self, *, store: RolloutStore, traffic: Traffic, clock: Clock, gates: Gates,
        options: ServiceOptions | None = None,
        new_id: Callable[[str, datetime], str] | None = None,
    ) -> None:
        self.store = store
        self.traffic = traffic
        self.gates = gates
        self.clock = clock
        self.options = options or ServiceOptions()
        self._new_id = new_id or _default_id
        # States passed by as unreadable, warned of once each until read again: a rolling
        # upgrade's newer state would otherwise be warned of at every sweep.
        self._passed_by: set[str] = set()

    # -- commands ------------------------------------------------------------------------

    def start(
        self, *, namespace: str, canary: str, plan: Plan, actor: Actor, route: str | None = None,
        stable: str | None = None, rewrite: str | None = None, allow_gitops: bool = False,
        analysis: str | None = None, keep_seconds: int | None = None,
    ) -> Outcome:
        """Start a rollout of `canary`: a pool (HTTPRoute weights), or with `rewrite` an adapter
        (the named InferenceModelRewrite's target weights), gated by the canary analysis
        `analysis` (the file's default when None). The preflight gates and the freeze are asked
        under the lock, before anything is written; `allow_gitops` lets another manager own the
        weights (its revert then pauses the rollout as drift). `keep_seconds` (default: the
        install's ROLLOUT_KEEP) is how long the old pool stays in the rule after completion."""
        if rewrite is not None and route is not None:
            raise InvalidInput("give --route (a pool rollout) or --rewrite (an adapter "
                               "rollout), not both")
        names.rollout_names(namespace=namespace, canary=canary, route=route, stable=stable,
                            rewrite=rewrite)
        kind = TargetKind.ROUTE if rewrite is None else TargetKind.REWRITE
        chosen = self._analysis_choice(analysis, kind)
        with self.traffic.lookups():
            self._refuse_orphans(namespace, canary)
            located = self.traffic.locate_kind(kind, namespace=namespace, canary=canary,
                                               target_name=rewrite or route, stable=stable)
        target = located.target
        self._refuse_orphaned_target(target, located.observed)
        owner = self.store.active_on(target.key)
        if owner:
            raise Conflict(f"{target.describe()} already has an active rollout ({owner}); "
                           "finish or roll it back first")
        canary_weight = located.observed.pair.canary
        if canary_weight:
            undo = ("remove it from the rule" if target.kind is TargetKind.REWRITE
                    else "set its weight to 0")
            raise Conflict(
                f"{canary} already receives traffic (weight {canary_weight}) on "
                f"{target.describe()}: a rollout starts from 0; {undo} or roll "
                "back the earlier change first"
            )
        require_shares_kept(located.baseline, located.others, where=target.describe())
        plan = plan.model_copy(update={
            "reminder_seconds": plan.reminder_seconds or self.options.reminder_seconds,
            "approval_timeout_seconds": plan.approval_timeout_seconds
            or self.options.approval_timeout_seconds,
        })
        new_id = self._new_id(canary, self.clock.now())
        setup = None if chosen is None else AnalysisSetup(
            name=chosen[0], spec=chosen[1], kind=chosen[2], pool=located.pool,
            model=located.model)
        if setup is not None:
            self._check_analysis_queries(setup, namespace=namespace, stable=located.stable,
                                         canary=canary)

        def decide(_: Rollout | None, now: datetime) -> Decision:
            had = self._admit_start(located, allow_gitops=allow_gitops)
            d = machine.start(
                rollout_id=new_id, target=target, stable=located.stable, canary=canary,
                plan=plan, baseline=located.baseline, actor=actor, now=now,
                allow_gitops=allow_gitops, analysis=setup,
                keep_seconds=self.options.keep_seconds if keep_seconds is None else keep_seconds,
            )
            return replace(d, rollout=d.rollout.model_copy(update={"stable_ready": had}))

        return self._run(target.object_key, actor, decide)

    def approve(
        self, ref: Ref, *, actor: Actor, click: Click | None = None,
        request_id: str | None = None,
    ) -> Outcome:
        allow_self = self.options.self_approval
        return self._run(
            _clicked(ref, click), actor, lambda r, now: machine.approve(
                _recorded(r), actor=actor, now=now, click=click, self_approval=allow_self),
            request_id=request_id,
        )

    def approve_plan(
        self, ref: Ref, *, actor: Actor, click: Click | None = None,
        request_id: str | None = None,
    ) -> Outcome:
        """Approve a plan with automatic steps; its first step may then apply."""
        allow_self = self.options.self_approval

        def decide(r: Rollout | None, now: datetime) -> Decision:
            freeze = self.frozen()  # its first step is held while it lasts: say so
            held = freeze is not None and freezes.blocks(freeze, Action.STEP_UP)
            return machine.approve_plan(
                _recorded(r), actor=actor, now=now, click=click, self_approval=allow_self,
                frozen=freeze.describe() if held and freeze is not None else "")

        return self._run(_clicked(ref, click), actor, decide, request_id=request_id)

    def pause(self, ref: Ref, *, actor: Actor, reason: str = "", click: Click | None = None,
              request_id: str | None = None) -> Outcome:
        return self._run(
            _clicked(ref, click), actor,
            lambda r, now: machine.pause(_recorded(r), actor=actor, now=now, reason=reason),
            request_id=request_id,
        )

    def resume(self, ref: Ref, *, actor: Actor, click: Click | None = None,
               request_id: str | None = None) -> Outcome:
        """Refused with the numbers while the stable pool could not take the traffic back:
        the next sweep would only pause the rollout again."""
        def decide(loaded: Rollout | None, now: datetime) -> Decision:
            r = _recorded(loaded)
            d = machine.resume(r, actor=actor, now=now, click=click)
            held = self._rollback_hold(r)
            if held is not None:
                raise NotReady(f"{r.canary} stays paused: {held.reason}")
            return d

        return self._run(_clicked(ref, click), actor, decide, request_id=request_id)

    def rollback(self, ref: Ref, *, actor: Actor, reason: str = "", click: Click | None = None,
                 request_id: str | None = None) -> Outcome:
        """Preempts any operation in flight: rollback wins (DESIGN invariant 3). A finished
        rollout whose rule another rollout has taken since is refused, whatever card or
        command asked (DESIGN §6)."""
        def decide(loaded: Rollout | None, now: datetime) -> Decision:
            r = _recorded(loaded)
            d = machine.rollback(r, actor=actor, now=now, reason=reason,
                                 owner=self._owner_of(r))
            if not d.changed:
                return d
            return replace(d, message=self._rollback_warning(r) + d.message)

        return self._run(_clicked(ref, click), actor, decide, preempt=True,
                         request_id=request_id)

    def retire(self, ref: Ref, *, actor: Actor, request_id: str | None = None) -> Outcome:
        """Remove the old pool's (or adapter's) entry from the rule of a completed rollout,
        through the same fenced write; no rollback is offered after it. The edges authorize
        first (Slack: approvers only); the machine keeps the two-person rule."""
        allow_self = self.options.self_approval
        return self._run(
            ref, actor,
            lambda r, now: machine.retire(_recorded(r), actor=actor, now=now,
                                          self_approval=allow_self,
                                          owner=self._owner_of(_recorded(r))),
            request_id=request_id)

    def promote(self, ref: Ref, *, actor: Actor, request_id: str | None = None,
                skip_analysis: bool = False) -> Outcome:
        allow_self = self.options.self_approval
        return self._run(
            ref, actor,
            lambda r, now: machine.promote(
                _recorded(r), actor=actor, now=now, self_approval=allow_self,
                skip_analysis=skip_analysis),
            request_id=request_id)

    def _analysis_choice(self, name: str | None,
                         kind: TargetKind) -> tuple[str, AnalysisSpec, SubjectKind] | None:
        """The analysis a new rollout runs, checked before anything changes: None where the
        bot measures nothing (no port or no file), refused for a name it cannot run."""
        analyses, measuring = self.options.analyses, self.options.analysis is not None
        if analyses is None or not measuring:
            if name is not None:
                raise InvalidInput(f"--analysis {name}: this bot runs no canary analysis "
                                   "(PROMETHEUS_URL is not configured); start without it")
            return None
        subject = SubjectKind.POOL if kind is TargetKind.ROUTE else SubjectKind.ADAPTER
        chosen, spec = analyses.select(name, subject)
        return chosen, spec, subject

    def _check_analysis_queries(self, setup: AnalysisSetup, *, namespace: str, stable: str,
                                canary: str) -> None:
        """Ask the stable side of every query of the analysis once, before anything is
        written. A query Prometheus refuses (PromQL it cannot parse, a result of the wrong
        type) would otherwise show only once the first step moved traffic, as runs that
        stay inconclusive until the rollout pauses. A Prometheus that does not answer
        refuses nothing: the runs wait for it, as they would later. A server that answers,
        but not as Prometheus' API (401, a wrong path), whose certificate does not verify,
        or whose TLS handshake fails for good (a plain HTTP port), is refused with where
        the fault is: the URL, its credentials or the certificates trusted, not the
        analysis file."""
        port = self.options.analysis
        if port is None:
            return
        subject = gating.subject_for(setup, namespace=namespace, stable=stable, canary=canary,
                                     share=0.0)
        now = self.clock.now()
        stable_side = f"/{Side.STABLE}"
        for query in queries_for(setup.spec, subject, setup.spec.window):
            if stable_side not in query.key:
                continue
            result = port.query(query.promql, now)
            if result.untrusted:
                raise InvalidInput(
                    f"{result.reason}: check PROMETHEUS_URL and the certificates the bot "
                    "trusts (SSL_CERT_FILE) and start again; nothing was changed")
            if result.handshake_refused:
                raise InvalidInput(
                    f"{result.reason}: check PROMETHEUS_URL's scheme and port (https:// to a "
                    "port that speaks plain HTTP fails so) and whether the server asks for "
                    "a client certificate or a TLS version the bot does not offer, and start "
                    "again; nothing was changed")
            if result.kind is ResultKind.UNAVAILABLE:
                return
            if result.kind is ResultKind.ERROR and result.not_prometheus:
                raise InvalidInput(
                    f"{result.reason}: check PROMETHEUS_URL and its credentials "
                    "(PROMETHEUS_BEARER_TOKEN_FILE, PROMETHEUS_HEADERS) and start again; "
                    "nothing was changed")
            if result.kind is ResultKind.ERROR and result.evaluation_failed:
                raise InvalidInput(
                    f"Prometheus could not evaluate the query {query.key} of canary analysis "
                    f"{setup.name!r} ({result.reason}): fix it in the analysis file "
                    "(ROLLOUT_ANALYSIS_FILE), or, if a store behind Prometheus (Thanos, "
                    "Mimir) is down, start again once it answers; nothing was changed")
            if result.kind is ResultKind.ERROR:
                raise InvalidInput(
                    f"Prometheus refuses the query {query.key} of canary analysis "
                    f"{setup.name!r} ({result.reason}): fix it in the analysis file "
                    "(ROLLOUT_ANALYSIS_FILE) and start again; nothing was changed")

    def _recorded_analysis(self, recorded: object, kind: TargetKind, *,
                           without: bool = False) -> AnalysisSetup | None:
        """The analysis a rollout's record names, from the analysis file as it is now; None
        where it names none. Without PROMETHEUS_URL it is kept all the same: its runs are
        inconclusive and the rollout pauses, rather than stepping on unmeasured. One this
        bot cannot run any more (gone from the file, or no longer fitting) is refused unless
        the operator says `without`: a rollout brought back without it would step ungated."""
        if recorded is None:
            return None
        named = recorded.get("name") if isinstance(recorded, dict) else None
        try:
            if not isinstance(named, str) or not isinstance(recorded, dict):
                raise InvalidInput("the record's analysis cannot be read")
            if self.options.analyses is None:
                raise InvalidInput("this bot has no analysis file")
            subject = SubjectKind.POOL if kind is TargetKind.ROUTE else SubjectKind.ADAPTER
            chosen, spec = self.options.analyses.select(named, subject)
        except InvalidInput as exc:
            if without:
                return None
            raise NeedsOperator(
                f"the rollout ran canary analysis {named or recorded!r}, which this bot cannot "
                f"run ({exc}); brought back without it, its steps would go on unmeasured. Put "
                "the analysis back in ROLLOUT_ANALYSIS_FILE, or recover with "
                "--without-analysis to go on gated by approvals and bake times alone") from exc
        return AnalysisSetup(name=chosen, spec=spec, kind=subject,
                             pool=str(recorded.get("pool", "")),
                             model=str(recorded.get("model", "")))

    def analyse(self, rollout: Rollout) -> Outcome | None:
        """The scheduler's analysis run, at the analysis interval during each bake: the
        queries are asked outside the lock (a slow Prometheus holds nothing), then the run
        is folded in and acted on through the one command path, locked and fenced like
        `tick`. None when no run is due."""
        if not gating.due(rollout, self.clock.now()):
            return None
        run = gating.run_analysis(rollout, self.options.analysis or Unconfigured(),
                                  self.clock.now())
        measured = rollout.step_analysis
        return self._run(Ref(rollout_id=rollout.id), Actor.scheduler(),
                         lambda r, now: machine.analysed(_recorded(r), run=run,
                                                         measured=measured, now=now))

    def tick(self, rollout_id: str) -> Outcome:
        """The scheduler's entry: whatever time alone does to this rollout now. It decides on
        the namespace cache's copy of the target while that shows the bot's own last write
        (a step is then one PATCH, no GET); a copy that trails the cluster costs a refused
        PATCH and the tick is decided again on a fresh read (`_run`)."""
        return self._run(Ref(rollout_id=rollout_id), Actor.scheduler(),
                         lambda r, now: machine.tick(_recorded(r), now=now), recall=True)

    def watch(self, rollout: Rollout) -> Outcome | None:
        """The scheduler's sweep: a cheap look at an active rollout's target (the namespace
        cache's copy while it is live, else a GET); only when it disagrees with the state
        (drift, a gateway problem, a write that landed before a crash) does it take the lock
        and reconcile on a fresh read, so drift pauses within one sweep (DESIGN invariant
        6)."""
        if not rollout.active:
            if rollout.id not in self.store.in_flight_ids():
                return None
            # a finished rollout with a write in flight: decided under its lock, so that a
            # command still writing is waited for rather than raced
            return self._run(Ref(rollout_id=rollout.id), Actor.scheduler(),
                             lambda r, now: Decision(rollout=_recorded(r), message="",
                                                     changed=False))
        try:
            observed = self.traffic.glance(rollout)
        except (NeedsOperator, NotFound):
            pass  # the locked path below pauses with the reason
        else:
            found = machine.reconcile(rollout, observed, now=self.clock.now())
            if found is None or not found.changed:
                return self._watch_rollback(rollout)
        return self._run(Ref(rollout_id=rollout.id), Actor.scheduler(),
                         lambda r, now: Decision(rollout=_recorded(r), message="",
                                                 changed=False))

    def _watch_rollback(self, rollout: Rollout) -> Outcome | None:
        """The sweep's rollback-readiness check: one read of the namespace per active pool
        rollout that is not paused and has moved traffic (before the first step there is
        nothing to take back); only a stable pool that could no longer take the traffic back
        takes the lock, to pause the rollout with the numbers."""
        if rollout.phase is Phase.PAUSED or self._rollback_hold(rollout) is None:
            return None

        def decide(loaded: Rollout | None, now: datetime) -> Decision:
            r = _recorded(loaded)
            held = self._rollback_hold(r) if r.active and r.phase is not Phase.PAUSED else None
            if held is None:  # finished, paused or recovered meanwhile
                return Decision(rollout=r, message="", changed=False)
            return machine.pause(r, actor=Actor.scheduler(), now=now, reason=held.reason,
                                 kind=PauseKind.ROLLBACK)

        return self._run(Ref(rollout_id=rollout.id), Actor.scheduler(), decide)

    def remind_kept(self) -> list[Outcome]:
        """The scheduler's keep-period reminder: each completed rollout whose keep period is
        over is told once (an audit event the card's thread shows, mentioning the
        approvers). One Redis command when none is due (the keep index the save keeps), and
        one read of each that is. One that cannot be told now (its lock held by a person's
        command, the cluster slow) waits for the next pass without holding back the others;
        Redis gone stops the pass."""
        now = self.clock.now()
        listed = self._each(self.store.kept_until(now))
        stale = [i for i, r in listed.items() if r is None or r.keep_reminder_at is None]
        if stale:  # indexed at a leader's takeover while its reminder was being told
            self.store.unindex_kept(stale)
        due = [r for r in listed.values() if r is not None and machine.keep_due(r, now)]
        told = []
        for r in due:
            try:
                told.append(self._run(
                    Ref(rollout_id=r.id), Actor.scheduler(),
                    lambda loaded, at: machine.keep_over(_recorded(loaded), now=at)))
            except StoreUnavailable:
                raise
            except RolloutError as exc:
                log.warning("could not remind of the end of %s's keep period: %s (the next "
                            "pass retries)", r.id, exc)
        return told

    def attach_card(self, rollout_id: str, card: Card, *,
                    replacing: Card | None = None) -> Card:
        """Remember where the rollout's chat card lives, so every replica edits that one;
        `replacing`: the card it takes the place of (None: the first). The version does not
        change: the buttons already drawn stay current. The card the rollout has: another
        process's, where it attached one first."""
        return self.store.set_card(rollout_id, card, replacing=replacing)

    # -- queries -------------------------------------------------------------------------

    def get(self, ref: Ref) -> Rollout:
        """The rollout a ref names, in one Redis round trip."""
        rollout = self._lookup(ref)
        if rollout is None:
            self._unknown(ref)
        return rollout

    def _lookup(self, ref: Ref) -> Rollout | None:
        rid = _named(ref).rollout_id
        return self.store.get(rid) if rid else self.store.latest(ref.namespace,
                                                                  ref.canary or "")

    def status(self, ref: Ref) -> Status:
        """The rollout, what the cluster shows, the freeze if there is one, and the
        scheduler's hold while the Kubernetes API throttles it."""
        holds = self.options.tick_holds
        return replace(self._status(ref), freeze=self.frozen(),
                       ticks_held_until=holds.held_until() if holds is not None else None,
                       read_at=self.clock.now())

    def _status(self, ref: Ref) -> Status:
        rollout = self._lookup(ref)
        if rollout is None:
            unknown = f"no rollout of {ref.describe()} is recorded"
            by_name = ref.canary if not _named(ref).rollout_id else None
            if by_name is None:
                return Status(rollout=None, observed=None, message=unknown)
            try:
                self._refuse_orphans(ref.namespace, by_name)
            except NeedsOperator as exc:
                return Status(rollout=None, observed=None, message=unknown,
                              cluster_note=str(exc))
            return Status(rollout=None, observed=None,  # the close name, as other verbs say
                          message=unknown + self._close_name(ref.namespace, by_name))
        try:
            observed = self.traffic.observe(rollout)
        except (ClusterUnavailable, NeedsOperator, NotFound) as exc:
            return Status(rollout, None, _summary(rollout), cluster_note=str(exc))
        note = ""
        if rollout.active and observed.pair not in acceptable_pairs(rollout):
            note = f"the cluster shows {observed.pair.describe()} (drift)"
        elif not rollout.active and rollout.id in self.store.in_flight_ids():
            found = machine.reconcile(rollout, observed, now=self.clock.now())
            if found is not None and found.changed:
                note = (f"the cluster shows {observed.pair.describe()}: {found.message} "
                        "(the scheduler's sweep records it)")
        return Status(rollout, observed, _summary(rollout), cluster_note=note)

    def list_rollouts(self, *, recent: int = 10) -> list[Rollout]:
        """The active rollouts, then the most recent finished ones."""
        ids = self.store.active_ids()
        seen = ids + [i for i in self.store.recent_ids(recent) if i not in ids]
        return [r for r in self._each(seen).values() if r is not None]

    def active(self) -> list[Rollout]:
        rollouts = self._each(self.store.active_ids()).values()
        return [r for r in rollouts if r is not None and r.active]

    def in_flight(self) -> list[Rollout]:
        """Finished rollouts a command began writing (a rollback of a completed one) whose
        save has not followed: the sweep looks at their targets as it does at active ones."""
        rollouts = self._each(self.store.in_flight_ids()).values()
        return [r for r in rollouts if r is not None and not r.active]

    def due_until(self, until: datetime) -> dict[str, datetime]:
        """Active rollouts due by `until` (the scheduler's horizon), from the due index the
        save keeps: one Redis command however many rollouts are active."""
        return self.store.due_until(until)

    def index_due(self, rollouts: list[Rollout]) -> None:
        """Put the due times of loaded rollouts into the index where it lacks them, unless
        saved since (the save keeps the index)."""
        self.store.index_due({r.id: (r.next_due_at, r.version) for r in rollouts
                              if r.active and r.next_due_at})

    def index_kept(self, recent: int = RECENT_KEPT_INDEXED) -> None:
        """Put the keep-period ends of the `recent` most recent rollouts into the keep index
        where it lacks them: rollouts completed before the index existed, which the reminder
        used to find among the 50 most recent. The leader does this when it takes the lease."""
        loaded = self._each(self.store.recent_ids(recent)).values()
        self.store.index_kept({r.id: at for r in loaded
                               if r is not None and (at := r.keep_reminder_at) is not None})

    def expire_finished(self) -> int:
        """Let the records of finished rollouts written while the retention was off go after
        it too (the store's `expire_finished`). The leader's analysis job does this once after
        each full reload (a takeover), off the sweep."""
        return self.store.expire_finished(self.clock.now())

    def changes_since(self, seen: int) -> Changes:
        """Which rollouts were written after write number `seen`."""
        return self.store.changes_since(seen)

    def load(self, rollout_ids: list[str]) -> dict[str, Rollout | None]:
        """The recorded state of each id, None for one that is gone or that this version
        cannot read (the scheduler drops its job: it cannot drive it)."""
        loaded = self._each(rollout_ids)
        return {rid: loaded.get(rid) for rid in rollout_ids}

    def _each(self, rollout_ids: list[str]) -> dict[str, Rollout | None]:
        """The recorded state of each id (None: gone), passing by, with a warning, a state
        this version cannot read: in a rolling upgrade a newer version's state must not stop
        the scheduler's reload, or a list, for every other rollout. The warning is said once
        per state until it is read again (the scheduler meets it at every sweep)."""
        found: dict[str, Rollout | None] = {}
        for rid in rollout_ids:
            try:
                found[rid] = self.store.get(rid)
            except Unreadable as exc:
                said = rid in self._passed_by
                self._passed_by.add(rid)
                log.log(logging.DEBUG if said else logging.WARNING,
                        "passing by rollout %s: %s", rid, exc)
            else:
                self._passed_by.discard(rid)
        return found

    def history(self, ref: Ref, *, limit: int = 200) -> list[AuditEvent]:
        return self.store.audit(self._resolve(ref), limit=limit)

    def record_denial(self, *, actor: Actor, action: str, ref: Ref | None, reason: str) -> bool:
        """Audit a refusal (a denial, bad input) that changed nothing; False when the audit
        does not have it. Never raises: the refusal is the answer whatever the audit meets.
        A store out of reach (a TemporaryFailure) is logged in one line, as the outage it
        is; any other failure, a bug, with its traceback."""
        try:
            rollout_id, target = "", ""
            if ref is not None:  # no cluster read: a refusal is audited whatever the rule says
                r = self._lookup(ref)
                rollout_id, target = (r.id, r.target.key) if r else ("", ref.describe())
            event = AuditEvent(at=self.clock.now(), rollout_id=rollout_id, target=target,
                               action=AuditAction.DENIED, refused=action, actor=actor,
                               detail=reason)
            self.store.record(event)
        except TemporaryFailure as exc:
            log.warning("could not audit the refusal of %s by %s: %s", action, actor.id, exc)
            return False
        except Exception:  # the answer matters more than the audit line; log loudly
            log.exception("could not audit the refusal of %s by %s", action, actor.id)
            return False
        return True

    # -- the one path of every change ----------------------------------------------------

    def _run(
        self, subject: Ref | str, actor: Actor, decide: Decide, *, preempt: bool = False,
        request_id: str | None = None, recall: bool = False,
    ) -> Outcome:
        """The one path of every change: lock and load, reconcile, decide, apply the effect
        under the fence, save once, emit. Redis sees three round trips: the opening (lock,
        state, freeze), the confirm just before the cluster write, the closing (save, the
        request's answer, release). `subject` names a recorded rollout (a Ref), or is the
        object key a rollout not recorded yet will take (start, recover): then nothing is
        loaded and its decision is the first version. A request id is looked up in the same
        atomic step that takes the lock (an answer found takes no lock), and remembered,
        with its answer, only with the save that ends a command that ran: a retry after a
        failure runs again; a duplicate of a success gets the first answer.

        `recall` (a tick): reconcile on the namespace cache's copy of the target. Only a copy
        that shows nothing to reconcile is decided on; the write carries the resourceVersion
        it was decided on, and an object that moved since (StaleView: nothing was written
        or staged) sends the command back to reconcile on a fresh read, exactly as without
        the cache."""
        memo = f"request:{request_id}" if request_id is not None else None
        opening = self._open(subject, preempt=preempt, memo=memo, person=_person(actor))
        if opening.answer is not None:
            return Outcome(None, f"Already handled: {opening.answer}", changed=False)
        hold = _Hold(self.store, opening, keeper=self.options.lock_keeper)
        outcome: Outcome | None = None
        answered: Memo | None = None
        hold.recalled = recall
        try:
            current = opening.rollout
            while True:
                found = self._reconcile(current, opening, hold) if current is not None \
                    else None
                base = found.rollout if found is not None else current
                try:
                    decision = decide(base, self.clock.now())
                except Refused as refused:
                    if found is not None:  # a drift pause found on the way is kept and shown
                        assert current is not None
                        outcome = self._save(current.version, found, hold)
                    if isinstance(refused, NotYet) and (
                            frozen := freezes.also_holds(opening.freeze)):
                        raise NotYet(f"{refused}{frozen}") from refused  # say both waits
                    raise
                try:
                    outcome = self._carry_out(current, found, decision, hold, actor)
                except StaleView:
                    if not hold.recalled:
                        raise
                    hold.recalled = False  # once more, on a fresh read
                    continue
                break
            if memo is not None:
                answered = Memo(memo, outcome.message, self.options.idempotency_ttl_seconds)
        finally:
            hold.close(answered)  # a save it fails is raised here, and nothing is emitted
            if outcome is not None:
                self._emit(outcome)
        return outcome

    def _open(self, subject: Ref | str, *, preempt: bool, memo: str | None,
              person: bool) -> Opening:
        """The command's first round trip: the request's earlier answer, or the lock with
        the rollout loaded under it. A name nothing is recorded under is refused here. A
        person's command says it went to work, so that the scheduler's ticks make way."""
        if not isinstance(subject, Ref):
            return self.store.open(key=subject, preempt=preempt, memo=memo, person=person)
        if _named(subject).rollout_id:
            opening = self.store.open(rollout_id=subject.rollout_id, preempt=preempt,
                                      memo=memo, person=person)
        else:
            opening = self.store.open(latest=(subject.namespace, subject.canary or ""),
                                      preempt=preempt, memo=memo, person=person)
        if opening.answer is None and opening.rollout is None:
            if opening.lease is not None:  # gone between the two reads of an older state
                self.store.close(opening.lease)
            self._unknown(subject)
        return opening

    def _owner_of(self, r: Rollout) -> str | None:
        """The rollout the rule belongs to now: the active one on it, else the one the
        cluster's marker names (a finished later rollout); None when nothing says."""
        active = self.store.active_on(r.target.key)
        if active is not None or r.active:
            return active
        try:
            marker = self.traffic.observe(r).marker
        except (ClusterUnavailable, NeedsOperator, Refused):
            return None  # nothing says; the rollback's own write then answers
        return marker.rollout_id if marker is not None else None

    def _reconcile(self, r: Rollout, opening: Opening, hold: _Hold) -> Decision | None:
        """Adopt a write that landed before a crash; pause on drift. Never guess. The
        decision is saved with the command's, as one version. With `hold.recalled`, on the
        cache's copy while it shows nothing to reconcile; anything else is decided on a
        fresh read (a copy that trails the cluster must not pause or adopt)."""
        if not r.active:
            hold.recalled = False
            return self._reconcile_finished(r, in_flight=opening.in_flight)
        now = self.clock.now()
        try:
            observed = self.traffic.recall(r) if hold.recalled else None
            if observed is None:
                hold.recalled = False
                observed = self.traffic.observe(r)
        except (NeedsOperator, NotFound) as exc:
            if hold.recalled:
                hold.recalled = False
                return self._reconcile(r, opening, hold)
            reason = _gone(r, exc) if isinstance(exc, NotFound) else str(exc)
            decision = machine.pause(r, actor=Actor.scheduler(), now=now, reason=reason,
                                     kind=PauseKind.DRIFT)
            return decision if decision.changed else None
        found = machine.reconcile(r, observed, now=now)
        if found is None or not found.changed:
            return None
        if hold.recalled:
            hold.recalled = False
            return self._reconcile(r, opening, hold)
        return found

    def _reconcile_finished(self, r: Rollout, *, in_flight: bool) -> Decision | None:
        """A finished rollout whose write was in flight (under the lock, so no command is
        writing now): record the rollback that landed, or end the mark when none did."""
        if not in_flight:
            return None
        try:
            observed = self.traffic.observe(r)
        except NotFound:  # the object is gone: no write of ours can land on it any more
            self.store.clear_in_flight(r.id)
            return None
        except (ClusterUnavailable, NeedsOperator):
            return None  # still in flight: the next sweep looks again
        found = machine.reconcile(r, observed, now=self.clock.now())
        if found is None or not found.changed:
            self.store.clear_in_flight(r.id)
            return None
        return found

    def _carry_out(
        self, current: Rollout | None, found: Decision | None, d: Decision, hold: _Hold,
        actor: Actor,
    ) -> Outcome:
        """Apply the decision's effect under the fence, then save what it leaves, with what
        reconcile found, as one version. A rollout not recorded yet is saved first (it claims
        the target before the cluster names it)."""
        version = current.version if current is not None else 0
        base = found.rollout if found is not None else current
        prior = found.events if found is not None else ()
        if not d.changed:
            if found is None:
                return Outcome(current, d.message, changed=False)
            saved = self._save(version, found, hold)
            return replace(saved, message=d.message or found.message, changed=False)
        effect = d.effect
        if effect is None:
            return self._save(version, _joined(prior, d), hold)
        if current is None:
            return self._claim(d, effect, hold, actor)
        assert base is not None
        held = self._step_hold(base, effect, hold.opening.freeze)
        if held is not None:
            return self._hold(version, found, base, held, hold, actor, unwritten=d.unwritten)
        if not base.active:  # until saved, the sweep looks at this finished rollout's target
            self.store.mark_in_flight(base.id)
        written = self._write(version, base, found, d, effect, hold, actor)
        if isinstance(written, Outcome):
            return written
        if isinstance(effect, Restore):
            d = replace(d, events=machine.overtaken(base, written, now=self.clock.now())
                        + d.events)
        gated = machine.gate(d.rollout, written, now=self.clock.now())
        if gated is None:
            return self._save_landed(version, _joined(prior, d), hold)
        # the step landed, and the gateway objects to it: saved paused, in the same version
        both = replace(gated, events=d.events + gated.events,
                       message=f"{d.message} {gated.message}")
        return replace(self._save_landed(version, _joined(prior, both), hold), ok=False)

    def _write(
        self, version: int, base: Rollout, found: Decision | None, d: Decision, effect: Effect,
        hold: _Hold, actor: Actor,
    ) -> Observed | Outcome:
        """The effect under the fence: what the cluster shows after it, or, when it did not
        land (or may not have), the answer with the state saved paused."""
        before = None if isinstance(effect, Restore) else acceptable_pairs(base)
        try:
            return self._apply(hold, d.rollout, effect, before)
        except _FrozenMeanwhile as frozen:
            return self._hold(version, found, base, Hold(reason=str(frozen), noted=False), hold,
                              actor, unwritten=d.unwritten)
        except WriteUnknown as exc:
            seen = self._fate(exc, d.rollout, effect, paused=base.active)
            if not isinstance(seen, str):
                return seen
            return self._paused_on_failure(version, base, found, hold, actor, reason=seen,
                                           message=seen, unwritten=d.unwritten)
        except DriftDetected as exc:
            if not base.active:  # a retire on weights changed since: nothing was written
                self.store.clear_in_flight(base.id)
                return Outcome(base, f"Not applied: {exc}. Nothing was changed.",
                               changed=False, ok=False)
            prior = found.events if found is not None else ()
            kept = d.unwritten  # what the decision found beyond its effect stands
            if kept is not None:
                base, prior = kept.rollout, prior + kept.events
            paused = machine.pause(base, actor=Actor.scheduler(), now=self.clock.now(),
                                   reason=str(exc), kind=PauseKind.DRIFT)
            saved = self._save(version, _joined(prior, paused), hold)
            return replace(saved, message=f"Not applied: {exc}. {paused.message}", ok=False)
        except Throttled:
            raise  # refused before it was served: nothing to pause for, the same step is retried
        except NotFound as exc:
            return self._target_gone(version, base, found, d, effect, hold, actor, exc)
        except (ClusterUnavailable, NeedsOperator) as exc:
            return self._not_applied(version, base, found, d, hold, actor, str(exc))

    def _not_applied(self, version: int, base: Rollout, found: Decision | None, d: Decision,
                     hold: _Hold, actor: Actor, reason: str) -> Outcome:
        """A write the cluster refused or could not take: paused with the reason (a finished
        rollout is left as it is)."""
        then = ("The rollout is paused; resume or roll back once the cause is fixed."
                if base.active else "Nothing changed; try again once the cause is fixed.")
        return self._paused_on_failure(version, base, found, hold, actor, reason=reason,
                                       message=f"Not applied: {reason}. {then}",
                                       unwritten=d.unwritten)

    def _target_gone(self, version: int, base: Rollout, found: Decision | None, d: Decision,
                     effect: Effect, hold: _Hold, actor: Actor, exc: NotFound) -> Outcome:
        """The write found its target deleted: a rollback ends (nothing to restore); any
        other write pauses the rollout with why."""
        if isinstance(effect, Restore):
            return self._nothing_to_restore(version, found, d, hold, _gone(base, exc))
        if not base.active:
            self.store.clear_in_flight(base.id)
        return self._not_applied(version, base, found, d, hold, actor, _gone(base, exc))

    def _nothing_to_restore(self, version: int, found: Decision | None, d: Decision,
                            hold: _Hold, gone: str) -> Outcome:
        """A rollback whose target was deleted: no traffic goes through it any more, so
        there is nothing to restore, and the rollout ends rolled back (audited as such, with
        why) rather than refused for good ("not found") with the rule still claimed."""
        note = f"{gone}; nothing was restored"  # after who asked, or why
        events = tuple(e.model_copy(update={"detail": f"{e.detail}; {note}"})
                       if e.action is AuditAction.ROLLED_BACK else e for e in d.events)
        ended = replace(d, events=events, message=f"{d.message} ({note}.)")
        prior = found.events if found is not None else ()
        return self._save(version, _joined(prior, ended), hold)

    def _fate(self, exc: WriteUnknown, r: Rollout, effect: Effect, *,
              paused: bool) -> Observed | str:
        """After a write whose answer was lost: what the cluster shows when one more read
        says it landed, else what to tell (it may still land; the sweep records it then).
        `paused`: the rollout is paused for it (a finished one is not)."""
        seen = self._read_again(r)
        if seen is not None and machine.shows_landed(r, effect, seen):
            return seen
        what = ("the cluster could not be read again to tell" if seen is None else
                "a fresh read shows it has not landed, but the write may still be in flight")
        then = "The rollout is paused; the" if paused else "The"
        return (f"Not known whether this landed: {exc}; {what}. {then} scheduler's sweep "
                "records the change if it lands.")

    def _read_again(self, r: Rollout) -> Observed | None:
        """One more read after a write whose answer was lost; None when it fails too."""
        try:
            return self.traffic.observe(r)
        except (ClusterUnavailable, NeedsOperator, NotFound):
            return None

    def _paused_on_failure(
        self, version: int, base: Rollout, found: Decision | None, hold: _Hold, actor: Actor,
        *, reason: str, message: str, unwritten: Decision | None = None,
    ) -> Outcome:
        """A write that did not land (or may not have): the rollout keeps its step, paused
        with the reason, saved with what reconcile found (and what the decision found beyond
        its effect, `unwritten`); a write that lands later after all is recorded from its
        marker by the next read (a command, the scheduler's sweep)."""
        prior = found.events if found is not None else ()
        failed = machine.effect_failed(base, now=self.clock.now(), reason=reason, actor=actor,
                                       unwritten=unwritten)
        if unwritten is not None:
            message = f"{unwritten.message}: {message}"
        if failed.changed:
            saved = self._save(version, _joined(prior, failed), hold)
        elif found is not None:
            saved = self._save(version, found, hold)
        else:
            return Outcome(base, message, ok=False)
        return replace(saved, message=message, ok=False)

    def _save_landed(self, version: int, d: Decision, hold: _Hold) -> Outcome:
        """Save what a write that landed leaves. When that save fails, the answer must not
        say that nothing changed (`_Hold.close` says it landed)."""
        return self._save(version, d, hold, landed=True)

    # -- the gates: preflight, capacity, GitOps, the freeze ----------------------------------

    def _facts(self, target: Target) -> ClusterFacts:
        """The namespace the gates decide on, showing the bot's own last write of `target`."""
        return self.gates.facts.read(target.namespace, route=route_of(target),
                                     rewrite=rewrite_of(target))

    def _admit_start(self, located: Located, *, allow_gitops: bool) -> int | None:
        """Refuse a start that a freeze holds or the cluster is not ready for, listing every
        problem; nothing has been written yet. Returns the stable pool's Ready endpoints,
        which each step then checks a rollback could still count on."""
        freezes.check_blocked(self.gates.freezes.get(), Action.START)
        t = located.target
        facts = self._facts(t)
        request = request_for(target=t, stable=located.stable, canary=located.canary,
                              baseline=located.baseline, share_percent=None,
                              allow_gitops=allow_gitops)
        verdict = preflight(facts, request, self.gates.capacity)
        if not verdict.ok:
            raise NotReady(f"{located.canary} cannot start; nothing was changed:\n"
                           f"{verdict.explain()}")
        return stable_ready(facts, request)

    def _step_hold(self, r: Rollout, effect: Effect, freeze: Freeze | None) -> Hold | None:
        """Before a step-up (a click or a tick): the freeze (as the command's opening read
        it), then the gates for the share the step gives the canary. None when the step may
        go ahead, and for every other effect (a rollback is never held)."""
        if not isinstance(effect, ApplyStep):
            return None
        frozen = freezes.blocks(freeze, Action.STEP_UP)
        if frozen:
            return Hold(reason=frozen, noted=False)
        facts = self._facts(r.target)
        return step_hold(facts, r, percent=effect.percent, policy=self.gates.capacity)

    def _rollback_hold(self, r: Rollout) -> Hold | None:
        """Whether a rollback could still count on the stable pool; reads the namespace only
        where it matters (_takes_back)."""
        if not _takes_back(r):
            return None
        facts = self._facts(r.target)
        return rollback_hold(facts, r, policy=self.gates.capacity)

    def _rollback_warning(self, r: Rollout) -> str:
        """A rollback is never held: an unreadable cluster only leaves the warning out."""
        if not _takes_back(r):
            return ""
        try:
            facts = self._facts(r.target)
        except RolloutError as exc:
            log.warning("could not read %s before the rollback of %s: %s",
                        r.target.namespace, r.id, exc)
            return ""
        return rollback_warning(facts, r, policy=self.gates.capacity)

    def _hold(self, version: int, found: Decision | None, r: Rollout, held: Hold,
              hold: _Hold, actor: Actor, *, unwritten: Decision | None = None) -> Outcome:
        """A step-up that may not go ahead: pause with the reason, or keep the rollout where
        it is (the next tick or click tries again), noting why once for the card. What the
        decision found beyond its step (`unwritten`: an analysis run that passed) stands."""
        now = self.clock.now()
        prior = found.events if found is not None else ()
        if unwritten is not None:
            found = replace(unwritten, events=prior + unwritten.events)
            r, prior = found.rollout, found.events
        if held.pause:
            paused = machine.pause(r, actor=Actor.scheduler(), now=now, reason=held.reason,
                                   kind=PauseKind.PREFLIGHT)
            saved = self._save(version, _joined(prior, paused), hold)
            return replace(saved, message=f"Not applied: {paused.message}", ok=False)
        message = f"Not applied: {held.reason}"
        if not held.noted or r.held == held.reason:
            if found is None:
                return Outcome(r, message, changed=False, ok=False)
            return replace(self._save(version, found, hold), message=message, changed=False,
                           ok=False)
        pending = r.pending_step
        event = AuditEvent(at=now, rollout_id=r.id, target=r.target.key,
                           action=AuditAction.STEP_HELD,
                           actor=actor, step=pending, detail=held.reason,
                           percent=r.plan.steps[pending].percent if pending is not None
                           else None)
        waiting = Decision(rollout=r.model_copy(update={"held": held.reason,
                                                        "updated_at": now}),
                           message=message, events=(*prior, event))
        return replace(self._save(version, waiting, hold), ok=False)

    # -- the freeze ------------------------------------------------------------------------

    def frozen(self) -> Freeze | None:
        return self.gates.freezes.get()

    def freeze(self, *, actor: Actor, reason: str) -> Outcome:
        """Hold every new start and step-up across the install. The edges authorize first
        (Slack: approvers only, handlers.authorization; the CLI is break-glass)."""
        now = self.clock.now()
        record = self.gates.freezes.put(freezes.freeze(
            self.gates.freezes.get(), actor=actor.label, is_approver=True, reason=reason,
            now=now))
        held = self._announce(AuditAction.FROZEN, actor, record.reason)
        return Outcome(None, f"Rollouts are {record.describe()}. New starts and step-ups "
                             f"wait until an approver runs unfreeze ({held} active rollout"
                             f"{'s' if held != 1 else ''} held); rollback and pause still work.")

    def unfreeze(self, *, actor: Actor) -> Outcome:
        freezes.unfreeze(self.gates.freezes.get(), is_approver=True)
        lifted = self.gates.freezes.lift()
        self._announce(AuditAction.UNFROZEN, actor, f"lifted the freeze ({lifted.describe()})")
        return Outcome(None, f"Rollouts are no longer frozen ({lifted.describe()}); held "
                             "steps go ahead at the next tick or approval.")

    def _announce(self, action: AuditAction, actor: Actor, detail: str) -> int:
        """Audit a freeze or unfreeze, once for the install and once on every active
        rollout's card; returns how many rollouts it touches."""
        now = self.clock.now()
        self.store.record(AuditEvent(at=now, rollout_id="", target="install", action=action,
                                     actor=actor, detail=detail))
        active = self.active()
        for r in active:
            event = AuditEvent(at=now, rollout_id=r.id, target=r.target.key, action=action,
                               actor=actor, detail=detail)
            self.store.record(event)
            self._emit(Outcome(r, detail, changed=False, events=(event,)))
        return len(active)

    def _claim(self, d: Decision, effect: Effect, hold: _Hold, actor: Actor) -> Outcome:
        """A start claims the target in the store before the cluster names it; a failed
        first write ends the rollout, and one whose fate is unknown pauses it (ending it
        would free the target while the cluster may name it)."""
        # the one write not left for the lock's release: the claim is recorded before the
        # cluster names the rollout
        created = self.store.create(d.rollout, lease=hold.lease, events=d.events)
        try:
            self._apply(hold, created, effect, None)
        except WriteUnknown as exc:
            seen = self._fate(exc, created, effect, paused=True)
            if not isinstance(seen, str):
                return Outcome(created, d.message, events=d.events)
            return self._paused_on_failure(created.version, created, None, hold, actor,
                                           reason=seen, message=seen)
        except (ClusterUnavailable, NeedsOperator, DriftDetected) as exc:
            failed = machine.fail(created, now=self.clock.now(), reason=str(exc), actor=actor)
            return replace(self._save(created.version, failed, hold), ok=False)
        return Outcome(created, d.message, events=d.events)

    def _apply(self, hold: _Hold, r: Rollout, effect: Effect,
               before: tuple[Pair, ...] | None) -> Observed:
        """The effect under the fence, once more with a raised token if Redis was behind. A
        step-up meets the freeze as it stands just before the write: one recorded since
        the command's opening holds it (_FrozenMeanwhile), as it holds every later one."""
        freeze = self.store.confirm(hold.lease)
        if isinstance(effect, ApplyStep):
            frozen = freezes.blocks(freeze, Action.STEP_UP)
            if frozen:
                raise _FrozenMeanwhile(frozen)
        try:
            return self.traffic.apply(r, effect, fence=hold.lease.token, before=before,
                                      recalled=hold.recalled)
        except FenceBehind as behind:
            fence = hold.regrant(behind)
            return self.traffic.apply(r, effect, fence=fence, before=before)

    def _save(self, version: int, d: Decision, hold: _Hold, *, landed: bool = False) -> Outcome:
        """The one save point: the first version of a rollout is created, later ones are
        compare-and-set on the version the command loaded. The write goes with the lock's
        release when the command ends (`_Hold.close`), in one round trip; `landed` says
        the decision's effect is in the cluster already."""
        saved = hold.stage(Saving(d.rollout, version, d.events), landed=landed)
        return Outcome(saved, d.message, events=d.events)

    def _emit(self, outcome: Outcome) -> Outcome:
        for listener in self.options.listeners:
            try:
                listener(outcome)
            except Exception:  # a chat outage must not undo or block a rollout step
                log.exception("a rollout listener failed")
        return outcome

    def _resolve(self, ref: Ref) -> str:
        rid = _named(ref).rollout_id
        if rid:
            return rid
        found = self.store.latest_for(ref.namespace, ref.canary or "")
        if found is None:
            self._unknown(ref)
        return found

    def _unknown(self, ref: Ref) -> NoReturn:
        """Refuse a name nothing is recorded under, with what the cluster and the close
        names say."""
        if ref.rollout_id or not ref.canary:
            raise NotFound(f"rollout {ref.describe()} not found")
        self._refuse_orphans(ref.namespace, ref.canary)
        raise NotFound(f"no rollout of {ref.canary} in namespace {ref.namespace}"
                       + self._rollouts_hint(ref.namespace, ref.canary))

    def _rollouts_hint(self, namespace: str, canary: str) -> str:
        """A mistyped name gets the close one and the names that do have rollouts."""
        return self._close_name(namespace, canary) or f"; start one with `start {canary}`"

    def _close_name(self, namespace: str, canary: str) -> str:
        """`; did you mean …?` with the names that do have rollouts, for a name close to one
        of them; '' when none is close."""
        names = sorted({r.canary for r in self.list_rollouts(recent=50)
                        if r.target.namespace == namespace})
        close = difflib.get_close_matches(canary, names, n=1, cutoff=0.6)
        if close:
            return f"; did you mean {close[0]}? (rollouts in {namespace}: {', '.join(names)})"
        return ""

    def orphans(self, namespace: str, canary: str) -> list[Marked]:
        """Rules the cluster says an active rollout owns, of which the store knows nothing."""
        return [
            m for m in self.traffic.find_marked(namespace=namespace, canary=canary)
            if m.marker.state is MarkerState.ACTIVE and self.store.get(m.marker.rollout_id) is None
        ]

    def _refuse_orphans(self, namespace: str, canary: str) -> None:
        found = self.orphans(namespace, canary)
        if found:
            raise NeedsOperator(_orphan_message(found[0], canary))

    def _refuse_orphaned_target(self, target: Target, observed: Observed) -> None:
        """A rule marked by an active rollout the store does not know (Redis was emptied)
        belongs to that rollout, whatever canary a new start names: starting on it would
        overwrite the only record of the weights from before that rollout."""
        marker = observed.marker
        if marker is None or marker.state is not MarkerState.ACTIVE:
            return
        if self.store.get(marker.rollout_id) is not None:
            return
        raise NeedsOperator(
            f"{target.describe()} is marked as owned by rollout {marker.rollout_id} at step "
            f"{marker.step + 1}, which the store does not know (was Redis emptied?). A new "
            "rollout on it is refused until an operator decides: `rollout-bot recover POOL` "
            "with the pool (or adapter) that rollout was moving traffic to rebuilds it "
            "(paused), or `rollout-bot release POOL` drops the marker")

    # -- after Redis was lost ------------------------------------------------------------

    def recover(self, *, namespace: str, canary: str, actor: Actor,
                without_analysis: bool = False) -> Outcome:
        """Rebuild a rollout from the record the bot left on the route; it comes back paused.
        `without_analysis`: the operator accepts that a canary analysis the record names and
        this bot cannot run is dropped."""
        found = self.orphans(namespace, canary)
        if not found:
            raise NotFound(f"no rule referencing {canary} in {namespace} carries an active "
                           "rollout the store does not know; nothing to recover")
        marked = found[0]
        record = marked.record
        if record is None:
            raise NeedsOperator(
                f"{marked.target.describe()} names rollout {marked.marker.rollout_id} but its "
                f"record annotation is missing or unreadable; use `release {canary}` and "
                "restore the weights by hand"
            )
        analysis = self._recorded_analysis(record.analysis, marked.target.kind,
                                           without=without_analysis)

        def decide(_: Rollout | None, now: datetime) -> Decision:
            observed = self.traffic.observe_target(marked.target, stable=record.stable,
                                                   canary=canary)
            return machine.recover(
                rollout_id=marked.marker.rollout_id, target=marked.target,
                stable=record.stable, canary=canary, plan=record.plan,
                baseline=record.baseline, requester=record.requester,
                created_at=record.created_at, step=marked.marker.step, observed=observed,
                actor=actor, now=now,
                analysis=analysis,
                keep_seconds=(record.keep_seconds if record.keep_seconds is not None
                              else self.options.keep_seconds),
            )

        return self._run(marked.target.object_key, actor, decide)

    def release(self, *, namespace: str, canary: str, actor: Actor) -> Outcome:
        """Forget a rollout the store lost: drop its marker, leave the weights as they are."""
        found = self.orphans(namespace, canary)
        if not found:
            raise NotFound(f"no orphaned rollout marker for {canary} in {namespace}")
        marked = found[0]
        hold = _Hold(self.store, self.store.open(key=marked.target.object_key,
                                                 person=_person(actor)),
                     keeper=self.options.lock_keeper)
        try:
            self.store.confirm(hold.lease)
            try:
                self.traffic.clear_marker(marked.target, fence=hold.lease.token)
            except FenceBehind as behind:
                self.traffic.clear_marker(marked.target, fence=hold.regrant(behind))
        finally:
            hold.close()
        detail = (f"dropped the marker of rollout {marked.marker.rollout_id} at step "
                  f"{marked.marker.step + 1}; weights left as they are")
        self.store.record(AuditEvent(at=self.clock.now(), rollout_id=marked.marker.rollout_id,
                                     target=marked.target.key, action=AuditAction.RELEASED,
                                     actor=actor,
                                     detail=detail))
        return Outcome(None, f"Released {marked.target.describe()}: {detail}.")


def _person(actor: Actor) -> bool:
    """Whether the scheduler's ticks make way for this actor's command: a person's."""
    return actor.via is not Via.SCHEDULER


def _named(ref: Ref) -> Ref:
    """A ref that names something: a rollout id, or a canary pool."""
    if not ref.rollout_id and not ref.canary:
        raise NotFound("name the pool (or adapter) of the rollout")
    return ref


def _takes_back(r: Rollout) -> bool:
    """A rollback of `r` would send traffic back to its stable pool: a pool rollout that
    recorded the stable pool's Ready endpoints at start and has moved traffic since (an
    adapter rollout's two adapters share one pool)."""
    return r.stable_ready is not None and r.target.kind is TargetKind.ROUTE and r.step >= 0


def _recorded(r: Rollout | None) -> Rollout:
    """A command on a recorded rollout is always handed the rollout `_run` reloaded."""
    assert r is not None
    return r


def _gone(r: Rollout, exc: NotFound) -> str:
    """Why a rollout's target cannot be read: it was deleted (or its kind is no longer
    served), which pauses the rollout rather than answering "not found" as to a typo."""
    return (f"{r.target.describe()} is gone from the cluster ({exc}): recreate it and resume, "
            "or roll back (the rollout then ends, with nothing left to restore)")


def _joined(prior: tuple[AuditEvent, ...], d: Decision) -> Decision:
    """The command's decision with what reconcile found before it, to be saved as one."""
    return replace(d, events=prior + d.events) if prior else d


def _clicked(ref: Ref, click: Click | None) -> Ref:
    """A click names its rollout by id: an old card never acts on a newer rollout."""
    return Ref(rollout_id=click.rollout_id) if click is not None else ref


def _orphan_message(marked: Marked, canary: str) -> str:
    m = marked.marker
    return (
        f"{marked.target.describe()} is marked as owned by rollout {m.rollout_id} at step "
        f"{m.step + 1}, which the store does not know (was Redis emptied?). New steps on it "
        f"are refused until an operator decides: `rollout-bot recover {canary}` rebuilds the "
        f"rollout from the route (paused), or `rollout-bot release {canary}` drops the marker "
        "and leaves the weights as they are"
    )


def _default_id(canary: str, now: datetime) -> str:
    return f"{canary}-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def _summary(r: Rollout) -> str:
    phase = r.phase.value.replace("_", " ")
    return f"{r.canary}: {phase} at {r.canary_percent}% (step {r.step + 1}/{len(r.plan.steps)})"
