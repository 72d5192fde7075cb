"""Helpers for the adapter-rollout tests: reads and writes of the demo's
InferenceModelRewrite `small-segment-lora`."""

from __future__ import annotations

import copy
from typing import Any

from rollout.domain.plan import build_plan
from rollout.service import Outcome, Ref
from tests.integration.conftest import ALICE, World

REWRITE = "small-segment-lora"
V1, V2 = "small-segment-lora-v1", "small-segment-lora-v2"
REF = Ref(canary=V2)
LLMD, LEGACY = "llm-d.ai", "inference.networking.x-k8s.io"


def rewrite(world: World, name: str = REWRITE, group: str = LLMD) -> dict[str, Any]:
    obj = world.emulator.get_object(group, "v1alpha2", "inferencemodelrewrites", "default", name)
    assert obj is not None, f"{group} rewrite {name} is gone"
    return obj


def targets(world: World, name: str = REWRITE, group: str = LLMD,
            rule: int = 0) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = rewrite(world, name, group)["spec"]["rules"][rule]["targets"]
    return found


def put_rewrite(world: World, name: str, rules: list[dict[str, Any]],
                group: str = LLMD) -> dict[str, Any]:
    obj = {
        "apiVersion": f"{group}/v1alpha2", "kind": "InferenceModelRewrite",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"poolRef": {"name": "llm-pool"}, "rules": copy.deepcopy(rules)},
    }
    return world.emulator.put_object(obj)


def rule(model: str, *targets: dict[str, Any]) -> dict[str, Any]:
    return {"matches": [{"model": {"type": "Exact", "value": model}}], "targets": list(targets)}


def start(world: World, name: str = REWRITE, canary: str = V2, steps: tuple[int, ...] = (
        10, 25, 50, 100), **kwargs: Any) -> Outcome:
    return world.service.start(namespace="default", canary=canary, rewrite=name, actor=ALICE,
                               plan=build_plan(list(steps), interval_seconds=0), **kwargs)


def rewrite_patches(world: World, name: str = REWRITE) -> int:
    return sum(1 for r in world.emulator.requests
               if r.verb == "patch" and r.resource == "inferencemodelrewrites" and r.name == name
               and r.status < 300)
