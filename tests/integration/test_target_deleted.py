"""A rollout's route deleted under it (a person, or GitOps pruning it), against the real API
server: the drift watch pauses the rollout saying so, and a rollback ends it (nothing is
left to restore) instead of answering "not found" for good with the rule still claimed."""

from __future__ import annotations

from kubernetes import client

from rollout.domain.models import AuditAction, PauseKind, Phase
from rollout.domain.plan import build_plan
from rollout.service import Ref
from tests.integration.conftest import ALICE, BOB, World

POOL = "llm-pool-version-2"
REF = Ref(canary=POOL)
GONE = "HTTPRoute default/routes-to-llm rule 0 is gone from the cluster"


def _at_10_then_the_route_is_deleted(world: World) -> None:
    assert world.service.start(namespace="default", canary=POOL, actor=ALICE,
                               plan=build_plan(interval_seconds=0)).ok
    assert world.service.approve(REF, actor=BOB).ok
    objects = client.CustomObjectsApi(world.emulator.world.admin)
    objects.delete_namespaced_custom_object("gateway.networking.k8s.io", "v1", "default",
                                            "httproutes", "routes-to-llm")


def test_the_drift_watch_pauses_a_rollout_whose_route_was_deleted(world: World) -> None:
    _at_10_then_the_route_is_deleted(world)
    world.service.watch(world.service.get(REF))
    r = world.service.get(REF)
    assert r.phase is Phase.PAUSED and r.pause is not None
    assert r.pause.kind is PauseKind.DRIFT and r.pause.reason.startswith(GONE)
    assert "recreate it and resume, or roll back" in r.pause.reason


def test_a_rollback_of_a_rollout_whose_route_was_deleted_ends_it(world: World) -> None:
    _at_10_then_the_route_is_deleted(world)
    out = world.service.rollback(REF, actor=BOB)
    assert out.ok and "nothing was restored" in out.message, out.message
    r = world.service.get(REF)
    assert r.phase is Phase.ROLLED_BACK and not r.active
    [ended] = [e for e in world.service.history(REF) if e.action is AuditAction.ROLLED_BACK]
    assert ended.actor == BOB and GONE in ended.detail and "nothing was restored" in ended.detail
    assert world.store.active_on(r.target.object_key) is None  # the rule is no longer claimed
