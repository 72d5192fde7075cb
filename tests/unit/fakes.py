"""In-memory fakes of the service's ports, faithful where the service depends on them: locks
with growing fencing tokens that a rollback preempts, compare-and-set saves, and a traffic
target whose writes are fenced and whose weights a test may move behind the bot's back."""

from __future__ import annotations

from dataclasses import dataclass, field

from rollout.domain.errors import (
    Busy,
    Conflict,
    DriftDetected,
    FenceBehind,
    StoreUnavailable,
    Superseded,
)
from rollout.domain.machine import Effect, Prepare, Restore
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
from rollout.ports import Lease, Located, Marked


class FakeStore:
    """The RolloutStore port in a few dicts (cosmicpython's FakeRepository, with locks)."""

    def __init__(self) -> None:
        self.rollouts: dict[str, Rollout] = {}
        self.events: list[AuditEvent] = []
        self.saves: list[tuple[str, int]] = []  # (rollout id, version) of every write
        self.locks: dict[str, int] = {}
        self.fences: dict[str, int] = {}
        self.memos: dict[str, str] = {}
        self.ttls: dict[str, int] = {}
        self.release_fails = False  # Redis gone when the lock is given back

    def acquire(self, key: str, *, preempt: bool = False) -> Lease:
        if key in self.locks and not preempt:
            raise Busy(f"another operation on {key} is still running", retry_after=0)
        token = self.fences.get(key, 0) + 1
        self.fences[key] = self.locks[key] = token
        return Lease(key=key, token=token)

    def confirm(self, lease: Lease) -> None:
        if self.locks.get(lease.key) != lease.token:
            raise Superseded(f"a rollback took over {lease.key} while this ran")

    def regrant(self, lease: Lease, *, floor: int) -> Lease:
        self.confirm(lease)
        token = max(self.fences[lease.key], floor) + 1
        self.fences[lease.key] = self.locks[lease.key] = token
        return Lease(key=lease.key, token=token)

    def release(self, lease: Lease) -> None:
        if self.release_fails:
            raise StoreUnavailable("Redis did not answer")
        if self.locks.get(lease.key) == lease.token:
            del self.locks[lease.key]

    def create(self, rollout: Rollout, *, lease: Lease, events: tuple[AuditEvent, ...]) -> Rollout:
        if rollout.id in self.rollouts:
            raise Conflict(f"rollout id {rollout.id} is already taken")
        return self._write(rollout, 0, lease, events)

    def save(
        self, rollout: Rollout, *, expected_version: int, lease: Lease,
        events: tuple[AuditEvent, ...],
    ) -> Rollout:
        if self.rollouts[rollout.id].version != expected_version:
            raise Superseded(f"rollout {rollout.id} changed while this operation ran")
        return self._write(rollout, expected_version, lease, events)

    def _write(self, rollout: Rollout, version: int, lease: Lease,
               events: tuple[AuditEvent, ...]) -> Rollout:
        self.confirm(lease)
        saved = rollout.model_copy(update={"version": version + 1})
        self.rollouts[saved.id] = saved
        self.events.extend(events)
        self.saves.append((saved.id, saved.version))
        return saved

    def get(self, rollout_id: str) -> Rollout | None:
        return self.rollouts.get(rollout_id)

    def set_card(self, rollout_id: str, card: Card) -> None:
        self.rollouts[rollout_id] = self.rollouts[rollout_id].model_copy(update={"card": card})

    def active_on(self, target_key: str) -> str | None:
        return next((r.id for r in self.rollouts.values()
                     if r.active and r.target.key == target_key), None)

    def latest_for(self, namespace: str, canary: str) -> str | None:
        found = [r for r in self.rollouts.values()
                 if r.target.namespace == namespace and r.canary == canary]
        return max(found, key=lambda r: r.created_at).id if found else None

    def active_ids(self) -> list[str]:
        return [r.id for r in self.rollouts.values() if r.active]

    def recent_ids(self, limit: int = 20) -> list[str]:
        return list(self.rollouts)[-limit:]

    def audit(self, rollout_id: str, *, limit: int = 200) -> list[AuditEvent]:
        return [e for e in self.events if e.rollout_id == rollout_id][-limit:]

    def record(self, event: AuditEvent) -> None:
        self.events.append(event)

    def remember(self, key: str, value: str, *, ttl_seconds: int) -> str | None:
        self.ttls.setdefault(key, ttl_seconds)
        return self.memos.setdefault(key, value)

    def recall(self, key: str) -> str | None:
        return self.memos.get(key)

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
    fence: int = 0
    writes: list[Pair] = field(default_factory=list)
    reads: int = 0
    fail_next: Exception | None = None  # raised by the next write instead of writing
    problem: str = ""  # what the gateway reports about the route
    objects_to_writes: str = ""  # the problem the gateway reports once the bot has written
    record: RecoveryRecord | None = None  # what the rule carries for recovery
    unreadable: Exception | None = None  # raised by every read while set
    edit_before_write: Pair | None = None  # a person's edit between the read and the write


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
        t = next(t for t in self.targets.values()
                 if t.target.kind is kind and t.canary == canary)
        return Located(target=t.target, stable=t.stable, canary=canary, baseline=t.baseline,
                       observed=self._observed(t))

    def locate(self, *, namespace: str, canary: str, target_name: str | None,
               stable: str | None) -> Located:
        return self.locate_kind(TargetKind.ROUTE, namespace=namespace, canary=canary,
                                target_name=target_name, stable=stable)

    def observe(self, rollout: Rollout) -> Observed:
        return self._observed(self.targets[rollout.target.key])

    def observe_target(self, target: Target, *, stable: str, canary: str) -> Observed:
        return self._observed(self.targets[target.key])

    def apply(
        self, rollout: Rollout, effect: Effect, *, fence: int,
        before: tuple[Pair, ...] | None = None,
    ) -> Observed:
        t = self.targets[rollout.target.key]
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
        if isinstance(effect, Restore):
            t.pair = baseline_pair(rollout.baseline)
            t.marker = Marker(rollout_id=rollout.id, step=rollout.step,
                              state=MarkerState.ROLLED_BACK)
        elif isinstance(effect, Prepare):
            t.pair = expected_pair(rollout, -1)
            t.marker = Marker(rollout_id=rollout.id, step=-1)
            t.record = RecoveryRecord.of(rollout)
        else:
            t.pair = expected_pair(rollout, effect.step)
            t.marker = Marker(rollout_id=rollout.id, step=effect.step)
        t.writes.append(t.pair)
        t.problem = t.objects_to_writes or t.problem
        return Observed(pair=t.pair, marker=t.marker, problem=t.problem)  # the PATCH's answer

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
