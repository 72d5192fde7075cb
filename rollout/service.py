"""RolloutService: the one writer of rollout state and the one caller of traffic writes.

Every command takes the target's lock (a fencing token), reloads the state, reconciles it
with the cluster, asks the state machine for a decision, applies its effect under the fence,
and saves with compare-and-set. Handlers, the CLI and the scheduler all come through here.
"""

from __future__ import annotations

import difflib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from rollout.domain import machine
from rollout.domain.clock import Clock
from rollout.domain.errors import (
    ClusterUnavailable,
    Conflict,
    DriftDetected,
    FenceBehind,
    InvalidInput,
    NeedsOperator,
    NotFound,
    Refused,
    StoreUnavailable,
)
from rollout.domain.machine import Decision, Effect, Restore
from rollout.domain.models import (
    Actor,
    AuditAction,
    AuditEvent,
    Card,
    Click,
    PauseKind,
    Plan,
    Rollout,
    TargetKind,
)
from rollout.domain.split import MarkerState, Observed, Pair, acceptable_pairs
from rollout.ports import Marked, RolloutStore, Traffic

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


@dataclass(frozen=True)
class Ref:
    """How a command names a rollout: by canary pool (the latest rollout of it) or by id."""

    namespace: str = "default"
    canary: str | None = None
    rollout_id: str | None = None

    def describe(self) -> str:
        return self.rollout_id or f"{self.namespace}/{self.canary}"


Listener = Callable[[Outcome], None]
#: the machine's decision for a command: pure, given the reloaded rollout (None before a start)
Decide = Callable[[Rollout | None, datetime], Decision]


class _Hold:
    """The target lock for one operation; cluster writes go through `write` with its token."""

    def __init__(self, store: RolloutStore, key: str, *, preempt: bool = False) -> None:
        self.store = store
        self.lease = store.acquire(key, preempt=preempt)

    def regrant(self, behind: FenceBehind) -> int:
        """The object carries a higher token while our lock is intact: Redis forgot its
        counter. Take a fresh token above it (or learn that the lock is lost)."""
        self.lease = self.store.regrant(self.lease, floor=behind.seen)
        log.warning("fence counter of %s was behind the cluster (%d); raised it",
                    self.lease.key, behind.seen)
        return self.lease.token

    def release(self) -> None:
        """If Redis is gone the lock expires on its own, and the error that matters is the
        one already on its way to the caller."""
        try:
            self.store.release(self.lease)
        except StoreUnavailable:
            log.warning("could not release the lock on %s; it expires by itself",
                        self.lease.key)


@dataclass
class ServiceOptions:
    self_approval: bool = False
    reminder_seconds: int | None = None
    approval_timeout_seconds: int | None = None
    idempotency_ttl_seconds: int = 24 * 3600
    listeners: list[Listener] = field(default_factory=list)


class RolloutService:
    def __init__(
        self, *, store: RolloutStore, traffic: Traffic, clock: Clock,
        options: ServiceOptions | None = None,
        new_id: Callable[[str, datetime], str] | None = None,
    ) -> None:
        self.store = store
        self.traffic = traffic
        self.clock = clock
        self.options = options or ServiceOptions()
        self._new_id = new_id or _default_id

    # -- commands ------------------------------------------------------------------------

    def start(
        self, *, namespace: str, canary: str, plan: Plan, actor: Actor, route: str | None = None,
        stable: str | None = None, rewrite: str | None = None,
    ) -> Outcome:
        """Start a rollout of `canary`: a pool (HTTPRoute weights), or with `rewrite` an adapter
        (the named InferenceModelRewrite's target weights)."""
        if rewrite is not None and route is not None:
            raise InvalidInput("give --route (a pool rollout) or --rewrite (an adapter "
                               "rollout), not both")
        self._refuse_orphans(namespace, canary)
        kind = TargetKind.ROUTE if rewrite is None else TargetKind.REWRITE
        located = self.traffic.locate_kind(kind, namespace=namespace, canary=canary,
                                           target_name=rewrite or route, stable=stable)
        target = located.target
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
        plan = plan.model_copy(update={
            "reminder_seconds": plan.reminder_seconds or self.options.reminder_seconds,
            "approval_timeout_seconds": plan.approval_timeout_seconds
            or self.options.approval_timeout_seconds,
        })
        new_id = self._new_id(canary, self.clock.now())

        def decide(_: Rollout | None, now: datetime) -> Decision:
            return machine.start(
                rollout_id=new_id, target=target, stable=located.stable, canary=canary,
                plan=plan, baseline=located.baseline, actor=actor, now=now,
            )

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
        return self._run(
            _clicked(ref, click), actor, lambda r, now: machine.approve_plan(
                _recorded(r), actor=actor, now=now, click=click, self_approval=allow_self),
            request_id=request_id,
        )

    def pause(self, ref: Ref, *, actor: Actor, reason: str = "", click: Click | None = None,
              request_id: str | None = None) -> Outcome:
        return self._run(
            _clicked(ref, click), actor,
            lambda r, now: machine.pause(_recorded(r), actor=actor, now=now, reason=reason),
            request_id=request_id,
        )

    def resume(self, ref: Ref, *, actor: Actor, click: Click | None = None,
               request_id: str | None = None) -> Outcome:
        return self._run(
            _clicked(ref, click), actor,
            lambda r, now: machine.resume(_recorded(r), actor=actor, now=now, click=click),
            request_id=request_id)

    def rollback(self, ref: Ref, *, actor: Actor, reason: str = "", click: Click | None = None,
                 request_id: str | None = None) -> Outcome:
        """Preempts any operation in flight: rollback wins (DESIGN invariant 3). A finished
        rollout whose rule another rollout has taken since is refused, whatever card or
        command asked (DESIGN §6)."""
        def decide(loaded: Rollout | None, now: datetime) -> Decision:
            r = _recorded(loaded)
            return machine.rollback(r, actor=actor, now=now, reason=reason,
                                    owner=self._owner_of(r))

        return self._run(_clicked(ref, click), actor, decide, preempt=True,
                         request_id=request_id)

    def promote(self, ref: Ref, *, actor: Actor, request_id: str | None = None) -> Outcome:
        allow_self = self.options.self_approval
        return self._run(
            ref, actor,
            lambda r, now: machine.promote(
                _recorded(r), actor=actor, now=now, self_approval=allow_self),
            request_id=request_id)

    def tick(self, rollout_id: str) -> Outcome:
        """The scheduler's entry: whatever time alone does to this rollout now."""
        return self._run(Ref(rollout_id=rollout_id), Actor.scheduler(),
                         lambda r, now: machine.tick(_recorded(r), now=now))

    def watch(self, rollout: Rollout) -> Outcome | None:
        """The scheduler's sweep: a cheap read of the cluster for an active rollout; only
        when it disagrees with the state (drift, a gateway problem, a write that landed
        before a crash) does it take the lock and reconcile, so drift pauses within one
        sweep (DESIGN invariant 6)."""
        if not rollout.active:
            return None
        try:
            observed = self.traffic.observe(rollout)
        except NeedsOperator:
            pass  # the locked path below pauses with the reason
        else:
            found = machine.reconcile(rollout, observed, now=self.clock.now())
            if found is None or not found.changed:
                return None
        return self._run(Ref(rollout_id=rollout.id), Actor.scheduler(),
                         lambda r, now: Decision(rollout=_recorded(r), message="",
                                                 changed=False))

    def attach_card(self, rollout_id: str, card: Card) -> Rollout:
        """Remember where the rollout's chat card lives, so every replica edits that one.
        The version does not change: the buttons already drawn stay current."""
        self.store.set_card(rollout_id, card)
        return self.get(Ref(rollout_id=rollout_id))

    # -- queries -------------------------------------------------------------------------

    def get(self, ref: Ref) -> Rollout:
        rollout_id = self._resolve(ref)
        rollout = self.store.get(rollout_id)
        if rollout is None:
            raise NotFound(f"rollout {rollout_id} not found")
        return rollout

    def status(self, ref: Ref) -> Status:
        try:
            rollout = self.get(ref)
        except NeedsOperator as exc:
            return Status(rollout=None, observed=None,
                          message=f"no rollout of {ref.describe()} is recorded",
                          cluster_note=str(exc))
        except NotFound:
            return Status(rollout=None, observed=None,
                          message=f"no rollout of {ref.describe()} is recorded")
        try:
            observed = self.traffic.observe(rollout)
        except (ClusterUnavailable, NeedsOperator, NotFound) as exc:
            return Status(rollout, None, _summary(rollout), cluster_note=str(exc))
        note = ""
        if rollout.active and observed.pair not in acceptable_pairs(rollout):
            note = f"the cluster shows {observed.pair.describe()} (drift)"
        return Status(rollout, observed, _summary(rollout), cluster_note=note)

    def list_rollouts(self, *, recent: int = 10) -> list[Rollout]:
        """The active rollouts, then the most recent finished ones."""
        ids = self.store.active_ids()
        seen = ids + [i for i in self.store.recent_ids(recent) if i not in ids]
        rollouts = [self.store.get(i) for i in seen]
        return [r for r in rollouts if r is not None]

    def active(self) -> list[Rollout]:
        rollouts = [self.store.get(i) for i in self.store.active_ids()]
        return [r for r in rollouts if r is not None and r.active]

    def history(self, ref: Ref, *, limit: int = 200) -> list[AuditEvent]:
        return self.store.audit(self._resolve(ref), limit=limit)

    def record_denial(self, *, actor: Actor, action: str, ref: Ref | None, reason: str) -> None:
        """Audit a refusal (a denial, bad input) that changed nothing."""
        rollout_id, target = "", ""
        if ref is not None:
            try:
                r = self.get(ref)
                rollout_id, target = r.id, r.target.key
            except Refused:
                target = ref.describe()
        event = AuditEvent(at=self.clock.now(), rollout_id=rollout_id, target=target,
                           action=AuditAction.DENIED, refused=action, actor=actor,
                           detail=reason)
        self.store.record(event)

    # -- the one path of every change ----------------------------------------------------

    def _run(
        self, subject: Ref | str, actor: Actor, decide: Decide, *, preempt: bool = False,
        request_id: str | None = None,
    ) -> Outcome:
        """The one path of every change: lock, reload, reconcile, decide, apply the effect
        under the fence, save once, emit. `subject` names a recorded rollout (a Ref), or is
        the object key a rollout not recorded yet will take (start, recover): then nothing is
        loaded and its decision is the first version. A request id is looked up under the
        lock and remembered, with its answer, only once the command has run: a retry after a
        failure runs again; a duplicate of a success gets the first answer."""
        first = self.get(subject) if isinstance(subject, Ref) else None
        key = first.target.object_key if first is not None else str(subject)
        hold = _Hold(self.store, key, preempt=preempt)
        outcome: Outcome | None = None
        try:
            memo = f"request:{request_id}" if request_id is not None else None
            if memo is not None:
                answer = self.store.recall(memo)
                if answer is not None:
                    return Outcome(None, f"Already handled: {answer}", changed=False)
            current = self.store.get(first.id) if first is not None else None
            found = self._reconcile(current) if current is not None else None
            base = found.rollout if found is not None else current
            try:
                decision = decide(base, self.clock.now())
            except Refused:
                if found is not None:  # a drift pause found on the way is kept and shown
                    assert current is not None
                    outcome = self._save(current.version, found, hold)
                raise
            outcome = self._carry_out(current, found, decision, hold, actor)
            if memo is not None:
                self.store.remember(memo, outcome.message,
                                    ttl_seconds=self.options.idempotency_ttl_seconds)
        finally:
            hold.release()
            if outcome is not None:
                self._emit(outcome)
        return outcome

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

    def _reconcile(self, r: Rollout) -> Decision | None:
        """Adopt a write that landed before a crash; pause on drift. Never guess. The
        decision is saved with the command's, as one version."""
        if not r.active:
            return None
        now = self.clock.now()
        try:
            observed = self.traffic.observe(r)
        except NeedsOperator as exc:
            decision = machine.pause(r, actor=Actor.scheduler(), now=now, reason=str(exc),
                                     kind=PauseKind.DRIFT)
            return decision if decision.changed else None
        found = machine.reconcile(r, observed, now=now)
        return found if found is not None and found.changed else None

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
        before = None if isinstance(effect, Restore) else acceptable_pairs(base)
        try:
            observed = self._apply(hold, d.rollout, effect, before)
        except DriftDetected as exc:
            paused = machine.pause(base, actor=Actor.scheduler(), now=self.clock.now(),
                                   reason=str(exc), kind=PauseKind.DRIFT)
            saved = self._save(version, _joined(prior, paused), hold)
            return replace(saved, message=f"Not applied: {exc}. {paused.message}", ok=False)
        except (ClusterUnavailable, NeedsOperator) as exc:
            failed = machine.effect_failed(base, now=self.clock.now(), reason=str(exc),
                                           actor=actor)
            message = (f"Not applied: {exc}. The rollout is paused; resume or roll back once "
                       "the cause is fixed.")
            if failed.changed:
                saved = self._save(version, _joined(prior, failed), hold)
            elif found is not None:
                saved = self._save(version, found, hold)
            else:
                return Outcome(current, message, ok=False)
            return replace(saved, message=message, ok=False)
        gated = machine.gate(d.rollout, observed, now=self.clock.now())
        if gated is None:
            return self._save(version, _joined(prior, d), hold)
        # the step landed, and the gateway objects to it: saved paused, in the same version
        both = replace(gated, events=d.events + gated.events,
                       message=f"{d.message} {gated.message}")
        return replace(self._save(version, _joined(prior, both), hold), ok=False)

    def _claim(self, d: Decision, effect: Effect, hold: _Hold, actor: Actor) -> Outcome:
        """A start claims the target in the store before the cluster names it; a failed
        first write ends the rollout."""
        created = self._save(0, d, hold).rollout
        assert created is not None
        try:
            self._apply(hold, created, effect, None)
        except (ClusterUnavailable, NeedsOperator, DriftDetected) as exc:
            failed = machine.fail(created, now=self.clock.now(), reason=str(exc), actor=actor)
            return replace(self._save(created.version, failed, hold), ok=False)
        return Outcome(created, d.message, events=d.events)

    def _apply(self, hold: _Hold, r: Rollout, effect: Effect,
               before: tuple[Pair, ...] | None) -> Observed:
        """The effect under the fence, once more with a raised token if Redis was behind."""
        self.store.confirm(hold.lease)
        try:
            return self.traffic.apply(r, effect, fence=hold.lease.token, before=before)
        except FenceBehind as behind:
            fence = hold.regrant(behind)
            return self.traffic.apply(r, effect, fence=fence, before=before)

    def _save(self, version: int, d: Decision, hold: _Hold) -> Outcome:
        """The one save point: the first version of a rollout is created, later ones are
        compare-and-set on the version the command loaded."""
        if version == 0:
            saved = self.store.create(d.rollout, lease=hold.lease, events=d.events)
        else:
            saved = self.store.save(d.rollout, expected_version=version, lease=hold.lease,
                                    events=d.events)
        return Outcome(saved, d.message, events=d.events)

    def _emit(self, outcome: Outcome) -> Outcome:
        for listener in self.options.listeners:
            try:
                listener(outcome)
            except Exception:  # a chat outage must not undo or block a rollout step
                log.exception("a rollout listener failed")
        return outcome

    def _resolve(self, ref: Ref) -> str:
        if ref.rollout_id:
            return ref.rollout_id
        if not ref.canary:
            raise NotFound("name the pool (or adapter) of the rollout")
        found = self.store.latest_for(ref.namespace, ref.canary)
        if found is None:
            self._refuse_orphans(ref.namespace, ref.canary)
            raise NotFound(f"no rollout of {ref.canary} in namespace {ref.namespace}"
                           + self._rollouts_hint(ref.namespace, ref.canary))
        return found

    def _rollouts_hint(self, namespace: str, canary: str) -> str:
        """A mistyped name gets the close one and the names that do have rollouts."""
        names = sorted({r.canary for r in self.list_rollouts(recent=50)
                        if r.target.namespace == namespace})
        close = difflib.get_close_matches(canary, names, n=1, cutoff=0.6)
        if close:
            return f"; did you mean {close[0]}? (rollouts in {namespace}: {', '.join(names)})"
        return f"; start one with `start {canary}`"

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

    # -- after Redis was lost ------------------------------------------------------------

    def recover(self, *, namespace: str, canary: str, actor: Actor) -> Outcome:
        """Rebuild a rollout from the record the bot left on the route; it comes back paused."""
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
        def decide(_: Rollout | None, now: datetime) -> Decision:
            observed = self.traffic.observe_target(marked.target, stable=record.stable,
                                                   canary=canary)
            return machine.recover(
                rollout_id=marked.marker.rollout_id, target=marked.target,
                stable=record.stable, canary=canary, plan=record.plan,
                baseline=record.baseline, requester=record.requester,
                created_at=record.created_at, step=marked.marker.step, observed=observed,
                actor=actor, now=now,
            )

        return self._run(marked.target.object_key, actor, decide)

    def release(self, *, namespace: str, canary: str, actor: Actor) -> Outcome:
        """Forget a rollout the store lost: drop its marker, leave the weights as they are."""
        found = self.orphans(namespace, canary)
        if not found:
            raise NotFound(f"no orphaned rollout marker for {canary} in {namespace}")
        marked = found[0]
        hold = _Hold(self.store, marked.target.object_key)
        try:
            self.store.confirm(hold.lease)
            try:
                self.traffic.clear_marker(marked.target, fence=hold.lease.token)
            except FenceBehind as behind:
                self.traffic.clear_marker(marked.target, fence=hold.regrant(behind))
        finally:
            hold.release()
        detail = (f"dropped the marker of rollout {marked.marker.rollout_id} at step "
                  f"{marked.marker.step + 1}; weights left as they are")
        self.store.record(AuditEvent(at=self.clock.now(), rollout_id=marked.marker.rollout_id,
                                     target=marked.target.key, action=AuditAction.RELEASED,
                                     actor=actor,
                                     detail=detail))
        return Outcome(None, f"Released {marked.target.describe()}: {detail}.")


def _recorded(r: Rollout | None) -> Rollout:
    """A command on a recorded rollout is always handed the rollout `_run` reloaded."""
    assert r is not None
    return r


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
