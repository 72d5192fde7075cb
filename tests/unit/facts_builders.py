"""Cluster facts for the gate tests: two healthy pools with matching objectives, Ready pods
and their endpoint pickers, to be spoiled one fact at a time."""

from __future__ import annotations

from dataclasses import replace

from rollout.domain.facts import (
    LEGACY_GROUP,
    LLMD_GROUP,
    POOL_GROUP,
    ClusterFacts,
    ObjectiveFacts,
    PickerRef,
    PodFacts,
    PoolFacts,
)

STABLE, CANARY = "llm-pool", "llm-pool-version-2"


def pool(name: str, group: str = POOL_GROUP, **extra: object) -> PoolFacts:
    base = PoolFacts(name=name, group=group, generation=1, selector={"app": name},
                     target_ports=(8000,), picker=PickerRef(name=f"{name}-epp", port=9002))
    return replace(base, **extra)  # type: ignore[arg-type]


def pods(pool_name: str, count: int, *, ready: bool = True, start: int = 0) -> tuple[PodFacts, ...]:
    return tuple(PodFacts(name=f"{pool_name}-{i}", labels={"app": pool_name}, ready=ready,
                          ip=f"10.0.0.{i}")
                 for i in range(start, start + count))


def objectives(pool_name: str, *pairs: tuple[str, int]) -> tuple[ObjectiveFacts, ...]:
    return tuple(ObjectiveFacts(name=f"{pool_name}-{suffix}", pool=pool_name, priority=prio)
                 for suffix, prio in pairs)


def world(**extra: object) -> ClusterFacts:
    base = ClusterFacts(
        namespace="default", served_pool_groups=frozenset({POOL_GROUP, LEGACY_GROUP}),
        pools=(pool(STABLE), pool(CANARY)), objective_group=LLMD_GROUP,
        objectives=objectives(STABLE, ("chat", 10), ("batch", 0))
        + objectives(CANARY, ("chat", 10), ("batch", 0)),
        pods=pods(STABLE, 4) + pods(CANARY, 4),
        services=frozenset({f"{STABLE}-epp", f"{CANARY}-epp"}),
    )
    return replace(base, **extra)  # type: ignore[arg-type]
