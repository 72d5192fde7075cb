"""In-memory fakes of the service's ports, faithful where the service depends on them: locks
with growing fencing tokens that a rollback preempts, compare-and-set saves, and a traffic
target whose writes are fenced and whose weights a test may move behind the bot's back."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from rollout.adapters.kube.writes import marker_for
from rollout.adapters.store import one_active_per_pool
from rollout.domain.analysis import QueryResult, ResultKind
from rollout.domain.clock import ManualClock
from rollout.domain.errors import (
    Busy,
    Conflict,
    DriftDetected,
    FenceBehind,
    Refused,
    RolloutError,
    StaleView,
    StoreUnavailable,
    Superseded,
)
from rollout.domain.facts import ClusterFacts
from rollout.domain.freeze import Freeze
from rollout.domain.machine import Effect, Prepare, Restore, Retire
from rollout.domain.models import (
    AuditEvent,
    Baseline,
    Card,
    RecoveryRecord,
    Rollout,
    Target,
    TargetKind,
)
from rollout.domain.split import Marker, MarkerState, Observed, Pair, baseline_pair, expected_pair
from rollout.ports import Changes, Lease, Located, Marked, Memo, Opening, Saving
from rollout.service import Gates, RolloutService


class FakeStore:
    """The RolloutStore port in a few dicts (cosmicpython's FakeRepository, with locks)."""

    def __init__(self, freezes: FakeFreezes | None = None) -> None:
        self.freezes = freezes or FakeFreezes()  # what `open` reads, as Redis keeps both
        self.opens = 0  # how many commands opened (a first round trip each)
        self.rollouts: dict[str, Rollout] = {}
        self.events: list[AuditEvent] = []
        self.saves: list[tuple[str, int]] = []  # (rollout id, version) of every write
        self.locks: dict[str, int] = {}
        self.fences: dict[str, int] = {}
        self.memos: dict[str, str] = {}
        self.fail_saves: Exception | None = None  # raised by every save while set
        self.in_flight: set[str] = set()
        self.due: dict[str, datetime] = {}
        #: the keep index: completed rollouts whose keep-period reminder is still to come
        self.kept: dict[str, datetime] = {}
        self.changes: dict[str, int] = {}  # rollout id -> number of its last write
        #: (namespace, canary) -> the rollout created last, as Redis's pool pointer
        self.pool_latest: dict[tuple[str, str], str] = {}

        self.ttls: dict[str, int] = {}
        self.expiry_passes: list[datetime] = []
        self.release_fails = False  # Redis gone when a command closes (its last round trip)
        #: the names people's commands said they went to work, and were done, under
        self.people_began: list[str] = []
        self.people_ended: list[str] = []

    def open(
        self, *, key: str | None = None, rollout_id: str | None = None,
        latest: tuple[str, str] | None = None, preempt: bool = False, memo: str | None = None,
        person: bool = False,
    ) -> Opening:
        self.opens += 1
        if memo is not None and memo in self.memos:
            return Opening(lease=None, answer=self.memos[memo])
        if key is None:
            rid = rollout_id if rollout_id is not None else (
                self.latest_for(*latest) if latest is not None else None)
            found = self.rollouts.get(rid) if rid is not None else None
            if found is None:
                return Opening(lease=None)
            key = found.target.object_key
        else:
            found = self.rollouts.get(rollout_id) if rollout_id is not None else None
        lease = self.acquire(key, preempt=preempt)
        if person:
            lease = replace(lease, person=f"{key}:{lease.token}")
            self.people_began.append(lease.person)
        return Opening(lease=lease, rollout=found,
                       in_flight=found is not None and found.id in self.in_flight,
                       freeze=self.freezes.current)

    def close(self, lease: Lease, *, saving: Saving | None = None,
              memo: Memo | None = None) -> None:
        if self.release_fails:
            raise StoreUnavailable("Redis did not answer")
        if lease.person:  # said in the same round trip as the release
            self.people_ended.append(lease.person)
        try:
            if saving is not None:
                self._save(saving, lease)
            if memo is not None:
                self.ttls.setdefault(memo.key, memo.ttl_seconds)
                self.memos.setdefault(memo.key, memo.answer)
        finally:  # given back whatever the write's answer (Redis gone: it lapses; here at once)
            self.release(lease)

    def acquire(self, key: str, *, preempt: bool = False) -> Lease:
        if key in self.locks and not preempt:
            raise Busy(f"another operation on {key} is still running", retry_after=0)
        token = self.fences.get(key, 0) + 1
        self.fences[key] = self.locks[key] = token
        return Lease(key=key, token=token)

    def confirm(self, lease: Lease) -> Freeze | None:
        if self.locks.get(lease.key) != lease.token:
            raise Superseded(f"a rollback took over {lease.key} while this ran")
        return self.freezes.current

    def regrant(self, lease: Lease, *, floor: int) -> Lease:
        self.confirm(lease)
        token = max(self.fences[lease.key], floor) + 1
        self.fences[lease.key] = self.locks[lease.key] = token
        return replace(lease, token=token)

    def release(self, lease: Lease) -> None:
        if self.locks.get(lease.key) == lease.token:
            del self.locks[lease.key]

    def create(self, rollout: Rollout, *, lease: Lease, events: tuple[AuditEvent, ...]) -> Rollout:
        """As Redis's create script: one active rollout per target and per pool."""
        owner = self.active_on(rollout.target.key)
        if owner is not None:
            raise Conflict(f"{rollout.target.describe()} already has an active rollout ({owner})")
        latest = self.latest_for(rollout.target.namespace, rollout.canary)
        if latest is not None and self.rollouts[latest].active:
            raise Conflict(one_active_per_pool(rollout, latest))
        if rollout.id in self.rollouts:
            raise Conflict(f"rollout id {rollout.id} is already taken")
        return self._write(rollout, 0, lease, events)

    def _save(self, saving: Saving, lease: Lease) -> Rollout:
        rollout, expected_version = saving.rollout, saving.expected_version
        if self.fail_saves is not None:
            raise self.fail_saves
        if expected_version == 0:
            return self.create(rollout, lease=lease, events=saving.events)
        if self.rollouts[rollout.id].version != expected_version:
            raise Superseded(f"rollout {rollout.id} changed while this operation ran")
        return self._write(rollout, expected_version, lease, saving.events)

    def _write(self, rollout: Rollout, version: int, lease: Lease,
               events: tuple[AuditEvent, ...]) -> Rollout:
        self.confirm(lease)
        if version == 0:
            self.pool_latest[(rollout.target.namespace, rollout.canary)] = rollout.id
        saved = rollout.model_copy(update={"version": version + 1})
        # stored as JSON, as Redis stores it: what does not round-trip fails here too
        saved = Rollout.model_validate_json(saved.model_dump_json())
        self.rollouts[saved.id] = saved
        self.in_flight.discard(saved.id)
        self.events.extend(events)
        self.saves.append((saved.id, saved.version))
        if saved.active and saved.next_due_at:
            self.due[saved.id] = saved.next_due_at
        else:
            self.due.pop(saved.id, None)
        if saved.keep_reminder_at is not None:
            self.kept[saved.id] = saved.keep_reminder_at
        else:
            self.kept.pop(saved.id, None)
        self.changes[saved.id] = len(self.saves)
        return saved

    def get(self, rollout_id: str) -> Rollout | None:
        return self.rollouts.get(rollout_id)

    def set_card(self, rollout_id: str, card: Card, *, replacing: Card | None = None) -> Card:
        """As the script: over the card it replaces only, else the card held stays."""
        held = self.rollouts[rollout_id].card
        if held is not None and held != replacing:
            return held
        self.rollouts[rollout_id] = self.rollouts[rollout_id].model_copy(update={"card": card})
        return card

    def active_on(self, target_key: str) -> str | None:
        return next((r.id for r in self.rollouts.values()
                     if r.active and r.target.key == target_key), None)

    def latest_for(self, namespace: str, canary: str) -> str | None:
        """The rollout created last, as Redis points at it; for rollouts a test put in the
        dict itself, the one started last."""
        if (namespace, canary) in self.pool_latest:
            return self.pool_latest[(namespace, canary)]
        found = [r for r in self.rollouts.values()
                 if r.target.namespace == namespace and r.canary == canary]
        return max(found, key=lambda r: r.created_at).id if found else None

    def latest(self, namespace: str, canary: str) -> Rollout | None:
        found = self.latest_for(namespace, canary)
        return self.rollouts.get(found) if found is not None else None

    def active_ids(self) -> list[str]:
        return [r.id for r in self.rollouts.values() if r.active]

    def due_until(self, until: datetime) -> dict[str, datetime]:
        return {rid: at for rid, at in self.due.items() if at <= until}

    def index_due(self, due: dict[str, tuple[datetime, int]]) -> None:
        """As the script: only a rollout still active, at the version it was read at."""
        for rid, (at, version) in due.items():
            r = self.rollouts.get(rid)
            if r is not None and r.active and r.version == version:
                self.due.setdefault(rid, at)

    def kept_until(self, until: datetime) -> list[str]:
        return [rid for rid, at in self.kept.items() if at <= until]

    def index_kept(self, ends: dict[str, datetime]) -> None:
        for rid, at in ends.items():
            self.kept.setdefault(rid, at)

    def unindex_kept(self, rollout_ids: list[str]) -> None:
        for rid in rollout_ids:
            self.kept.pop(rid, None)

    def expire_finished(self, now: datetime) -> int:
        """The fake keeps no times to live (nor a retention): it records when it was asked."""
        self.expiry_passes.append(now)
        return 0

    def snapshot(self) -> dict[str, Any]:
        """What Redis holds now, as a replica or a snapshot would (`restore`)."""
        return copy.deepcopy({"rollouts": self.rollouts, "saves": self.saves, "due": self.due,
                              "kept": self.kept, "changes": self.changes})

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Back to `snapshot`: the writes since are lost, as in an asynchronous failover to
        a replica that had not received them (the leader lease, older, survives)."""
        for name, value in copy.deepcopy(snapshot).items():
            setattr(self, name, value)

    def changes_since(self, seen: int) -> Changes:
        seq = len(self.saves)
        return Changes(seq=seq, ids=[r for r, n in self.changes.items() if n > seen],
                       complete=seq >= seen)

    def mark_in_flight(self, rollout_id: str) -> None:
        self.in_flight.add(rollout_id)

    def clear_in_flight(self, rollout_id: str) -> None:
        self.in_flight.discard(rollout_id)

    def in_flight_ids(self) -> list[str]:
        return sorted(self.in_flight)

    def recent_ids(self, limit: int = 20) -> list[str]:
        return list(self.rollouts)[-limit:]

    def audit(self, rollout_id: str, *, limit: int = 200) -> list[AuditEvent]:
        return [e for e in self.events if e.rollout_id == rollout_id][-limit:]

    def record(self, event: AuditEvent) -> None:
        self.events.append(event)

    def ping(self) -> None:
        return None


@dataclass
class FakeTarget:
    """One rule's managed pair as the cluster holds it, with the bot's marker and fence."""

    target: Target
    stable: str
    canary: str
    baseline: Baseline
    pair: Pair
    marker: Marker | None = None
    retired: bool = False  # the stable entry was removed from the rule
    fence: int = 0
    writes: list[Pair] = field(default_factory=list)
    reads: int = 0
    fail_next: Exception | None = None  # raised by the next write instead of writing
    lose_answer: Exception | None = None  # raised by the next write after it landed
    unreadable: Exception | None = None  # raised by every read while set
    then_unreadable: Exception | None = None  # becomes `unreadable` at the next write
    problem: str = ""  # what the gateway reports about the route
    objects_to_writes: str = ""  # the problem the gateway reports once the bot has written
    record: RecoveryRecord | None = None  # what the rule carries for recovery
    edit_before_write: Pair | None = None  # a person's edit between the read and the write
    on_write: Callable[[], object] | None = None  # called once the next write has landed
    # the namespace cache's copy while set (`recall` shows it, with no read); a write sent
    # on it while the target differs is refused as the real one is, with StaleView
    copy: Observed | None = None
    copy_unreadable: Exception | None = None  # raised by `recall` while set (a copy that trips)


class FakeTraffic:
    """The Traffic port over in-memory targets: fenced writes, a drift guard, markers."""

    def __init__(self, *targets: FakeTarget) -> None:
        self.targets = {t.target.key: t for t in targets}
        self.located: list[tuple[TargetKind, str | None, str | None]] = []

    def locate_kind(
        self, kind: TargetKind, *, namespace: str, canary: str, target_name: str | None,
        stable: str | None,
    ) -> Located:
        self.located.append((kind, target_name, stable))
        t = next((t for t in self.targets.values()
                  if t.target.kind is kind and t.target.namespace == namespace
                  and t.canary == canary and target_name in (None, t.target.name)
                  and stable in (None, t.stable)), None)
        if t is None:  # as the adapters answer a miss: the operator is told, nothing changes
            raise Refused(f"no {kind.value} in namespace {namespace} references {canary}"
                          + (f" as {target_name}" if target_name else "")
                          + (f" beside {stable}" if stable else ""))
        return Located(target=t.target, stable=t.stable, canary=canary, baseline=t.baseline,
                       observed=self._observed(t))

    def locate(self, *, namespace: str, canary: str, target_name: str | None,
               stable: str | None) -> Located:
        return self.locate_kind(TargetKind.ROUTE, namespace=namespace, canary=canary,
                                target_name=target_name, stable=stable)

    def observe(self, rollout: Rollout) -> Observed:
        return self._observed(self.targets[rollout.target.key])

    glance = observe

    def recall(self, rollout: Rollout) -> Observed | None:
        t = self.targets[rollout.target.key]
        if t.copy_unreadable is not None:
            raise t.copy_unreadable
        return t.copy

    def observe_target(self, target: Target, *, stable: str, canary: str) -> Observed:
        return self._observed(self.targets[target.key])

    def apply(
        self, rollout: Rollout, effect: Effect, *, fence: int,
        before: tuple[Pair, ...] | None = None, recalled: bool = False,
    ) -> Observed:
        t = self.targets[rollout.target.key]
        if recalled and t.copy is not None and \
                (t.copy.pair, t.copy.marker) != (t.pair, t.marker):
            raise StaleView(f"{t.target.describe()} moved since the cache's copy")
        if t.then_unreadable is not None:
            t.unreadable, t.then_unreadable = t.then_unreadable, None
        if t.edit_before_write is not None:
            t.pair, t.edit_before_write = t.edit_before_write, None
        if t.fail_next is not None:
            failure, t.fail_next = t.fail_next, None
            raise failure
        if t.fence > fence:
            raise FenceBehind(f"{t.target.describe()} carries a newer fencing token", seen=t.fence)
        if before is not None and t.pair not in before:
            raise DriftDetected(f"weights changed outside the bot: {t.pair.describe()}")
        t.fence = fence
        replaced = t.marker
        _land(t, rollout, effect)
        t.writes.append(t.pair)
        t.problem = t.objects_to_writes or t.problem
        if t.on_write is not None:
            hook, t.on_write = t.on_write, None
            hook()
        if t.lose_answer is not None:
            lost, t.lose_answer = t.lose_answer, None
            raise lost
        return Observed(pair=t.pair, marker=t.marker, problem=t.problem,  # the PATCH's answer
                        replaced=replaced)

    def lookups(self) -> AbstractContextManager[None]:
        return nullcontext()

    def find_marked(self, *, namespace: str, canary: str) -> list[Marked]:
        return [Marked(target=t.target, marker=t.marker, record=t.record)
                for t in self.targets.values()
                if t.marker is not None and t.canary == canary
                and t.target.namespace == namespace]

    def clear_marker(self, target: Target, *, fence: int) -> None:
        t = self.targets[target.key]
        if t.fence > fence:
            raise FenceBehind(f"{t.target.describe()} carries a newer fencing token", seen=t.fence)
        t.fence, t.marker, t.record = fence, None, None

    def _observed(self, t: FakeTarget) -> Observed:
        if t.unreadable is not None:
            raise t.unreadable
        t.reads += 1
        return Observed(pair=t.pair, marker=t.marker, problem=t.problem)


class FakeFacts:
    """The ClusterFactsReader port: the namespace as a test sets it, with a read count;
    `unreadable` fails every read with that error, as a cluster that does not answer."""

    def __init__(self, facts: ClusterFacts) -> None:
        self.facts = facts
        self.reads: list[tuple[str, str | None]] = []
        self.unreadable: RolloutError | None = None

    def read(self, namespace: str, *, route: str | None = None,
             rewrite: str | None = None) -> ClusterFacts:
        self.reads.append((namespace, route))
        if self.unreadable is not None:
            raise self.unreadable
        return self.facts


class FakeFreezes:
    """The FreezeRecord port: at most one freeze, refused twice as the Redis store does."""

    def __init__(self) -> None:
        self.current: Freeze | None = None

    def get(self) -> Freeze | None:
        return self.current

    def put(self, freeze: Freeze) -> Freeze:
        if self.current is not None:
            raise Conflict(f"rollouts are already {self.current.describe()}")
        self.current = freeze
        return freeze

    def lift(self) -> Freeze:
        if self.current is None:
            raise Conflict("rollouts are not frozen")
        lifted, self.current = self.current, None
        return lifted


class FakeAnalysis:
    """The Analysis port over a table: `values[(metric, job)]`, the metric being the query's
    first name and the job its `job="..."` selector (as the analysis builders write them).
    `down` makes every query unavailable, as an unreachable Prometheus; a metric in
    `refused` makes its queries refused, as PromQL Prometheus cannot parse."""

    def __init__(self, values: dict[tuple[str, str], float] | None = None) -> None:
        self.values = dict(values or {})
        self.down = False
        self.refused: set[str] = set()
        self.asked: list[str] = []
        self.instants: list[datetime] = []

    def query(self, promql: str, at: datetime) -> QueryResult:
        self.asked.append(promql)
        self.instants.append(at)
        if self.down:
            return QueryResult(kind=ResultKind.UNAVAILABLE, reason="Prometheus is unreachable")
        found = re.search(r"([a-z_:]+)\{[^}]*job=\"([^\"]+)\"", promql)
        if found is not None and found.group(1) in self.refused:
            return QueryResult(kind=ResultKind.ERROR, reason="bad_data: parse error")
        if found is None or (found.group(1), found.group(2)) not in self.values:
            return QueryResult(kind=ResultKind.NO_DATA, reason="no series matched")
        return QueryResult.of(self.values[(found.group(1), found.group(2))])


def one_route_world(canary: str = "llm-pool-version-2",
                    ) -> tuple[RolloutService, FakeStore, FakeTarget, ManualClock]:
    """The service over the fakes: one route at 100/0 to `canary`, open gates, a manual
    clock, every rollout id "r1"."""
    from tests.unit.builders import BASELINE, T0, TARGET
    from tests.unit.facts_builders import world

    store = FakeStore()
    target = FakeTarget(target=TARGET, stable="llm-pool", canary=canary, baseline=BASELINE,
                        pair=Pair(stable=100, canary=0))
    clock = ManualClock(T0)
    gates = Gates(facts=FakeFacts(world()), freezes=store.freezes)
    service = RolloutService(store=store, traffic=FakeTraffic(target), clock=clock, gates=gates,
                             new_id=lambda canary, now: "r1")
    return service, store, target, clock


def open_gates() -> Gates:
    """Gates that let everything through: the seeded namespace, no freeze."""
    from tests.unit.facts_builders import world

    return Gates(facts=FakeFacts(world()), freezes=FakeFreezes())


def _land(t: FakeTarget, rollout: Rollout, effect: Effect) -> None:
    """What an effect leaves on the fake target: the weights and the bot's marker."""
    if isinstance(effect, Restore):
        t.pair = baseline_pair(rollout.baseline)
        t.marker = Marker(rollout_id=rollout.id, step=rollout.step,
                          state=MarkerState.ROLLED_BACK)
    elif isinstance(effect, Prepare):
        t.pair = expected_pair(rollout, -1)
        t.marker = Marker(rollout_id=rollout.id, step=-1)
        t.record = RecoveryRecord.of(rollout)
    elif isinstance(effect, Retire):  # the stable entry leaves the rule: it reads as 0
        t.pair = Pair(stable=0, canary=expected_pair(rollout).canary)
        t.marker = Marker(rollout_id=rollout.id, step=rollout.step,
                          state=MarkerState.RETIRED)
        t.retired = True
    else:
        t.pair = expected_pair(rollout, effect.step)
        t.marker = marker_for(rollout, effect)
