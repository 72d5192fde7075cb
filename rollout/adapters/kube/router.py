"""The Traffic port over both kinds of target: HTTPRoute pool splits and rewrite adapter splits.

A rollout's target says which kind's adapter reads it; only locating needs to be told
(`locate_kind`: `--rewrite` or not; plain `locate` means a pool). The write is the same for
every kind and lives here, once: decide the kind's spec ops and the bot's marker on the object
last read, refuse drift, send one fenced PATCH, check the weights in its answer. The kind
adapters only read and compute; nothing is handed down to be called back.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from rollout.adapters.kube.fenced import FencedObjects, Obj, lists_once
from rollout.adapters.kube.writes import (
    bookkeeping_ops,
    clearing_ops,
    insist,
    refuse_drift,
    require_rule,
)
from rollout.domain.machine import Effect, Prepare
from rollout.domain.models import Rollout, Target, TargetKind
from rollout.domain.patch import Ops
from rollout.domain.split import Observed, Pair, baseline_pair
from rollout.ports import Located, Marked


class KindSplit(Protocol):
    """One target kind (HTTPRoute, InferenceModelRewrite): where its objects are, how to read
    the managed pair off one, and which ops move it. Pure but for `locate`, `find_marked`, and
the canary pool's group `spec_ops` reads where a write adds its HTTPRoute backendRef."""

    def locate(
        self, *, namespace: str, canary: str, target_name: str | None, stable: str | None
    ) -> Located: ...

    def find_marked(self, *, namespace: str, canary: str) -> list[Marked]: ...

    def objects(self, target: Target) -> FencedObjects:
        """The fenced reader and writer of the target's kind (and API group)."""
        ...

    def observed(self, obj: Obj, rule: int, stable: str, canary: str) -> Observed:
        """The managed pair and the bot's marker as `obj` shows them."""
        ...

    def spec_ops(self, obj: Obj, rollout: Rollout, effect: Effect) -> Ops:
        """The spec ops that write `effect` onto the rule as `obj` has it."""
        ...

    def pair_after(self, rollout: Rollout, effect: Effect) -> Pair:
        """The pair the object must show once `effect` has landed."""
        ...


class TrafficRouter:
    """The Traffic port: reads through the adapter of each target kind, writes in one place."""

    def __init__(self, *, routes: KindSplit, rewrites: KindSplit) -> None:
        self.adapters: dict[TargetKind, KindSplit] = {
            TargetKind.ROUTE: routes, TargetKind.REWRITE: rewrites,
        }

    def locate(
        self, *, namespace: str, canary: str, target_name: str | None, stable: str | None
    ) -> Located:
        return self.locate_kind(TargetKind.ROUTE, namespace=namespace, canary=canary,
                                target_name=target_name, stable=stable)

    def locate_kind(
        self, kind: TargetKind, *, namespace: str, canary: str, target_name: str | None,
        stable: str | None,
    ) -> Located:
        return self.adapters[kind].locate(namespace=namespace, canary=canary,
                                          target_name=target_name, stable=stable)

    def observe(self, rollout: Rollout) -> Observed:
        return self.observe_target(rollout.target, stable=rollout.stable, canary=rollout.canary)

    def glance(self, rollout: Rollout) -> Observed:
        t = rollout.target
        obj = self.adapters[t.kind].objects(t).glance(t.namespace, t.name)
        return self._observed(obj, t, stable=rollout.stable, canary=rollout.canary)

    def recall(self, rollout: Rollout) -> Observed | None:
        """The cache's copy while it shows the bot's own last write (no request), kept by
        the fenced writer for the next write, which `apply(recalled=True)` sends on it; None
        when the cache does not have it (then `observe`)."""
        t = rollout.target
        obj = self.adapters[t.kind].objects(t).recall(t.namespace, t.name)
        return self._observed(obj, t, stable=rollout.stable, canary=rollout.canary) \
            if obj is not None else None

    def observe_target(self, target: Target, *, stable: str, canary: str) -> Observed:
        """One GET, kept by the fenced writer for the next write of the object."""
        obj = self.adapters[target.kind].objects(target).get(target.namespace, target.name)
        return self._observed(obj, target, stable=stable, canary=canary)

    def _observed(self, obj: Obj, target: Target, *, stable: str, canary: str) -> Observed:
        """The pair on the target's rule, once `obj` shows that rule still at its index:
        every read a decision or a write is made on passes here."""
        require_rule(obj, target)
        return self.adapters[target.kind].observed(obj, target.rule, stable, canary)

    def apply(
        self, rollout: Rollout, effect: Effect, *, fence: int,
        before: tuple[Pair, ...] | None = None, recalled: bool = False,
    ) -> Observed:
        """Decide the ops on the object last read (the reconcile read), send them once under
        the fence; an object that moved meanwhile is decided again on the writer's fresh read
        (or, `recalled`: the reconcile read was the cache's copy, StaleView; the command is
        decided again from a fresh read).
        A start's first write (`Prepare`) insists on the weights its baseline was located on:
        the lookups may come from the namespace cache, a few milliseconds behind."""
        if before is None and isinstance(effect, Prepare):
            before = (baseline_pair(rollout.baseline),)
        t = rollout.target
        kind = self.adapters[t.kind]
        objects = kind.objects(t)
        for attempt in range(objects.conflict_retries + 1):
            obj = objects.latest(t.namespace, t.name, fence=fence)
            seen = self._observed(obj, t, stable=rollout.stable, canary=rollout.canary)
            refuse_drift(rollout, seen, before)
            ops = [*kind.spec_ops(obj, rollout, effect), *bookkeeping_ops(rollout, effect, obj)]
            written = objects.send(t.namespace, t.name, obj, ops, fence=fence,
                                   recalled=recalled and attempt == 0)
            if written is not None:
                observed = self._observed(written, t, stable=rollout.stable,
                                          canary=rollout.canary)
                observed = observed.model_copy(update={"replaced": seen.marker})
                return insist(rollout, observed, kind.pair_after(rollout, effect))
        raise objects.kept_changing(t.namespace, t.name)

    def lookups(self) -> AbstractContextManager[None]:
        """A start's lookups list each kind at most once (from the cache while it is live)."""
        return lists_once()

    def find_marked(self, *, namespace: str, canary: str) -> list[Marked]:
        return [m for adapter in self.adapters.values()
                for m in adapter.find_marked(namespace=namespace, canary=canary)]

    def clear_marker(self, target: Target, *, fence: int) -> None:
        """Drop the bot's marker and record from one rule; the weights stay as they are (no
        rule check: the annotations are the bot's own, whichever rule the index holds)."""
        objects = self.adapters[target.kind].objects(target)
        for _attempt in range(objects.conflict_retries + 1):
            obj = objects.latest(target.namespace, target.name, fence=fence)
            ops = clearing_ops(obj, target.rule)
            if objects.send(target.namespace, target.name, obj, ops, fence=fence) is not None:
                return
        raise objects.kept_changing(target.namespace, target.name)
