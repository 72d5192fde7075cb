"""Which entry of which route rule a pool rollout moves, against the real API server: a rule
with no room for the canary's backendRef, a pool listed in both API groups, filters on the
stable's backendRef, two rules sending to one pool. Bad input gets a clear answer and changes
nothing, in the cluster or in Redis (DESIGN invariant 9)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from rollout.domain import machine
from rollout.domain.errors import Ambiguous, ClusterRejected, Conflict, NotReady
from rollout.domain.facts import LEGACY_GROUP, POOL_GROUP
from rollout.domain.machine import Prepare
from rollout.domain.models import Phase, TargetKind
from rollout.domain.plan import build_plan
from rollout.service import Ref
from tests.integration.conftest import ALICE, BOB, CAROL, World

ROUTE, STABLE, CANARY = "llm-route", "llm", "llm-new"
REF = Ref(canary=CANARY)
Obj = dict[str, Any]
HEADERS = [{"type": "RequestHeaderModifier",
            "requestHeaderModifier": {"set": [{"name": "x-pool-tier", "value": "gold"}]}}]


def _pool_ref(name: str, weight: int, group: str = POOL_GROUP, **extra: Any) -> Obj:
    return {"group": group, "kind": "InferencePool", "name": name, "weight": weight, **extra}


def _services(n: int) -> list[Obj]:
    return [{"group": "", "kind": "Service", "name": f"svc-{i}", "port": 8080, "weight": 0}
            for i in range(n)]


def _put_rules(world: World, *rules: list[Obj], tiers: tuple[str, ...] = ()) -> None:
    """llm-route with one rule per list of backendRefs (header-matched when `tiers`)."""
    route = copy.deepcopy(world.route(ROUTE))
    route.pop("status", None)
    route["spec"]["rules"] = [
        {"matches": ([{"headers": [{"name": "x-tier", "value": tiers[i]}]}] if tiers
                     else [{"path": {"type": "PathPrefix", "value": "/"}}]),
         "backendRefs": refs}
        for i, refs in enumerate(rules)]
    world.emulator.put_object(route)


def _refs(world: World, rule: int = 0) -> list[Obj]:
    refs: list[Obj] = world.route(ROUTE)["spec"]["rules"][rule]["backendRefs"]
    return refs


def _snapshot(world: World) -> tuple[object, ...]:
    routes = tuple(world.route(n)["metadata"]["resourceVersion"]
                   for n in ("routes-to-llm", ROUTE))
    keys = tuple(sorted(world.store.client.keys(world.store.key("*"))))
    return routes, keys, world.route_patches(ROUTE)


def _refused(world: World, call: Callable[[], object], kind: type[Exception]) -> str:
    before = _snapshot(world)
    with pytest.raises(kind) as refused:
        call()
    assert _snapshot(world) == before
    return str(refused.value)


def _start(world: World, **options: Any) -> Any:
    return world.service.start(namespace="default", canary=CANARY, route=ROUTE, actor=ALICE,
                               plan=build_plan([50, 100], interval_seconds=0), **options)


# ---- a rule's 17th backendRef ---------------------------------------------------------------


def test_a_canary_that_would_be_a_rules_17th_backend_ref_is_refused_and_nothing_changes(
        world: World) -> None:
    """The CRD allows 16 backendRefs per rule: the first write would be refused by the API
    server (a 422), after the rollout was recorded as started."""
    _put_rules(world, [_pool_ref(STABLE, 100), *_services(15)])
    said = _refused(world, lambda: _start(world), Conflict)
    assert said == (
        "HTTPRoute default/llm-route rule 0 already has 16 backendRefs, the most a rule may "
        "have: InferencePool llm-new would be its 17th. Remove a backendRef the rule no longer "
        "needs (or put InferencePool llm-new at weight 0 in its place), then start again")
    assert world.service.list_rollouts() == []


def test_a_canary_that_is_a_rules_16th_backend_ref_is_added(world: World) -> None:
    _put_rules(world, [_pool_ref(STABLE, 100), *_services(14)])
    out = _start(world)
    assert out.ok, out.message
    refs = _refs(world)
    assert len(refs) == 16 and refs[-1] == _pool_ref(CANARY, 0)


def test_a_write_the_api_server_refuses_as_invalid_is_a_refusal_quoting_its_causes(
        world: World) -> None:
    """A person adds a 16th backendRef between the lookup and the first write: the API
    server refuses the 17th (422 Invalid), which is no temporary failure, and nothing lands."""
    _put_rules(world, [_pool_ref(STABLE, 100), *_services(14)])
    located = world.service.traffic.locate_kind(TargetKind.ROUTE, namespace="default",
                                                canary=CANARY, target_name=ROUTE, stable=None)
    _put_rules(world, [_pool_ref(STABLE, 100), *_services(15)])
    r = machine.start(rollout_id="r-invalid", target=located.target, stable=STABLE,
                      canary=CANARY, plan=build_plan(), baseline=located.baseline, actor=ALICE,
                      now=world.clock.now()).rollout
    before = world.route(ROUTE)
    with pytest.raises(ClusterRejected) as refused:
        world.service.traffic.apply(r, Prepare(), fence=1)
    said = str(refused.value)
    assert said.startswith("the Kubernetes API refused HTTPRoute default/llm-route as invalid (")
    assert "spec.rules[0].backendRefs: Too many: 17: must have at most 16 items" in said
    assert said.endswith("); nothing was written")
    assert world.route(ROUTE) == before


def test_a_step_the_api_server_refuses_as_invalid_pauses_the_rollout_with_its_causes(
        world: World) -> None:
    """Before step 1 a person puts another backendRef where the canary's was: the step, which
    adds it back, would make a 17th. Paused with the server's reason, the route untouched."""
    _put_rules(world, [_pool_ref(STABLE, 100), *_services(14)])
    assert _start(world).ok
    route = copy.deepcopy(world.route(ROUTE))
    route.pop("status", None)
    route["spec"]["rules"][0]["backendRefs"][-1] = _services(16)[-1]
    world.emulator.put_object(route)
    before = world.route(ROUTE)
    out = world.service.approve(REF, actor=BOB)
    assert not out.ok and out.rollout is not None
    assert out.message.startswith(
        "Not applied: the Kubernetes API refused HTTPRoute default/llm-route as invalid "
        "(spec.rules[0].backendRefs: Too many: 17: must have at most 16 items")
    assert out.rollout.phase is Phase.PAUSED
    assert world.route(ROUTE)["spec"] == before["spec"]


# ---- one pool name in both API groups ------------------------------------------------------


def _legacy_pool(world: World) -> None:
    world.emulator.put_object({
        "apiVersion": f"{LEGACY_GROUP}/v1alpha2", "kind": "InferencePool",
        "metadata": {"name": STABLE, "namespace": "default"},
        "spec": {"selector": {"app": STABLE}, "targetPortNumber": 8000,
                 "extensionRef": {"name": f"{STABLE}-epp"}},
    })


def test_a_rule_moving_a_pool_between_groups_is_not_told_to_merge_the_two(
        world: World) -> None:
    """Legacy `llm` and GA `llm` are two pools: the GA one is the stable, and the legacy
    one keeps its share like any other backend of the rule."""
    _legacy_pool(world)
    _put_rules(world, [_pool_ref(STABLE, 50, LEGACY_GROUP), _pool_ref(STABLE, 50)])
    said = _refused(world, lambda: _start(world), Conflict)
    assert said.startswith(
        f"HTTPRoute default/llm-route rule 0 also sends traffic to llm in group {LEGACY_GROUP} "
        "(weight 50), and the weights of the pair the rollout moves sum to 50")
    assert "merge" not in said


def test_a_rule_naming_the_ga_pool_that_exists_only_in_the_legacy_group_says_so(
        world: World) -> None:
    """A move between the groups half done: the rule names GA `llm`, the cluster has the
    legacy one only. "Not found" alone would send a person looking for a pool they can see."""
    _legacy_pool(world)
    world.emulator.world.objects.delete_namespaced_custom_object(
        POOL_GROUP, "v1", "default", "inferencepools", STABLE)
    _put_rules(world, [_pool_ref(STABLE, 100)])
    patches = world.route_patches(ROUTE)
    with pytest.raises(NotReady) as refused:  # under the target's lock: not `_refused`,
        _start(world)                          # whose snapshot holds the fencing counter
    said = str(refused.value)
    assert (f"the rule sends the stable traffic to InferencePool {STABLE} in {POOL_GROUP}, "
            f"which has none of that name; there is one in {LEGACY_GROUP}") in said
    assert f"Point the rule's backendRef at {LEGACY_GROUP}" in said
    assert world.route_patches(ROUTE) == patches
    assert world.service.list_rollouts() == []


def test_a_rollout_beside_a_pool_moving_between_groups_moves_the_ga_entry_only(
        world: World) -> None:
    _legacy_pool(world)
    legacy = _pool_ref(STABLE, 100, LEGACY_GROUP)
    _put_rules(world, [_pool_ref(STABLE, 100), legacy])
    before = copy.deepcopy(_refs(world))
    out = _start(world)
    assert out.ok, out.message
    assert world.service.approve(REF, actor=BOB).ok
    assert _refs(world) == [_pool_ref(STABLE, 50), legacy, _pool_ref(CANARY, 50)]
    assert world.service.rollback(REF, actor=BOB).ok
    assert _refs(world) == before


# ---- filters on the stable's backendRef ----------------------------------------------------


def test_the_canary_ref_gets_the_stables_filters_and_a_rollback_restores_the_rule(
        world: World) -> None:
    """Without the filters the canary's requests would lose the header the stable's get."""
    _put_rules(world, [_pool_ref(STABLE, 100, filters=HEADERS)])
    before = copy.deepcopy(world.route(ROUTE)["spec"])
    assert _start(world).ok
    assert _refs(world)[-1] == _pool_ref(CANARY, 0, filters=HEADERS)
    assert world.service.approve(REF, actor=BOB).ok
    assert _refs(world) == [_pool_ref(STABLE, 50, filters=HEADERS),
                            _pool_ref(CANARY, 50, filters=HEADERS)]
    assert world.service.rollback(REF, actor=BOB).ok
    assert world.route(ROUTE)["spec"] == before


def test_a_retire_after_copied_filters_leaves_the_canary_with_them(world: World) -> None:
    _put_rules(world, [_pool_ref(STABLE, 100, filters=HEADERS)])
    assert _start(world, keep_seconds=0).ok
    for _ in range(2):
        assert world.service.approve(REF, actor=BOB).ok
    out = world.service.retire(REF, actor=CAROL)
    assert out.ok, out.message
    assert _refs(world) == [_pool_ref(CANARY, 100, filters=HEADERS)]


# ---- two rules sending to one pool -----------------------------------------------------------


@pytest.mark.parametrize("stable", [None, STABLE])
def test_two_rules_sending_to_the_stable_are_refused_honestly_and_nothing_changes(
        world: World, stable: str | None) -> None:
    """`--stable llm` cannot pick between them: the answer says so, rather than asking for
    --stable again."""
    _put_rules(world, [_pool_ref(STABLE, 100)], [_pool_ref(STABLE, 100)],
               tiers=("gold", "free"))
    said = _refused(world, lambda: _start(world, stable=stable), Ambiguous)
    assert said == (
        "HTTPRoute llm-route has 2 rules sending to InferencePool llm (rule 0: header x-tier: "
        "gold; rule 1: header x-tier: free): a rollout moves the weights of one rule, and no "
        "option picks one of these. Split them into separate HTTPRoutes, or give each rule "
        "its own InferencePool, then start again")
    assert world.service.list_rollouts() == []
