"""The Traffic port over both kinds of target: HTTPRoute pool splits and rewrite adapter splits.

A rollout's target says which adapter owns it, so observe, apply and recovery dispatch on
`target.kind`. Only locating needs to be told: `locate_kind` is the service's explicit choice
(`--rewrite` or not), and plain `locate` means a pool. Markers are
searched in both kinds, so an emptied Redis is noticed whatever the rollout moved.
"""

from __future__ import annotations

from typing import Protocol

from rollout.domain.machine import Effect
from rollout.domain.models import Rollout, Target, TargetKind
from rollout.domain.split import Observed, Pair
from rollout.ports import Located, Marked


class KindSplit(Protocol):
    """One target kind's adapter (HTTPRoute, InferenceModelRewrite): the Traffic port for
    targets of its kind, and `locate` without being told the kind."""

    def locate(
        self, *, namespace: str, canary: str, target_name: str | None, stable: str | None
    ) -> Located: ...

    def observe(self, rollout: Rollout) -> Observed: ...

    def apply(
        self, rollout: Rollout, effect: Effect, *, fence: int,
        before: tuple[Pair, ...] | None = None,
    ) -> Observed: ...

    def observe_target(self, target: Target, *, stable: str, canary: str) -> Observed: ...

    def find_marked(self, *, namespace: str, canary: str) -> list[Marked]: ...

    def clear_marker(self, target: Target, *, fence: int) -> None: ...


class TrafficRouter:
    """The Traffic port: dispatches to the adapter of each target kind."""

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
        return self.adapters[rollout.target.kind].observe(rollout)

    def apply(
        self, rollout: Rollout, effect: Effect, *, fence: int,
        before: tuple[Pair, ...] | None = None,
    ) -> Observed:
        return self.adapters[rollout.target.kind].apply(rollout, effect, fence=fence,
                                                        before=before)

    def observe_target(self, target: Target, *, stable: str, canary: str) -> Observed:
        return self.adapters[target.kind].observe_target(target, stable=stable, canary=canary)

    def find_marked(self, *, namespace: str, canary: str) -> list[Marked]:
        return [m for adapter in self.adapters.values()
                for m in adapter.find_marked(namespace=namespace, canary=canary)]

    def clear_marker(self, target: Target, *, fence: int) -> None:
        self.adapters[target.kind].clear_marker(target, fence=fence)
