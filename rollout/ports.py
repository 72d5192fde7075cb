"""The ports the service depends on: where state lives, how traffic is split, what the
cluster looks like to the preflight gates, and whether rollouts are frozen.

Adapters implement these (Redis in `store`, Kubernetes in `traffic`); the service sees only
the protocols, so the rollout logic can be read without knowing either backend.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from rollout.domain.facts import ClusterFacts
from rollout.domain.freeze import Freeze
from rollout.domain.machine import Effect
from rollout.domain.models import (
    AuditEvent,
    Baseline,
    Card,
    RecoveryRecord,
    Rollout,
    Target,
    TargetKind,
)
from rollout.domain.split import Marker, Observed, Pair


@dataclass(frozen=True)
class Lease:
    """A granted target lock. `token` is the fencing token: it only ever grows. `person`: the
    name a person's command announced itself under when it took the lock ('' for none), so
    that its close says the same name is done."""

    key: str
    token: int
    person: str = ""


@dataclass(frozen=True)
class Opening:
    """What a command starts from, read in the round trip that takes its lock: the rollout
    as recorded under the lock, whether a write of it is in flight, and the install-wide
    freeze. `answer` is what an earlier run of the same request answered: then no lock was
    taken (`lease` is None) and nothing else was read. `lease` is None too when nothing is
    recorded under the name the command gave."""

    lease: Lease | None
    rollout: Rollout | None = None
    answer: str | None = None
    in_flight: bool = False
    freeze: Freeze | None = None


@dataclass(frozen=True)
class Saving:
    """A rollout's next version, compare-and-set on the version the command loaded (0: the
    rollout's first), with the events that explain it."""

    rollout: Rollout
    expected_version: int
    events: tuple[AuditEvent, ...] = ()

    @property
    def saved(self) -> Rollout:
        """The rollout as the store keeps it once this is written."""
        return self.rollout.model_copy(update={"version": self.expected_version + 1})


@dataclass(frozen=True)
class Memo:
    """A request's answer, kept for `ttl_seconds` so that a duplicate gets it again."""

    key: str
    answer: str
    ttl_seconds: int


@dataclass(frozen=True)
class Changes:
    """Rollouts written since a write number a reader has seen (the scheduler's cache)."""

    seq: int  # the number of the latest write
    ids: list[str]
    complete: bool  # False: the index no longer reaches back that far; reload everything


@dataclass(frozen=True)
class Located:
    """A traffic target found for a canary, with what start needs to know about it."""

    target: Target
    stable: str
    canary: str
    baseline: Baseline
    observed: Observed
    pool: str = ""  # an adapter rollout: the rewrite's pool, for the canary analysis
    model: str = ""  # an adapter rollout: the model name the rule matches
    #: the rule's other entries that carry a weight of their own, by name: their share must
    #: stay as it is (`require_shares_kept`)
    others: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class Marked:
    """A rule the bot marked as owned by a rollout, with the record it left for recovery."""

    target: Target
    marker: Marker
    record: RecoveryRecord | None


@runtime_checkable
class Traffic(Protocol):
    """The one traffic port: where a rollout's weights live, over every target kind. The
    rollout's target says which kind; only locating is told (`--rewrite` or not)."""

    def locate_kind(
        self, kind: TargetKind, *, namespace: str, canary: str, target_name: str | None,
        stable: str | None,
    ) -> Located:
        """Find the rule a rollout of `canary` would own; Refused errors explain misses."""
        ...

    def observe(self, rollout: Rollout) -> Observed:
        """Read the target's current weights and the bot's marker."""
        ...

    def glance(self, rollout: Rollout) -> Observed:
        """The target as a watch last showed it (no request while the namespace cache is
        live and has the bot's own last write of it), else as `observe` reads it: for the
        drift watch, whose finding is decided again under the lock on a fresh read."""
        ...

    def recall(self, rollout: Rollout) -> Observed | None:
        """The namespace cache's copy of the target while it has the bot's own last write,
        kept for the next write like `observe`'s read (a tick decides on it, its GET
        spared); None when the cache does not have it. The write sent on it with `recalled`
        raises StaleView when the object had moved since the copy."""
        ...

    def apply(
        self, rollout: Rollout, effect: Effect, *, fence: int,
        before: tuple[Pair, ...] | None = None, recalled: bool = False,
    ) -> Observed:
        """Write `effect` for `rollout` (the state after it) conditionally on the fence and,
        where `before` is given, on the managed weights still being one of those pairs.
        `recalled`: decided on `recall`'s copy; an object that moved raises StaleView."""
        ...

    def observe_target(self, target: Target, *, stable: str, canary: str) -> Observed:
        """Read a target no rollout state describes yet (recovery)."""
        ...

    def find_marked(self, *, namespace: str, canary: str) -> list[Marked]:
        """Rules referencing `canary` that carry the bot's marker."""
        ...

    def lookups(self) -> AbstractContextManager[None]:
        """A scope in which finding and locating list each kind at most once."""
        ...

    def clear_marker(self, target: Target, *, fence: int) -> None:
        """Remove the bot's marker from a rule without touching weights."""
        ...


class RolloutStore(Protocol):
    """Rollout state, target locks with fencing tokens, audit and request memos. A command
    costs three round trips: `open`, `confirm` just before its cluster write, `close`."""

    def open(
        self, *, key: str | None = None, rollout_id: str | None = None,
        latest: tuple[str, str] | None = None, preempt: bool = False, memo: str | None = None,
        person: bool = False,
    ) -> Opening:
        """In one round trip: the answer remembered under `memo` (and then nothing more);
        else the lock on the target of the rollout named (by id, or the latest of
        `latest` = (namespace, canary)) or on the object `key`, and what the command starts
        from. Busy when the lock stays taken; `preempt` (a rollback) takes it anyway. A
        `person`'s command says it went to work (and its `close` that it is done), so that the
        scheduler's ticks make way for it."""
        ...

    def close(self, lease: Lease, *, saving: Saving | None = None,
              memo: Memo | None = None) -> None:
        """In one round trip: write `saving` (fenced by the lease, compare-and-set on the
        version), then keep `memo`, then give the lock back. The lock is given back whether
        or not the write was accepted; memo is kept only with the write."""
        ...

    def confirm(self, lease: Lease) -> Freeze | None:
        """Raise unless the lease is still ours (and extend it); the freeze as it stands."""
        ...

    def regrant(self, lease: Lease, *, floor: int) -> Lease: ...

    def create(self, rollout: Rollout, *, lease: Lease, events: tuple[AuditEvent, ...]) -> Rollout:
        ...

    def get(self, rollout_id: str) -> Rollout | None: ...

    def set_card(self, rollout_id: str, card: Card, *, replacing: Card | None = None) -> Card:
        ...

    def active_on(self, target_key: str) -> str | None: ...

    def latest_for(self, namespace: str, canary: str) -> str | None: ...

    def latest(self, namespace: str, canary: str) -> Rollout | None:
        """The rollout `latest_for` names, read in the same round trip."""
        ...

    def active_ids(self) -> list[str]: ...

    def due_until(self, until: datetime) -> dict[str, datetime]: ...

    def index_due(self, due: dict[str, tuple[datetime, int]]) -> None: ...

    def kept_until(self, until: datetime) -> list[str]:
        """Rollouts whose keep-period reminder (`Rollout.keep_reminder_at`) is due by
        `until`, as the save indexed them."""
        ...

    def index_kept(self, ends: dict[str, datetime]) -> None: ...

    def unindex_kept(self, rollout_ids: list[str]) -> None: ...

    def expire_finished(self, now: datetime) -> int:
        """Give finished rollouts with no time to live the one the retention gives them
        (records written while it was off); how many were given one."""
        ...

    def changes_since(self, seen: int) -> Changes: ...

    def recent_ids(self, limit: int = 20) -> list[str]: ...

    def mark_in_flight(self, rollout_id: str) -> None: ...

    def clear_in_flight(self, rollout_id: str) -> None: ...

    def in_flight_ids(self) -> list[str]: ...

    def audit(self, rollout_id: str, *, limit: int = 200) -> list[AuditEvent]: ...

    def record(self, event: AuditEvent) -> None: ...

    def ping(self) -> None: ...


class ClusterFactsReader(Protocol):
    """What the preflight gates decide on: one namespace read in one pass."""

    def read(self, namespace: str, *, route: str | None = None,
             rewrite: str | None = None) -> ClusterFacts:
        """Pools, objectives, rewrites, pods and Services of `namespace`, and the route
        (for its owners) when named; a kind the cluster does not serve reads as absent.
        `route` or `rewrite` names the rollout's target: a read from a cache shows the bot's
        own last write of it."""
        ...


class FreezeRecord(Protocol):
    """The install-wide freeze: at most one at a time."""

    def get(self) -> Freeze | None: ...

    def put(self, freeze: Freeze) -> Freeze:
        """Record `freeze`; Conflict when one is there already."""
        ...

    def lift(self) -> Freeze:
        """Remove the freeze and return it; Conflict when there is none."""
        ...


class TickHolds(Protocol):
    """Where the scheduler records that the Kubernetes API's throttle holds its automatic
    steps back, for `status` on any replica to say so."""

    def hold(self, until: datetime) -> None:
        """Every automatic step is held until `until` (a later hold replaces it)."""
        ...

    def held_until(self) -> datetime | None:
        """The end of the hold recorded, while it lasts; else None."""
        ...
