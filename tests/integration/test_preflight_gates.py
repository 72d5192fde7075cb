"""The gates in the service, against the real API server as the bot's service account: each
refusal at start with its itemised reason and nothing changed; a capacity wait that clears
when pods become Ready; an Argo CD revert pausing the rollout with the manager named; a freeze
holding a scheduled step-up while a rollback goes through; a stable pool losing its Ready
endpoints during a bake pausing the rollout at the next sweep, and a rollback then warning."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rollout.domain.errors import NotFound, NotReady, Refused
from rollout.domain.facts import LEGACY_GROUP, LLMD_GROUP, POOL_GROUP
from rollout.domain.models import PauseKind, Phase
from rollout.domain.plan import build_plan
from rollout.service import Ref
from tests.integration.conftest import ALICE, BOB, CAROL, World
from tests.integration.gate_support import NS, ROUTE, apply_as, put_younger_rewrite, set_ready

STABLE, CANARY = "llm-pool", "llm-pool-version-2"
REF = Ref(canary=CANARY)
Obj = dict[str, Any]


def _start(world: World, canary: str = CANARY, *, steps: tuple[int, ...] = (10, 100),
           **options: Any) -> Any:
    auto, bake = options.pop("auto", False), options.pop("bake", 0)
    return world.service.start(namespace=NS, canary=canary, actor=ALICE,
                               plan=build_plan(list(steps), auto=auto, interval_seconds=bake),
                               **options)


def _refused(world: World, call: Callable[[], Any], kind: type[Refused] = NotReady) -> str:
    """The refusal's text, with the route and the store exactly as they were."""
    before = world.route()["metadata"]["resourceVersion"]
    patches = world.route_patches()
    with pytest.raises(kind) as refused:
        call()
    assert world.route()["metadata"]["resourceVersion"] == before
    assert world.route_patches() == patches
    assert world.service.list_rollouts() == []
    return str(refused.value)


def test_a_missing_pool_is_refused_and_nothing_changes(world: World) -> None:
    text = _refused(world, lambda: _start(world, "llm-pool-version-3"), NotFound)
    assert "InferencePool llm-pool-version-3 not found in namespace default" in text


def test_a_pool_being_deleted_is_refused_and_nothing_changes(world: World) -> None:
    objects = world.emulator.world.objects
    args = (POOL_GROUP, "v1", NS, "inferencepools", CANARY)
    objects.patch_namespaced_custom_object(
        *args, {"metadata": {"finalizers": ["example.com/hold"]}})
    try:
        objects.delete_namespaced_custom_object(*args)
        text = _refused(world, lambda: _start(world))
        assert text.startswith(f"{CANARY} cannot start; nothing was changed:\n")
        assert f"• [pool] InferencePool {CANARY} is being deleted. Wait until it is gone" \
            in text
    finally:
        objects.patch_namespaced_custom_object(*args, {"metadata": {"finalizers": None}})


def test_mismatched_objectives_are_refused_with_every_difference(world: World) -> None:
    objects = world.emulator.world.objects
    objects.delete_namespaced_custom_object(LLMD_GROUP, "v1alpha2", NS, "inferenceobjectives",
                                            f"{CANARY}-batch")
    objects.patch_namespaced_custom_object(LLMD_GROUP, "v1alpha2", NS, "inferenceobjectives",
                                           f"{CANARY}-chat", {"spec": {"priority": 5}})
    text = _refused(world, lambda: _start(world))
    assert f"• [objectives] InferenceObjectives ({LLMD_GROUP}) differ between {STABLE} and " \
           f"{CANARY}: missing on {CANARY}: batch (priority 0, as {STABLE}-batch on " \
           f"{STABLE}); chat: priority 5 on {CANARY}, 10 on {STABLE}" in text


def test_a_canary_only_in_the_legacy_group_is_checked_there(world: World) -> None:
    """A node update onto a pool that exists only in the legacy group: the ref the bot adds
    names that group, so the pool is checked there (this one has no endpoint picker and no
    pods), never refused for a group nothing will refer to."""
    world.emulator.put_object({
        "apiVersion": f"{LEGACY_GROUP}/v1alpha2", "kind": "InferencePool",
        "metadata": {"name": "llm-pool-version-3", "namespace": NS},
        "spec": {"selector": {"app": "llm-pool-version-3"}, "targetPortNumber": 8000,
                 "extensionRef": {"name": "llm-pool-version-3-epp"}},
    })
    text = _refused(world, lambda: _start(world, "llm-pool-version-3", route=ROUTE,
                                          stable=STABLE))
    assert "• [pool] the endpoint picker Service llm-pool-version-3-epp of" in text
    assert "exists only as" not in text


def test_too_few_ready_pods_are_refused_at_start(world: World) -> None:
    for i in (0, 1):
        set_ready(world.emulator, f"{CANARY}-{i}", False)
    text = _refused(world, lambda: _start(world))
    assert f"• [capacity] {CANARY} has 0 Ready endpoints: at least 1 are required" in text


def test_a_younger_rewrite_for_the_same_model_is_refused(world: World) -> None:
    before = put_younger_rewrite(world.emulator)
    assert before is not None
    text = _refused(world, lambda: _start(world, "small-segment-lora-v2",
                                          rewrite="small-segment-lora-b"))
    assert "• [rewrite] InferenceModelRewrite small-segment-lora also matches model " \
           "small-segment-lora on pool llm-pool and is older than small-segment-lora-b" in text
    assert "--rewrite small-segment-lora" in text
    after = world.emulator.get_object(LLMD_GROUP, "v1alpha2", "inferencemodelrewrites", NS,
                                      "small-segment-lora-b")
    assert after is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_a_route_last_applied_by_argo_cd_is_refused_with_the_remedy(world: World) -> None:
    apply_as(world.emulator, "argocd-controller", (100, 0))
    text = _refused(world, lambda: _start(world))
    assert "• [gitops] HTTPRoute routes-to-llm is kept by Argo CD: field manager " \
           "argocd-controller (Apply," in text
    assert "managedFieldsManagers: [rollout-bot]" in text and "--allow-gitops" in text


def test_with_allow_gitops_an_argo_cd_revert_pauses_the_rollout_naming_it(
        world: World) -> None:
    apply_as(world.emulator, "argocd-controller", (100, 0))
    out = _start(world, allow_gitops=True)
    assert out.ok, out.message
    assert world.service.approve(REF, actor=BOB).ok
    assert world.weights() == {STABLE: 90, CANARY: 10}
    managers = {m["manager"] for m in world.route()["metadata"]["managedFields"]}
    assert "rollout-bot" in managers  # the bot's writes carry its field manager
    apply_as(world.emulator, "argocd-controller", (100, 0))  # Argo CD syncs from Git
    rollout = world.service.get(REF)
    world.service.watch(rollout)  # the scheduler's sweep
    paused = world.service.get(REF)
    assert paused.phase is Phase.PAUSED and paused.pause is not None
    assert paused.pause.kind is PauseKind.DRIFT
    assert "weights changed outside the bot" in paused.pause.reason
    assert "last written by argocd-controller (Argo CD) at " in paused.pause.reason


def test_a_capacity_wait_clears_when_the_canarys_pods_become_ready(world: World) -> None:
    assert _start(world).ok
    assert world.service.approve(REF, actor=BOB).ok  # 10% of 2 endpoints needs 1
    set_ready(world.emulator, f"{CANARY}-0", False)
    held = world.service.approve(REF, actor=BOB)  # 100% needs 2
    assert not held.ok
    assert f"• [capacity] {CANARY} has 1 Ready endpoint: 100% of the traffic {STABLE} serves " \
           "with 2 needs 2" in held.message
    assert world.weights() == {STABLE: 90, CANARY: 10}
    waiting = world.service.get(REF)
    assert waiting.active and waiting.phase is not Phase.PAUSED and waiting.step == 0
    assert "step to 100% waits" in waiting.held
    set_ready(world.emulator, f"{CANARY}-0", True)
    done = world.service.approve(REF, actor=BOB)
    assert done.ok, done.message
    assert world.weights() == {STABLE: 0, CANARY: 100}
    assert world.service.get(REF).phase is Phase.COMPLETED


def test_an_unreadable_freeze_record_holds_step_ups_and_never_a_rollback(world: World) -> None:
    """A freeze key set by hand in an incident (or by another version) raised at every
    command's opening, rollback included, left the target's lock held, and could not be
    lifted: it now freezes as a freeze does, and unfreeze removes it."""
    assert _start(world, steps=(10, 50, 100), auto=True).ok
    assert world.service.approve_plan(REF, actor=BOB).ok
    assert world.service.tick(world.service.get(REF).id).ok  # 10%
    world.store.client.set(world.store.key("freeze"), "yes, frozen: incident 42")
    held = world.service.tick(world.service.get(REF).id)
    assert not held.ok and held.message.startswith(
        f"Not applied: Rollouts are frozen by a record the bot cannot read: "
        f"{world.store.key('freeze')} "
        "holds no freeze this version understands; unfreeze removes it. Step-ups wait")
    assert world.weights() == {STABLE: 90, CANARY: 10}
    back = world.service.rollback(REF, actor=BOB, reason="incident 42")
    assert back.ok, back.message
    assert world.weights() == {STABLE: 100, CANARY: 0}
    assert world.store.client.keys(world.store.key("lock", "*")) == []
    lifted = world.service.unfreeze(actor=CAROL)
    assert "a record the bot cannot read" in lifted.message
    assert world.store.client.exists(world.store.key("freeze")) == 0


def test_a_freeze_holds_a_scheduled_step_while_a_rollback_goes_through(world: World) -> None:
    assert _start(world, steps=(10, 50, 100), auto=True).ok
    assert world.service.approve_plan(REF, actor=BOB).ok
    assert world.service.tick(world.service.get(REF).id).ok  # 10%, then bakes 0 s
    assert world.weights() == {STABLE: 90, CANARY: 10}
    world.service.freeze(actor=CAROL, reason="incident 42")
    rollout_id = world.service.get(REF).id
    held = world.service.tick(rollout_id)
    assert not held.ok and "Rollouts are frozen by cli:carol" in held.message
    assert world.weights() == {STABLE: 90, CANARY: 10}
    assert world.service.status(REF).freeze is not None
    back = world.service.rollback(REF, actor=BOB, reason="incident 42")
    assert back.ok, back.message
    assert world.weights() == {STABLE: 100, CANARY: 0}
    assert world.service.get(REF).phase is Phase.ROLLED_BACK
    actions = [e.action for e in world.service.history(REF)]
    assert actions[-2:] == ["frozen", "rolled_back"]


def test_a_stable_pool_losing_its_endpoints_pauses_the_next_step_until_they_return(
        world: World) -> None:
    assert _start(world, steps=(10, 50, 100)).ok
    assert world.service.approve(REF, actor=BOB).ok
    set_ready(world.emulator, f"{STABLE}-0", False)
    out = world.service.approve(REF, actor=BOB)
    paused = world.service.get(REF)
    assert not out.ok and paused.phase is Phase.PAUSED and paused.pause is not None
    assert paused.pause.kind is PauseKind.PREFLIGHT
    assert f"• [rollback] {STABLE}: 1 of 2 Ready endpoints; a rollback now would overload it" \
        in paused.pause.reason
    assert world.weights() == {STABLE: 90, CANARY: 10}
    set_ready(world.emulator, f"{STABLE}-0", True)
    assert world.service.resume(REF, actor=BOB).ok
    done = world.service.approve(REF, actor=BOB)
    assert done.ok, done.message
    assert world.weights() == {STABLE: 50, CANARY: 50}


def test_a_stable_pool_losing_its_endpoints_during_a_bake_pauses_at_the_next_sweep(
        world: World) -> None:
    assert _start(world, steps=(10, 50, 100), bake=600).ok
    assert world.service.approve(REF, actor=BOB).ok
    assert world.service.get(REF).phase is Phase.BAKING
    assert world.service.watch(world.service.get(REF)) is None  # ready: the sweep moves on
    set_ready(world.emulator, f"{STABLE}-0", False)
    assert world.service.watch(world.service.get(REF)) is not None
    paused = world.service.get(REF)
    assert paused.phase is Phase.PAUSED and paused.pause is not None
    assert paused.pause.kind is PauseKind.ROLLBACK
    assert paused.pause.reason.startswith(
        f"{STABLE} could not take the traffic back:\n• [rollback] {STABLE}: 1 of 2 Ready "
        "endpoints; a rollback now would overload it")
    assert world.weights() == {STABLE: 90, CANARY: 10}
    refused = _kept(world, lambda: world.service.resume(REF, actor=BOB))
    assert refused.startswith(f"{CANARY} stays paused: {STABLE} could not take the traffic "
                              f"back:\n• [rollback] {STABLE}: 1 of 2 Ready endpoints")
    set_ready(world.emulator, f"{STABLE}-0", True)
    assert world.service.resume(REF, actor=BOB).ok
    assert world.service.get(REF).phase is Phase.BAKING
    world.clock.advance(seconds=3600)
    done = world.service.approve(REF, actor=BOB)
    assert done.ok, done.message
    assert world.weights() == {STABLE: 50, CANARY: 50}


def test_a_rollback_while_the_stable_pool_is_short_warns_and_restores_the_weights(
        world: World) -> None:
    assert _start(world, steps=(10, 50, 100), bake=600).ok
    assert world.service.approve(REF, actor=BOB).ok
    set_ready(world.emulator, f"{STABLE}-0", False)
    try:
        world.service.watch(world.service.get(REF))
        assert world.service.get(REF).phase is Phase.PAUSED
        back = world.service.rollback(REF, actor=BOB, reason="canary errors")
    finally:
        set_ready(world.emulator, f"{STABLE}-0", True)
    assert back.ok, back.message
    assert back.message.startswith(f"Warning: {STABLE}: 1 of 2 Ready endpoints; a rollback "
                                   "now would overload it; rolling back anyway.\n")
    assert world.weights() == {STABLE: 100, CANARY: 0}
    assert world.service.get(REF).phase is Phase.ROLLED_BACK


def _kept(world: World, call: Callable[[], Any]) -> str:
    """A refusal of a recorded rollout: its text, with the route and the rollout unchanged."""
    before, rollout = world.route()["metadata"]["resourceVersion"], world.service.get(REF)
    with pytest.raises(NotReady) as refused:
        call()
    assert world.route()["metadata"]["resourceVersion"] == before
    assert world.service.get(REF) == rollout
    return str(refused.value)
