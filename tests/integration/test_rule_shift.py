"""A rule inserted before the managed one mid-rollout (a GitOps sync) shifts its index: the
rollback that follows, which checks no weights, must not write the rule that now sits at the
index. The bot recognises the rule by its fingerprint (its name, else its matches) and refuses
for an operator; the inserted rule, and the rollout's own, stay exactly as they are (the
gateway's status write moves the resourceVersion: the spec, the annotations and the bot's
PATCH count say nothing was written)."""

from __future__ import annotations

import copy
from typing import Any

from kubernetes import client

from rollout.domain.models import Phase
from rollout.domain.plan import build_plan
from rollout.service import Ref
from tests.integration.conftest import ALICE, BOB, World
from tests.integration.rewrite_support import REF as REWRITE_REF
from tests.integration.rewrite_support import (
    REWRITE,
    V1,
    V2,
    rewrite,
    rewrite_patches,
    start,
)

POOL = "llm-pool-version-2"
REF = Ref(canary=POOL)
GROUP = "inference.networking.k8s.io"
JSON_PATCH = "application/json-patch+json"


def _insert_rule(world: World, plural: str, name: str, rule: dict[str, Any],
                 group: str = "gateway.networking.k8s.io", version: str = "v1") -> None:
    """What a GitOps sync does: `add /spec/rules/0`, as another field manager."""
    admin = client.CustomObjectsApi(world.emulator.world.admin)
    admin.patch_namespaced_custom_object(
        group, version, "default", plural, name,
        [{"op": "add", "path": "/spec/rules/0", "value": rule}],
        _content_type=JSON_PATCH, field_manager="argocd-controller")


def _to_25(world: World, ref: Ref) -> None:
    for _ in range(2):
        out = world.service.approve(ref, actor=BOB)
        assert out.ok, out.message


def test_a_route_rollback_after_a_rule_was_inserted_is_refused_writing_nothing(
    world: World,
) -> None:
    """Refused, not restored: the markers and the record are kept per index, so the bot
    cannot follow the rule to its new index; the rollout pauses with the reason (the
    reconcile read found it), and once an operator put the rule back, the rollback goes
    through."""
    world.service.start(namespace="default", canary=POOL, actor=ALICE,
                        plan=build_plan([10, 25, 50, 100], interval_seconds=0))
    _to_25(world, REF)
    assert world.service.get(REF).target.fingerprint.startswith("matches#")
    batch = {"matches": [{"headers": [{"name": "x-tier", "value": "batch"}]}],
             "backendRefs": [{"group": GROUP, "kind": "InferencePool", "name": "llm-pool",
                              "weight": 1}]}
    _insert_rule(world, "httproutes", "routes-to-llm", batch)
    inserted, patches = world.route(), world.route_patches()
    out = world.service.rollback(REF, actor=BOB, reason="p99 latency")
    assert not out.ok
    assert "routes-to-llm rule 0 is no longer the rule the rollout manages" in out.message
    after = world.route()
    assert after["spec"] == inserted["spec"]
    assert after["metadata"]["annotations"] == inserted["metadata"]["annotations"]
    assert world.route_patches() == patches  # the bot sent nothing
    assert world.weights(rule=1) == {"llm-pool": 75, POOL: 25}  # the canary keeps its share
    rollout = world.service.get(REF)
    assert rollout.phase is Phase.PAUSED  # the reconcile read found the rule gone first
    assert rollout.pause is not None and "no longer the rule" in (rollout.pause.reason or "")
    admin = client.CustomObjectsApi(world.emulator.world.admin)  # the sync is reverted
    admin.patch_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", "default", "httproutes", "routes-to-llm",
        [{"op": "remove", "path": "/spec/rules/0"}], _content_type=JSON_PATCH,
        field_manager="argocd-controller")
    out = world.service.rollback(REF, actor=BOB, reason="p99 latency")
    assert out.ok, out.message
    assert world.weights() == {"llm-pool": 100, POOL: 0}
    assert world.service.get(REF).phase is Phase.ROLLED_BACK


def test_a_rewrite_rollback_after_a_rule_was_inserted_is_refused_writing_nothing(
    world: World,
) -> None:
    """The inserted rule sends another model to the same adapter: by its targets it would
    pass for the rollout's rule."""
    out = start(world)
    assert out.ok, out.message
    _to_25(world, REWRITE_REF)
    other = {"matches": [{"model": {"type": "Exact", "value": "other-lora"}}],
             "targets": [{"modelRewrite": V1, "weight": 100}]}
    _insert_rule(world, "inferencemodelrewrites", REWRITE, other, group="llm-d.ai",
                 version="v1alpha2")
    inserted, patches = copy.deepcopy(rewrite(world)), rewrite_patches(world)
    out = world.service.rollback(REWRITE_REF, actor=BOB)
    assert not out.ok
    assert (f"InferenceModelRewrite default/{REWRITE} rule 0 is no longer the rule the "
            "rollout manages") in out.message
    after = rewrite(world)
    assert after["spec"] == inserted["spec"]
    assert after["metadata"]["annotations"] == inserted["metadata"]["annotations"]
    assert rewrite_patches(world) == patches
    assert world.service.get(REWRITE_REF).phase is Phase.PAUSED
    assert after["spec"]["rules"][1]["targets"] == [{"modelRewrite": V1, "weight": 75},
                                                    {"modelRewrite": V2, "weight": 25}]
